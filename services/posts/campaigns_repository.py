"""Every SQL statement of idea campaigns and live Q&A (the posts service's schema, migration 0003)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg

from shared.db import Connection


def live(alias: str = "p") -> str:
    """A post deleted, or hidden by a moderator (migration 0002), is gone from campaigns and their rankings."""
    return f"({alias}.deleted_at IS NULL AND {alias}.hidden_at IS NULL)"


LIVE_POST = live()

CAMPAIGN_COLUMNS = f"""
    c.post_id AS id, p.author_id AS owner_id, coalesce(o.name, '') AS owner_name, c.title, p.body AS question,
    p.audience, p.created_at, c.closes_at, c.closed_at,
    (SELECT count(*) FROM campaign_ideas i JOIN posts ip ON ip.id = i.post_id
     WHERE i.campaign_id = c.post_id AND {live("ip")} AND may_see($1, ip.author_id, ip.audience)) AS idea_count
"""
CAMPAIGN_FROM = """
    campaigns c
    JOIN posts p ON p.id = c.post_id
    LEFT JOIN people_directory o ON o.id = p.author_id
"""

IDEA_COLUMNS = """
    p.id, p.author_id, coalesce(a.name, '') AS author_name, p.kind, p.body, p.audience, p.created_at,
    coalesce(pc.like_count, 0) AS like_count, coalesce(pc.favourite_count, 0) AS favourite_count,
    i.campaign_id, i.status, i.status_reason, i.status_changed_at
"""
IDEA_FROM = """
    campaign_ideas i
    JOIN posts p ON p.id = i.post_id
    LEFT JOIN people_directory a ON a.id = p.author_id
    LEFT JOIN post_counts pc ON pc.post_id = p.id
"""


# Campaigns -----------------------------------------------------------------------------------------------


async def insert_campaign(conn: Connection, *, post_id: uuid.UUID, title: str, closes_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO campaigns (post_id, title, closes_at) VALUES ($1, $2, $3)", post_id, title, closes_at
    )


async def fetch_campaign(conn: Connection, campaign_id: uuid.UUID, *, viewer_id: str) -> asyncpg.Record | None:
    """The campaign if the viewer is in its audience; outside it, the campaign does not exist."""
    return await conn.fetchrow(
        f"""SELECT {CAMPAIGN_COLUMNS} FROM {CAMPAIGN_FROM}
            WHERE c.post_id = $2 AND {LIVE_POST} AND may_see($1, p.author_id, p.audience)""",
        viewer_id,
        campaign_id,
    )


# Open campaigns first, closing soonest first; then the closed, most recently closed first. One sortable key
# (state, signed epoch, id) keeps the keyset cursor simple.
CAMPAIGN_ORDER = (
    "(c.closed_at IS NOT NULL)::int",
    "CASE WHEN c.closed_at IS NULL THEN extract(epoch FROM c.closes_at) ELSE -extract(epoch FROM c.closed_at) END",
    "c.post_id",
)


async def list_campaigns(
    conn: Connection, *, viewer_id: str, after: tuple[int, str, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    state, key, ident = CAMPAIGN_ORDER
    return await conn.fetch(
        f"""SELECT {CAMPAIGN_COLUMNS}, {state} AS sort_state, ({key})::text AS sort_key FROM {CAMPAIGN_FROM}
            WHERE {LIVE_POST} AND may_see($1, p.author_id, p.audience)
              AND ($2::int IS NULL OR ({state}, {key}, {ident}) > ($2::int, $3::numeric, $4::uuid))
            ORDER BY {state}, {key}, {ident}
            LIMIT $5""",
        viewer_id,
        after[0] if after else None,
        after[1] if after else None,
        after[2] if after else None,
        limit,
    )


async def lock_campaign(
    conn: Connection, campaign_id: uuid.UUID, *, viewer_id: str | None, mode: Literal["share", "update"]
) -> asyncpg.Record | None:
    """The campaign row, locked: an idea takes a share lock, closing an exclusive one, so no idea slips in
    between a campaign's ranking and its closing. `viewer_id=None`: the system itself (the closer job)."""
    lock = "FOR SHARE OF c" if mode == "share" else "FOR UPDATE OF c"
    return await conn.fetchrow(
        f"""SELECT c.post_id, p.author_id AS owner_id, c.title, p.audience, c.closes_at, c.closed_at,
                   c.closes_at <= now() AS due
            FROM campaigns c JOIN posts p ON p.id = c.post_id
            WHERE c.post_id = $1 AND {LIVE_POST} AND ($2::text IS NULL OR may_see($2, p.author_id, p.audience))
            {lock}""",
        campaign_id,
        viewer_id,
    )


async def is_due(conn: Connection, campaign_id: uuid.UUID) -> bool:
    """Past its date and still open: a cheap look before taking the lock that closing needs."""
    due = await conn.fetchval(
        "SELECT true FROM campaigns WHERE post_id = $1 AND closed_at IS NULL AND closes_at <= now()", campaign_id
    )
    return bool(due)


