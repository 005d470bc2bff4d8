"""Every SQL statement of the posts service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from shared.db import Connection


def post_visible(viewer: str, moderator: str, alias: str = "p") -> str:
    """Who may read a post: its audience (`may_see`), and while it is hidden only its author and moderators.
    `viewer` and `moderator` are the placeholders of the viewer's id and whether they moderate."""
    return f"""({alias}.deleted_at IS NULL AND may_see({viewer}, {alias}.author_id, {alias}.audience)
               AND ({alias}.hidden_at IS NULL OR {alias}.author_id = {viewer} OR {moderator}))"""


def comment_visible(viewer: str, moderator: str, alias: str = "c") -> str:
    """Within a post the viewer may read: not deleted, hidden only to others than its author and moderators,
    and not written by someone the viewer blocked or who blocked the viewer."""
    return f"""({alias}.deleted_at IS NULL
               AND ({alias}.hidden_at IS NULL OR {alias}.author_id = {viewer} OR {moderator})
               AND NOT blocked_between({viewer}, {alias}.author_id))"""


# People as JSON, in the order of an id array, keeping those who may see the post (the audience may have changed).
def _people_json(ids: str, *, post: str = "p") -> str:
    return f"""(SELECT coalesce(jsonb_agg(jsonb_build_object('id', d.id, 'name', d.name)
                                          ORDER BY array_position({ids}, d.id)), '[]'::jsonb)
                FROM people_directory d
                WHERE d.id = ANY({ids}) AND may_see(d.id, {post}.author_id, {post}.audience))"""


POST_COLUMNS = f"""
    p.id, p.author_id, coalesce(a.name, '') AS author_name, p.kind, p.body, p.audience, p.created_at,
    coalesce(c.like_count, 0) AS like_count, coalesce(c.favourite_count, 0) AS favourite_count,
    p.accepted_comment_id, p.hidden_reason, {_people_json("p.mentions")} AS mentions,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('id', r.person_id, 'name', coalesce(d.name, ''))
                               ORDER BY r.position), '[]'::jsonb)
     FROM post_recipients r LEFT JOIN people_directory d ON d.id = r.person_id
     WHERE r.post_id = p.id) AS recipients,
    (SELECT count(*) FROM comments cm LEFT JOIN comments pa ON pa.id = cm.parent_id
     WHERE cm.post_id = p.id AND cm.deleted_at IS NULL AND cm.hidden_at IS NULL
       AND (pa.id IS NULL OR pa.hidden_at IS NULL)) AS comment_count
"""
POST_FROM = """
    posts p
    LEFT JOIN people_directory a ON a.id = p.author_id
    LEFT JOIN post_counts c ON c.post_id = p.id
"""


async def insert_post(
    conn: Connection,
    *,
    post_id: uuid.UUID,
    author_id: str,
    kind: str,
    body: str,
    audience: dict[str, Any],
    mentions: Sequence[str] = (),
) -> asyncpg.Record:
    row = await conn.fetchrow(
        "INSERT INTO posts (id, author_id, kind, body, audience, mentions) VALUES ($1, $2, $3, $4, $5, $6)"
        " RETURNING id, created_at, version",
        post_id,
        author_id,
        kind,
        body,
        audience,
        list(mentions),
    )
    assert row is not None
    return row


async def insert_recipients(conn: Connection, post_id: uuid.UUID, person_ids: Sequence[str]) -> None:
    await conn.execute(
        """INSERT INTO post_recipients (post_id, person_id, position)
           SELECT $1, person_id, position FROM unnest($2::text[]) WITH ORDINALITY AS u(person_id, position)""",
        post_id,
        list(person_ids),
    )


async def people_and_audience(
    conn: Connection, person_ids: Sequence[str], *, author_id: str, audience: dict[str, Any]
) -> list[asyncpg.Record]:
    """Of these ids, the people the directory knows, with their names and whether the audience includes them."""
    return await conn.fetch(
        """SELECT d.id, d.name, may_see(d.id, $2, $3::jsonb) AS may_see
           FROM people_directory d WHERE d.id = ANY($1::text[])""",
        list(person_ids),
        author_id,
        audience,
    )


async def fetch_post(
    conn: Connection, post_id: uuid.UUID, *, viewer_id: str, moderator: bool = False
) -> asyncpg.Record | None:
    """The post if it exists and the viewer may read it; outside its audience, the post does not exist."""
    return await conn.fetchrow(
        f"SELECT {POST_COLUMNS} FROM {POST_FROM} WHERE p.id = $1 AND {post_visible('$2', '$3')}",
        post_id,
        viewer_id,
        moderator,
    )