async def claim_due_campaigns(conn: Connection, *, limit: int) -> list[uuid.UUID]:
    """Campaigns past their date and still open, locked; replicas skip each other's."""
    rows = await conn.fetch(
        """SELECT post_id FROM campaigns WHERE closed_at IS NULL AND closes_at <= now()
           ORDER BY closes_at LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )
    return [row["post_id"] for row in rows]


async def mark_closed(conn: Connection, campaign_id: uuid.UUID) -> tuple[datetime, int] | None:
    """Close a campaign once: None when it was already closed."""
    closed_at = await conn.fetchval(
        "UPDATE campaigns SET closed_at = now() WHERE post_id = $1 AND closed_at IS NULL RETURNING closed_at",
        campaign_id,
    )
    if closed_at is None:
        return None
    version = await conn.fetchval("UPDATE posts SET version = version + 1 WHERE id = $1 RETURNING version", campaign_id)
    return closed_at, int(version)


async def ranked_ideas(conn: Connection, campaign_id: uuid.UUID) -> list[asyncpg.Record]:
    """Every live idea of the campaign, most backed first (what its closing announces)."""
    return await conn.fetch(
        f"""SELECT p.id AS post_id, p.author_id, coalesce(pc.like_count, 0) AS backers, i.status
            FROM campaign_ideas i JOIN posts p ON p.id = i.post_id LEFT JOIN post_counts pc ON pc.post_id = p.id
            WHERE i.campaign_id = $1 AND {LIVE_POST}
            ORDER BY backers DESC, p.created_at, p.id""",
        campaign_id,
    )


# Ideas ---------------------------------------------------------------------------------------------------


async def insert_idea(conn: Connection, *, post_id: uuid.UUID, campaign_id: uuid.UUID) -> None:
    await conn.execute("INSERT INTO campaign_ideas (post_id, campaign_id) VALUES ($1, $2)", post_id, campaign_id)


async def fetch_idea(conn: Connection, post_id: uuid.UUID, *, viewer_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {IDEA_COLUMNS} FROM {IDEA_FROM}
            WHERE p.id = $2 AND {LIVE_POST} AND may_see($1, p.author_id, p.audience)""",
        viewer_id,
        post_id,
    )


async def list_ideas(
    conn: Connection,
    campaign_id: uuid.UUID,
    *,
    viewer_id: str,
    after: tuple[int, datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """A page of the ranking: most backers first, ties the older first. Backing moves ideas between pages
    while one reads; a keyset cursor then skips or repeats at most the ideas that moved."""
    return await conn.fetch(
        f"""SELECT {IDEA_COLUMNS} FROM {IDEA_FROM}
            WHERE i.campaign_id = $2 AND {LIVE_POST} AND may_see($1, p.author_id, p.audience)
              AND ($3::int IS NULL
                   OR (-coalesce(pc.like_count, 0), p.created_at, p.id) > (-$3::int, $4::timestamptz, $5::uuid))
            ORDER BY coalesce(pc.like_count, 0) DESC, p.created_at, p.id
            LIMIT $6""",
        viewer_id,
        campaign_id,
        after[0] if after else None,
        after[1] if after else None,
        after[2] if after else None,
        limit,
    )


async def lock_idea(conn: Connection, post_id: uuid.UUID, *, viewer_id: str) -> asyncpg.Record | None:
    """The idea with its campaign's owner, locked for a status change."""
    return await conn.fetchrow(
        f"""SELECT i.post_id, i.campaign_id, i.status, i.status_reason, p.author_id, cp.author_id AS owner_id
            FROM campaign_ideas i JOIN posts p ON p.id = i.post_id JOIN posts cp ON cp.id = i.campaign_id
            WHERE i.post_id = $2 AND {LIVE_POST} AND {live("cp")}
              AND may_see($1, p.author_id, p.audience)
            FOR UPDATE OF i, p""",
        viewer_id,
        post_id,
    )


async def set_idea_status(
    conn: Connection, post_id: uuid.UUID, *, status: str, reason: str | None
) -> tuple[datetime, int]:
    changed_at = await conn.fetchval(
        """UPDATE campaign_ideas SET status = $2, status_reason = $3, status_changed_at = now()
           WHERE post_id = $1 RETURNING status_changed_at""",
        post_id,
        status,
        reason,
    )
    version = await conn.fetchval("UPDATE posts SET version = version + 1 WHERE id = $1 RETURNING version", post_id)
    return changed_at, int(version)


# Live Q&A ------------------------------------------------------------------------------------------------

SESSION_COLUMNS = """
    s.id, s.host_id, coalesce(h.name, '') AS host_name, s.title, s.audience, s.starts_at, s.ends_at, s.created_at,
    CASE WHEN now() < s.starts_at THEN 'upcoming' WHEN now() < s.ends_at THEN 'open' ELSE 'ended' END AS state,
    (SELECT count(*) FROM qna_questions q WHERE q.session_id = s.id) AS question_count,
    (SELECT count(*) FROM qna_questions q WHERE q.session_id = s.id AND q.answered_at IS NOT NULL) AS answered_count
"""
SESSION_FROM = "qna_sessions s LEFT JOIN people_directory h ON h.id = s.host_id"


async def insert_session(
    conn: Connection,
    *,
    session_id: uuid.UUID,
    host_id: str,
    title: str,
    audience: dict[str, Any],
    starts_at: datetime,
    ends_at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO qna_sessions (id, host_id, title, audience, starts_at, ends_at)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        session_id,
        host_id,
        title,
        audience,
        starts_at,
        ends_at,
    )


async def fetch_session(conn: Connection, session_id: uuid.UUID, *, viewer_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {SESSION_COLUMNS} FROM {SESSION_FROM} WHERE s.id = $1 AND may_see($2, s.host_id, s.audience)",
        session_id,
        viewer_id,
    )


async def insert_question(
    conn: Connection, *, question_id: uuid.UUID, session_id: uuid.UUID, asker_id: str, anonymous: bool, body: str
) -> None:
    await conn.execute(
        "INSERT INTO qna_questions (id, session_id, asker_id, anonymous, body) VALUES ($1, $2, $3, $4, $5)",
        question_id,
        session_id,
        asker_id,
        anonymous,
        body,
    )


QUESTION_COLUMNS = """
    q.id, q.session_id, q.body, q.anonymous, q.asker_id, coalesce(a.name, '') AS asker_name, q.upvotes,
    q.answer, q.answered_at, q.created_at,
    EXISTS (SELECT 1 FROM qna_upvotes u WHERE u.question_id = q.id AND u.person_id = $1) AS upvoted_by_me
"""
QUESTION_FROM = "qna_questions q LEFT JOIN people_directory a ON a.id = q.asker_id"


async def fetch_question(conn: Connection, question_id: uuid.UUID, *, viewer_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {QUESTION_COLUMNS} FROM {QUESTION_FROM} WHERE q.id = $2", viewer_id, question_id
    )


async def list_questions(
    conn: Connection,
    session_id: uuid.UUID,
    *,
    viewer_id: str,
    state: Literal["open", "answered"] | None,
    after: tuple[int, int, datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Unanswered first, most upvoted first, ties the older first; then the answered in the same order."""
    return await conn.fetch(
        f"""SELECT {QUESTION_COLUMNS}, (q.answered_at IS NOT NULL)::int AS answered FROM {QUESTION_FROM}
            WHERE q.session_id = $2
              AND ($3::text IS NULL OR (q.answered_at IS NOT NULL) = ($3 = 'answered'))
              AND ($4::int IS NULL OR ((q.answered_at IS NOT NULL)::int, -q.upvotes, q.created_at, q.id)
                                      > ($4::int, -$5::int, $6::timestamptz, $7::uuid))
            ORDER BY (q.answered_at IS NOT NULL), q.upvotes DESC, q.created_at, q.id
            LIMIT $8""",
        viewer_id,
        session_id,
        state,
        after[0] if after else None,
        after[1] if after else None,
        after[2] if after else None,
        after[3] if after else None,
        limit,
    )


async def lock_question(conn: Connection, session_id: uuid.UUID, question_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, asker_id, anonymous, upvotes, answered_at FROM qna_questions
           WHERE id = $1 AND session_id = $2 FOR UPDATE""",
        question_id,
        session_id,
    )


async def add_upvote(conn: Connection, question_id: uuid.UUID, *, person_id: str) -> int:
    """Idempotent: a second upvote by the same person changes nothing. The question's count after it."""
    added = await conn.fetchval(
        "INSERT INTO qna_upvotes (question_id, person_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
        question_id,
        person_id,
    )
    delta = 1 if added else 0
    return int(
        await conn.fetchval(
            "UPDATE qna_questions SET upvotes = upvotes + $2 WHERE id = $1 RETURNING upvotes", question_id, delta
        )
    )


async def remove_upvote(conn: Connection, question_id: uuid.UUID, *, person_id: str) -> int:
    removed = await conn.fetchval(
        "DELETE FROM qna_upvotes WHERE question_id = $1 AND person_id = $2 RETURNING true", question_id, person_id
    )
    delta = -1 if removed else 0
    return int(
        await conn.fetchval(
            "UPDATE qna_questions SET upvotes = upvotes + $2 WHERE id = $1 RETURNING upvotes", question_id, delta
        )
    )


async def answer_question(conn: Connection, question_id: uuid.UUID, *, answer: str) -> datetime:
    answered_at: datetime = await conn.fetchval(
        "UPDATE qna_questions SET answer = $2, answered_at = now() WHERE id = $1 RETURNING answered_at",
        question_id,
        answer,
    )
    return answered_at