async def fetch_post_as_moderator(conn: Connection, post_id: uuid.UUID) -> asyncpg.Record | None:
    """A post that exists, whatever its audience: moderators act on what was reported to them."""
    return await conn.fetchrow(
        f"SELECT {POST_COLUMNS} FROM {POST_FROM} WHERE p.id = $1 AND p.deleted_at IS NULL", post_id
    )


async def fetch_posts(
    conn: Connection, post_ids: Sequence[uuid.UUID], *, viewer_id: str, moderator: bool = False
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {POST_COLUMNS} FROM {POST_FROM} WHERE p.id = ANY($1::uuid[]) AND {post_visible('$2', '$3')}",
        list(post_ids),
        viewer_id,
        moderator,
    )


async def praise_received(
    conn: Connection,
    person_id: str,
    *,
    viewer_id: str,
    moderator: bool,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Praise naming the person that the viewer may read, newest first."""
    return await conn.fetch(
        f"""SELECT {POST_COLUMNS} FROM {POST_FROM}
            JOIN post_recipients pr ON pr.post_id = p.id AND pr.person_id = $1
            WHERE p.kind = 'praise' AND {post_visible("$2", "$3")}
              AND ($4::timestamptz IS NULL OR (p.created_at, p.id) < ($4, $5::uuid))
            ORDER BY p.created_at DESC, p.id DESC LIMIT $6""",
        person_id,
        viewer_id,
        moderator,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )


LOCKED_POST_COLUMNS = "id, author_id, kind, audience, version, accepted_comment_id, hidden_at, hidden_reason"


async def lock_post(
    conn: Connection, post_id: uuid.UUID, *, viewer_id: str, moderator: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {LOCKED_POST_COLUMNS} FROM posts p WHERE id = $1 AND {post_visible('$2', '$3')} FOR UPDATE",
        post_id,
        viewer_id,
        moderator,
    )


async def lock_post_as_moderator(conn: Connection, post_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {LOCKED_POST_COLUMNS} FROM posts WHERE id = $1 AND deleted_at IS NULL FOR UPDATE", post_id
    )


async def change_audience(conn: Connection, post_id: uuid.UUID, audience: dict[str, Any]) -> int:
    version: int = await conn.fetchval(
        "UPDATE posts SET audience = $2, version = version + 1 WHERE id = $1 RETURNING version", post_id, audience
    )
    return version


async def recipients_outside(conn: Connection, post_id: uuid.UUID, *, audience: dict[str, Any]) -> list[str]:
    """The praised people whom this audience would leave out."""
    rows = await conn.fetch(
        """SELECT r.person_id FROM post_recipients r JOIN posts p ON p.id = r.post_id
           WHERE r.post_id = $1 AND NOT may_see(r.person_id, p.author_id, $2::jsonb) ORDER BY r.position""",
        post_id,
        audience,
    )
    return [row["person_id"] for row in rows]


async def mark_deleted(conn: Connection, post_id: uuid.UUID) -> int:
    return await conn.fetchval(
        "UPDATE posts SET deleted_at = now(), version = version + 1 WHERE id = $1 RETURNING version", post_id
    )


async def set_accepted_answer(conn: Connection, post_id: uuid.UUID, comment_id: uuid.UUID | None) -> asyncpg.Record:
    row = await conn.fetchrow(
        "UPDATE posts SET accepted_comment_id = $2, version = version + 1 WHERE id = $1"
        " RETURNING version, clock_timestamp() AS at",
        post_id,
        comment_id,
    )
    assert row is not None
    return row


async def set_post_hidden(conn: Connection, post_id: uuid.UUID, *, reason: str | None) -> int:
    """Hide with a reason, or restore with None."""
    return await conn.fetchval(
        """UPDATE posts SET hidden_at = CASE WHEN $2::text IS NULL THEN NULL ELSE clock_timestamp() END,
                            hidden_reason = $2, version = version + 1
           WHERE id = $1 RETURNING version""",
        post_id,
        reason,
    )


async def apply_count_versions(conn: Connection, counts: Sequence[tuple[uuid.UUID, int, int, int]]) -> None:
    """Last writer wins per post: a stale or repeated event changes nothing."""
    await conn.execute(
        """INSERT INTO post_counts AS c (post_id, like_count, favourite_count, version)
           SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::bigint[])
           ON CONFLICT (post_id) DO UPDATE
           SET like_count = excluded.like_count, favourite_count = excluded.favourite_count,
               version = excluded.version
           WHERE c.version < excluded.version""",
        [c[0] for c in counts],
        [c[1] for c in counts],
        [c[2] for c in counts],
        [c[3] for c in counts],
    )


# Comments ------------------------------------------------------------------------------------------------------

COMMENT_COLUMNS = f"""
    c.id, c.post_id, c.parent_id, c.author_id, coalesce(ca.name, '') AS author_name, c.body, c.created_at,
    coalesce(cc.like_count, 0) AS like_count, c.hidden_reason,
    coalesce(c.id = p.accepted_comment_id, false) AS accepted, {_people_json("c.mentions")} AS mentions
"""
COMMENT_FROM = """
    comments c
    JOIN posts p ON p.id = c.post_id
    LEFT JOIN people_directory ca ON ca.id = c.author_id
    LEFT JOIN comment_counts cc ON cc.comment_id = c.id
"""


async def insert_comment(
    conn: Connection,
    *,
    comment_id: uuid.UUID,
    post_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    author_id: str,
    body: str,
    mentions: Sequence[str],
) -> asyncpg.Record:
    row = await conn.fetchrow(
        """INSERT INTO comments (id, post_id, parent_id, author_id, body, mentions)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at, version""",
        comment_id,
        post_id,
        parent_id,
        author_id,
        body,
        list(mentions),
    )
    assert row is not None
    return row


async def earlier_commenters(
    conn: Connection, post_id: uuid.UUID, *, except_id: str, author_id: str, audience: dict[str, Any]
) -> list[str]:
    """Who commented on the post before (comments still there) and may still see it, in the order they first did."""
    rows = await conn.fetch(
        """SELECT author_id FROM comments
           WHERE post_id = $1 AND deleted_at IS NULL AND author_id <> $2 AND may_see(author_id, $3, $4::jsonb)
           GROUP BY author_id ORDER BY min(created_at)""",
        post_id,
        except_id,
        author_id,
        audience,
    )
    return [row["author_id"] for row in rows]


async def fetch_comment(
    conn: Connection, comment_id: uuid.UUID, *, viewer_id: str, moderator: bool
) -> asyncpg.Record | None:
    """The comment if the viewer may read both it and its post."""
    return await conn.fetchrow(
        f"""SELECT {COMMENT_COLUMNS} FROM {COMMENT_FROM}
            WHERE c.id = $1 AND {post_visible("$2", "$3")} AND {comment_visible("$2", "$3")}""",
        comment_id,
        viewer_id,
        moderator,
    )


async def fetch_comment_as_moderator(conn: Connection, comment_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {COMMENT_COLUMNS} FROM {COMMENT_FROM}
            WHERE c.id = $1 AND c.deleted_at IS NULL AND p.deleted_at IS NULL""",
        comment_id,
    )


LOCKED_COMMENT_COLUMNS = """
    c.id, c.post_id, c.parent_id, c.author_id, c.version, c.hidden_at,
    p.author_id AS post_author_id, p.kind AS post_kind, p.accepted_comment_id
"""


async def lock_comment(
    conn: Connection, comment_id: uuid.UUID, *, viewer_id: str, moderator: bool
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {LOCKED_COMMENT_COLUMNS} FROM comments c JOIN posts p ON p.id = c.post_id
            WHERE c.id = $1 AND {post_visible("$2", "$3")} AND {comment_visible("$2", "$3")} FOR UPDATE OF c""",
        comment_id,
        viewer_id,
        moderator,
    )


async def lock_comment_as_moderator(conn: Connection, comment_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {LOCKED_COMMENT_COLUMNS} FROM comments c JOIN posts p ON p.id = c.post_id
            WHERE c.id = $1 AND c.deleted_at IS NULL AND p.deleted_at IS NULL FOR UPDATE OF c""",
        comment_id,
    )


async def top_level_comments(
    conn: Connection,
    post_id: uuid.UUID,
    *,
    viewer_id: str,
    moderator: bool,
    after: tuple[datetime, uuid.UUID] | None,
    first_page: bool,
    first: uuid.UUID | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Oldest first. `first` (an accepted answer) leads the first page and is left out of the others."""
    return await conn.fetch(
        f"""SELECT {COMMENT_COLUMNS} FROM {COMMENT_FROM}
            WHERE c.post_id = $1 AND c.parent_id IS NULL AND {comment_visible("$2", "$3")}
              AND ($4::timestamptz IS NULL OR (c.created_at, c.id) > ($4, $5::uuid))
              AND ($6 OR $7::uuid IS NULL OR c.id <> $7)
            ORDER BY ($6 AND c.id IS NOT DISTINCT FROM $7) DESC, c.created_at, c.id LIMIT $8""",
        post_id,
        viewer_id,
        moderator,
        after[0] if after else None,
        after[1] if after else None,
        first_page,
        first,
        limit,
    )


async def replies(
    conn: Connection, parent_ids: Sequence[uuid.UUID], *, viewer_id: str, moderator: bool
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT {COMMENT_COLUMNS} FROM {COMMENT_FROM}
            WHERE c.parent_id = ANY($1::uuid[]) AND {comment_visible("$2", "$3")}
            ORDER BY c.created_at, c.id""",
        list(parent_ids),
        viewer_id,
        moderator,
    )


async def mark_comments_deleted(conn: Connection, comment_id: uuid.UUID) -> list[asyncpg.Record]:
    """Delete a comment and its replies; returns each with its new version."""
    return await conn.fetch(
        """UPDATE comments SET deleted_at = clock_timestamp(), version = version + 1
           WHERE (id = $1 OR parent_id = $1) AND deleted_at IS NULL
           RETURNING id, post_id, author_id, version""",
        comment_id,
    )


async def set_comment_hidden(conn: Connection, comment_id: uuid.UUID, *, reason: str | None) -> int:
    return await conn.fetchval(
        """UPDATE comments SET hidden_at = CASE WHEN $2::text IS NULL THEN NULL ELSE clock_timestamp() END,
                               hidden_reason = $2, version = version + 1
           WHERE id = $1 RETURNING version""",
        comment_id,
        reason,
    )


async def apply_comment_count_versions(conn: Connection, counts: Sequence[tuple[uuid.UUID, int, int]]) -> None:
    """Last writer wins per comment: a stale or repeated event changes nothing."""
    await conn.execute(
        """INSERT INTO comment_counts AS c (comment_id, like_count, version)
           SELECT * FROM unnest($1::uuid[], $2::int[], $3::bigint[])
           ON CONFLICT (comment_id) DO UPDATE SET like_count = excluded.like_count, version = excluded.version
           WHERE c.version < excluded.version""",
        [c[0] for c in counts],
        [c[1] for c in counts],
        [c[2] for c in counts],
    )


# Reports -------------------------------------------------------------------------------------------------------


async def insert_report(
    conn: Connection,
    *,
    report_id: uuid.UUID,
    post_id: uuid.UUID,
    comment_id: uuid.UUID | None,
    reporter_id: str,
    reason: str,
) -> asyncpg.Record:
    """The person's open report of this content: the new one, or the one already open."""
    await conn.execute(
        """INSERT INTO reports (id, post_id, comment_id, reporter_id, reason) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT DO NOTHING""",
        report_id,
        post_id,
        comment_id,
        reporter_id,
        reason,
    )
    row = await conn.fetchrow(
        """SELECT id, post_id, comment_id, reason, status, created_at FROM reports
           WHERE reporter_id = $1 AND post_id = $2 AND comment_id IS NOT DISTINCT FROM $3 AND status = 'open'""",
        reporter_id,
        post_id,
        comment_id,
    )
    assert row is not None
    return row


async def list_reports(
    conn: Connection, *, status: str, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """Reports with the content as it is now, oldest first."""
    return await conn.fetch(
        """SELECT r.id, r.post_id, r.comment_id, r.reason, r.status, r.created_at, r.closed_at, r.closed_by,
                  r.resolution, r.reporter_id, coalesce(rp.name, '') AS reporter_name,
                  coalesce(c.author_id, p.author_id) AS content_author_id,
                  coalesce(ca.name, '') AS content_author_name,
                  coalesce(c.body, p.body) AS content_body,
                  CASE WHEN r.comment_id IS NULL THEN p.hidden_reason ELSE c.hidden_reason END AS content_hidden_reason,
                  (p.deleted_at IS NOT NULL OR c.deleted_at IS NOT NULL) AS content_deleted
           FROM reports r
           JOIN posts p ON p.id = r.post_id
           LEFT JOIN comments c ON c.id = r.comment_id
           LEFT JOIN people_directory rp ON rp.id = r.reporter_id
           LEFT JOIN people_directory ca ON ca.id = coalesce(c.author_id, p.author_id)
           WHERE r.status = $1 AND ($2::timestamptz IS NULL OR (r.created_at, r.id) > ($2, $3::uuid))
           ORDER BY r.created_at, r.id LIMIT $4""",
        status,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def close_reports(
    conn: Connection, *, post_id: uuid.UUID, comment_id: uuid.UUID | None, moderator_id: str, resolution: str
) -> None:
    await conn.execute(
        """UPDATE reports SET status = 'closed', closed_at = clock_timestamp(), closed_by = $3, resolution = $4
           WHERE post_id = $1 AND comment_id IS NOT DISTINCT FROM $2 AND status = 'open'""",
        post_id,
        comment_id,
        moderator_id,
        resolution,
    )
