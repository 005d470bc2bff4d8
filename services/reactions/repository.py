"""Every SQL statement of the reactions service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Literal

import asyncpg
import orjson

from shared.db import Connection

Reaction = Literal["like", "favourite"]

_TABLE = {"like": "likes", "favourite": "favourites"}
_COUNT = {"like": "like_count", "favourite": "favourite_count"}


async def find_post(conn: Connection, post_id: uuid.UUID, *, viewer_id: str) -> asyncpg.Record | None:
    """The post if it exists here and the viewer is in its audience; outside it the post does not exist."""
    return await conn.fetchrow(
        "SELECT id, author_id, audience FROM posts WHERE id = $1 AND NOT deleted AND may_see($2, author_id, audience)",
        post_id,
        viewer_id,
    )


def _change_statement(reaction: Reaction, *, on: bool) -> str:
    """The whole of a reaction change as ONE statement, so it is its own transaction: lock the post
    (FOR SHARE makes it wait for a delete of the same post being applied, and vice versa), remember the
    person's name, insert or delete the reaction, move the counter and bump its version, and queue the
    event in the outbox, all or nothing. One round trip instead of seven (BEGIN, five statements,
    COMMIT) is most of what a like costs this service and PostgreSQL (docs/benchmarks.md).

    $1 post, $2 user, $3 event id, $4 routing key, $5 the event envelope rendered from its contract in
    Python, $6 the user's name (only to add). The statement fills in the four values of the event only
    it knows: the post's author, the counts and the version. One row (the counts, and whether anything
    changed) when the post exists; none when it does not (or is deleted)."""
    table, count = _TABLE[reaction], _COUNT[reaction]
    if on:
        change = f"""
            person AS (
                INSERT INTO people_directory (id, name, version) SELECT $2, $6, 0 FROM post
                ON CONFLICT (id) DO NOTHING
            ), added AS (
                INSERT INTO {table} (post_id, user_id) SELECT id, $2 FROM post ON CONFLICT DO NOTHING RETURNING post_id
            ), changed AS (
                INSERT INTO post_counters AS c (post_id, like_count, favourite_count, version)
                SELECT post_id, {int(reaction == "like")}, {int(reaction == "favourite")}, 1 FROM added
                ON CONFLICT (post_id) DO UPDATE SET {count} = c.{count} + 1, version = c.version + 1
                RETURNING like_count, favourite_count, version
            )"""
    else:
        change = f"""
            removed AS (
                DELETE FROM {table} r USING post p WHERE r.post_id = p.id AND r.user_id = $2 RETURNING r.post_id
            ), changed AS (
                UPDATE post_counters c SET {count} = c.{count} - 1, version = c.version + 1
                FROM removed WHERE c.post_id = removed.post_id
                RETURNING c.like_count, c.favourite_count, c.version
            )"""
    # The outbox row is what shared.outbox.add_to_outbox writes: (event_id, routing_key, body).
    return f"""WITH post AS (
                SELECT id, author_id FROM posts
                WHERE id = $1 AND NOT deleted AND may_see($2, author_id, audience) FOR SHARE
            ),{change},
            event AS (
                INSERT INTO outbox (event_id, routing_key, body)
                SELECT $3, $4, convert_to((e || jsonb_build_object('data', (e -> 'data') || jsonb_build_object(
                           'post_author_id', p.author_id, 'like_count', x.like_count,
                           'favourite_count', x.favourite_count, 'version', x.version)))::text, 'UTF8')
                FROM post p, changed x, (SELECT $5::text::jsonb AS e) template
            )
            SELECT coalesce(x.like_count, c.like_count, 0) AS like_count,
                   coalesce(x.favourite_count, c.favourite_count, 0) AS favourite_count,
                   x.version IS NOT NULL AS changed
            FROM post p
            LEFT JOIN changed x ON true
            LEFT JOIN post_counters c ON c.post_id = p.id AND x.version IS NULL"""


_CHANGE_STATEMENTS = {(r, on): _change_statement(r, on=on) for r in ("like", "favourite") for on in (True, False)}


async def change_reaction(
    conn: Connection,
    reaction: Reaction,
    *,
    on: bool,
    post_id: uuid.UUID,
    user_id: str,
    user_name: str,
    event_id: uuid.UUID,
    routing_key: str,
    event_template: str,
) -> asyncpg.Record | None:
    """Add (on) or take back the reaction, with its event, in one statement; None if the post is not here."""
    args = [post_id, user_id, event_id, routing_key, event_template, *([user_name] if on else [])]
    return await conn.fetchrow(_CHANGE_STATEMENTS[(reaction, on)], *args)


async def likers_page(
    conn: Connection, *, post_id: uuid.UUID, viewer_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[asyncpg.Record]:
    """Who liked the post, newest first, leaving out anyone the viewer blocked or is blocked by."""
    if after is None:
        after_clause, args = "", [post_id, limit, viewer_id]
    else:
        after_clause = "AND (l.created_at, l.user_id) < ($4, $5)"
        args = [post_id, limit, viewer_id, after[0], after[1]]
    return await conn.fetch(
        f"""SELECT l.user_id, coalesce(p.name, '') AS name, l.created_at
            FROM likes l LEFT JOIN people_directory p ON p.id = l.user_id
            WHERE l.post_id = $1 AND NOT blocked_between($3, l.user_id) {after_clause}
            ORDER BY l.created_at DESC, l.user_id DESC LIMIT $2""",
        *args,
    )


async def favourites_page(
    conn: Connection, *, user_id: str, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    if after is None:
        after_clause, args = "", [user_id, limit]
    else:
        after_clause, args = "AND (f.created_at, f.post_id) < ($3, $4)", [user_id, limit, after[0], after[1]]
    return await conn.fetch(
        f"""SELECT f.post_id, f.created_at FROM favourites f JOIN posts p ON p.id = f.post_id AND NOT p.deleted
            WHERE f.user_id = $1 AND may_see($1, p.author_id, p.audience) {after_clause}
            ORDER BY f.created_at DESC, f.post_id DESC LIMIT $2""",
        *args,
    )


async def reactions_of_user(conn: Connection, *, user_id: str, post_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT id AS post_id,
                  EXISTS (SELECT 1 FROM likes l WHERE l.post_id = id AND l.user_id = $1) AS liked,
                  EXISTS (SELECT 1 FROM favourites f WHERE f.post_id = id AND f.user_id = $1) AS favourited
           FROM unnest($2::uuid[]) AS id""",
        user_id,
        list(post_ids),
    )


async def apply_post_versions(conn: Connection, posts: Sequence[dict[str, Any]]) -> None:
    """Upsert the post replica; the highest version wins, so a late post.created cannot undo a delete."""
    await conn.execute(
        """INSERT INTO posts AS p (id, author_id, audience, deleted, version)
           SELECT id, author_id, audience::jsonb, deleted, version
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bool[], $5::int[])
                AS t(id, author_id, audience, deleted, version)
           ON CONFLICT (id) DO UPDATE
           SET author_id = excluded.author_id, audience = excluded.audience, deleted = excluded.deleted,
               version = excluded.version
           WHERE p.version < excluded.version""",
        [p["id"] for p in posts],
        [p["author_id"] for p in posts],
        [p["audience"] for p in posts],
        [p["deleted"] for p in posts],
        [p["version"] for p in posts],
    )


# Comments and their likes ---------------------------------------------------------------------------------


async def find_comment(
    conn: Connection, comment_id: uuid.UUID, *, viewer_id: str, lock: bool = False
) -> asyncpg.Record | None:
    """The comment if it stands (not deleted or hidden, nor its post) and the viewer may see its post."""
    return await conn.fetchrow(
        f"""SELECT c.id, c.post_id, c.author_id FROM contents c
            JOIN posts p ON p.id = c.post_id
            LEFT JOIN contents cp ON cp.id = c.post_id AND NOT cp.is_comment
            WHERE c.id = $1 AND c.is_comment AND c.created_at IS NOT NULL AND NOT c.deleted AND NOT c.hidden
              AND NOT p.deleted AND NOT coalesce(cp.hidden, false) AND may_see($2, p.author_id, p.audience)
            {"FOR SHARE OF c" if lock else ""}""",
        comment_id,
        viewer_id,
    )


async def add_comment_like(conn: Connection, *, comment_id: uuid.UUID, user_id: str) -> bool:
    added = await conn.fetchval(
        "INSERT INTO comment_likes (comment_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
        comment_id,
        user_id,
    )
    return bool(added)


async def remove_comment_like(conn: Connection, *, comment_id: uuid.UUID, user_id: str) -> bool:
    removed = await conn.fetchval(
        "DELETE FROM comment_likes WHERE comment_id = $1 AND user_id = $2 RETURNING true", comment_id, user_id
    )
    return bool(removed)


async def move_comment_counter(conn: Connection, *, comment_id: uuid.UUID, delta: int) -> asyncpg.Record:
    """Change the comment's like count by `delta` and bump its version; returns (like_count, version)."""
    row = await conn.fetchrow(
        """INSERT INTO comment_counters AS c (comment_id, like_count, version) VALUES ($1, greatest($2, 0), 1)
           ON CONFLICT (comment_id) DO UPDATE SET like_count = c.like_count + $2, version = c.version + 1
           RETURNING like_count, version""",
        comment_id,
        delta,
    )
    assert row is not None
    return row


async def comment_like_count(conn: Connection, comment_id: uuid.UUID) -> int:
    count = await conn.fetchval("SELECT like_count FROM comment_counters WHERE comment_id = $1", comment_id)
    return int(count or 0)


# What scores are computed from: contents and like states, as their events left them ----------------------


async def apply_content_states(conn: Connection, contents: Sequence[dict[str, Any]]) -> None:
    """Upsert posts and comments (one row per id): details fill in whichever event brought them, the
    created/deleted state follows the highest version."""
    await conn.execute(
        """INSERT INTO contents AS c
               (id, is_comment, post_id, author_id, post_kind, post_author_id, parent_id, created_at, deleted, version)
           SELECT * FROM unnest($1::uuid[], $2::bool[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::uuid[],
                                $8::timestamptz[], $9::bool[], $10::int[])
           ON CONFLICT (id) DO UPDATE SET
               post_kind = coalesce(excluded.post_kind, c.post_kind),
               post_author_id = coalesce(excluded.post_author_id, c.post_author_id),
               parent_id = coalesce(excluded.parent_id, c.parent_id),
               created_at = coalesce(excluded.created_at, c.created_at),
               deleted = CASE WHEN excluded.version > c.version THEN excluded.deleted ELSE c.deleted END,
               version = greatest(c.version, excluded.version)""",
        *_columns(
            contents,
            "id",
            "is_comment",
            "post_id",
            "author_id",
            "post_kind",
            "post_author_id",
            "parent_id",
            "created_at",
            "deleted",
            "version",
        ),
    )


async def apply_moderation_states(conn: Connection, states: Sequence[dict[str, Any]]) -> None:
    """Hidden or restored, one row per id; the highest moderation version wins."""
    await conn.execute(
        """INSERT INTO contents AS c (id, is_comment, post_id, author_id, hidden, moderation_version)
           SELECT * FROM unnest($1::uuid[], $2::bool[], $3::uuid[], $4::text[], $5::bool[], $6::int[])
           ON CONFLICT (id) DO UPDATE SET hidden = excluded.hidden, moderation_version = excluded.moderation_version
           WHERE c.moderation_version < excluded.moderation_version""",
        *_columns(states, "id", "is_comment", "post_id", "author_id", "hidden", "moderation_version"),
    )


async def apply_like_states(conn: Connection, likes: Sequence[dict[str, Any]]) -> None:
    """One row per (target, liker); the highest version of the target's reactions wins."""
    await conn.execute(
        """INSERT INTO like_states AS l (target_id, actor_id, is_comment, post_id, active, occurred_at, version)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::uuid[], $5::bool[], $6::timestamptz[],
                                $7::bigint[])
           ON CONFLICT (target_id, actor_id) DO UPDATE
           SET active = excluded.active, occurred_at = excluded.occurred_at, version = excluded.version
           WHERE l.version < excluded.version""",
        *_columns(likes, "target_id", "actor_id", "is_comment", "post_id", "active", "occurred_at", "version"),
    )


def _columns(rows: Sequence[dict[str, Any]], *names: str) -> list[list[Any]]:
    return [[row[name] for row in rows] for name in names]


async def lock_posts_for_scoring(conn: Connection, post_ids: Sequence[uuid.UUID]) -> None:
    """Serialise score work on the same posts across replicas: every change to a post, its comments or
    their likes recomputes facts that read the others. In one order, so two batches cannot deadlock here."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('reactions.scores.' || id::text, 0))"
        " FROM (SELECT DISTINCT unnest($1::uuid[]) AS id ORDER BY 1) ids",
        list(post_ids),
    )


async def affected_score_subjects(
    conn: Connection,
    *,
    post_ids: Sequence[uuid.UUID],
    comment_ids: Sequence[uuid.UUID],
    likes: Sequence[tuple[uuid.UUID, str]],
) -> list[asyncpg.Record]:
    """Every subject whose contribution may have changed: changed posts with their comments and all their
    likes, changed comments with their likes, changed likes and (for builder scores) the comments liked."""
    return await conn.fetch(
        """WITH changed_posts AS (SELECT DISTINCT unnest($1::uuid[]) AS id),
           changed_comments AS (
               SELECT unnest($2::uuid[]) AS id
               UNION SELECT c.id FROM contents c JOIN changed_posts p ON c.post_id = p.id AND c.is_comment
               UNION SELECT c.id FROM contents c WHERE c.is_comment AND c.id = ANY($3::uuid[])
           ),
           targets AS (SELECT id FROM changed_posts UNION SELECT id FROM changed_comments)
           SELECT 'post' AS kind, id AS subject_id, '' AS actor_id FROM changed_posts
           UNION SELECT 'comment', id, '' FROM changed_comments
           UNION SELECT 'like', l.target_id, l.actor_id FROM like_states l JOIN targets t ON l.target_id = t.id
           UNION SELECT 'like', u.target_id, u.actor_id
                 FROM unnest($3::uuid[], $4::text[]) AS u(target_id, actor_id)""",
        list(post_ids),
        list(comment_ids),
        [target for target, _ in likes],
        [actor for _, actor in likes],
    )


def _month(column: str) -> str:
    return f"date_trunc('month', {column} AT TIME ZONE 'UTC')::date"


# A subject counts while it stands: created, not deleted, not hidden, and (a comment, a like) neither is what
# it belongs to. Self-likes earn nothing. `{only}` narrows each query to given subjects; empty for a recount.
_POST_TRUTH = f"""
    SELECT 'post' AS kind, p.id AS subject_id, '' AS actor_id, p.author_id AS person_id,
           {_month("p.created_at")} AS month,
           1 AS posts, 0 AS comments, 0 AS likes_received, 0 AS builder_comments, 0 AS builder_likes
    FROM contents p
    WHERE NOT p.is_comment AND p.created_at IS NOT NULL AND NOT p.deleted AND NOT p.hidden {{only}}"""

_COMMENT_TRUTH = f"""
    SELECT 'comment' AS kind, c.id AS subject_id, '' AS actor_id, c.author_id AS person_id,
           {_month("c.created_at")} AS month,
           0 AS posts, 1 AS comments, 0 AS likes_received, b.builder::int AS builder_comments,
           CASE WHEN b.builder THEN (
               SELECT count(*) FROM like_states l WHERE l.target_id = c.id AND l.active AND l.actor_id <> c.author_id
           ) ELSE 0 END::int AS builder_likes
    FROM contents c
    LEFT JOIN contents p ON p.id = c.post_id AND NOT p.is_comment
    CROSS JOIN LATERAL (SELECT c.author_id IS DISTINCT FROM c.post_author_id AS builder) b
    WHERE c.is_comment AND c.created_at IS NOT NULL AND NOT c.deleted AND NOT c.hidden
      AND NOT coalesce(p.deleted OR p.hidden, false) {{only}}"""

_LIKE_TRUTH = f"""
    SELECT 'like' AS kind, l.target_id AS subject_id, l.actor_id, t.author_id AS person_id,
           {_month("l.occurred_at")} AS month,
           0 AS posts, 0 AS comments, 1 AS likes_received, 0 AS builder_comments, 0 AS builder_likes
    FROM like_states l
    JOIN contents t ON t.id = l.target_id
    LEFT JOIN contents p ON t.is_comment AND p.id = t.post_id
    WHERE l.active AND l.actor_id <> t.author_id AND t.created_at IS NOT NULL AND NOT t.deleted AND NOT t.hidden
      AND NOT coalesce(p.deleted OR p.hidden, false) {{only}}"""


async def score_truth(
    conn: Connection,
    *,
    post_ids: Sequence[uuid.UUID],
    comment_ids: Sequence[uuid.UUID],
    likes: Sequence[tuple[uuid.UUID, str]],
) -> list[asyncpg.Record]:
    """The contribution each given subject makes now, from contents and like states; none if it makes none."""
    rows: list[asyncpg.Record] = []
    if post_ids:
        rows += await conn.fetch(_POST_TRUTH.format(only="AND p.id = ANY($1::uuid[])"), list(post_ids))
    if comment_ids:
        rows += await conn.fetch(_COMMENT_TRUTH.format(only="AND c.id = ANY($1::uuid[])"), list(comment_ids))
    if likes:
        rows += await conn.fetch(
            _LIKE_TRUTH.format(only="AND (l.target_id, l.actor_id) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))"),
            [target for target, _ in likes],
            [actor for _, actor in likes],
        )
    return rows


async def all_score_truth(conn: Connection) -> list[asyncpg.Record]:
    """Every subject's contribution, recomputed from contents and like states: what a recount compares with."""
    return await conn.fetch(
        " UNION ALL ".join(query.format(only="") for query in (_POST_TRUTH, _COMMENT_TRUTH, _LIKE_TRUTH))
    )


async def stored_facts(conn: Connection, keys: Sequence[tuple[str, uuid.UUID, str]]) -> list[asyncpg.Record]:
    """The stored facts of these subjects, locked until the transaction ends."""
    return await conn.fetch(
        """SELECT f.* FROM score_facts f
           JOIN unnest($1::text[], $2::uuid[], $3::text[]) AS k(kind, subject_id, actor_id)
             ON f.kind = k.kind AND f.subject_id = k.subject_id AND f.actor_id = k.actor_id
           ORDER BY f.kind, f.subject_id, f.actor_id
           FOR UPDATE OF f""",
        *[list(column) for column in zip(*keys, strict=True)] if keys else [[], [], []],
    )


async def all_stored_facts(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM score_facts")


async def teams_of(conn: Connection, person_ids: Sequence[str]) -> dict[str, list[str]]:
    rows = await conn.fetch("SELECT person_id, teams FROM team_members WHERE person_id = ANY($1::text[])", person_ids)
    return {r["person_id"]: list(r["teams"]) for r in rows}


async def all_teams(conn: Connection) -> dict[str, list[str]]:
    return {r["person_id"]: list(r["teams"]) for r in await conn.fetch("SELECT person_id, teams FROM team_members")}


SCORE_FIELDS = ("posts", "comments", "likes_received", "builder_comments", "builder_likes")


async def save_facts(conn: Connection, facts: Sequence[dict[str, Any]]) -> None:
    """Write facts as they now stand (one row per subject)."""
    await conn.execute(
        """INSERT INTO score_facts AS f (kind, subject_id, actor_id, person_id, month, teams, posts, comments,
                                         likes_received, builder_comments, builder_likes)
           SELECT kind, subject_id, actor_id, person_id, month, ARRAY(SELECT jsonb_array_elements_text(teams::jsonb)),
                  posts, comments, likes_received, builder_comments, builder_likes
           FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::date[], $6::text[], $7::int[], $8::int[],
                       $9::int[], $10::int[], $11::int[])
                AS u(kind, subject_id, actor_id, person_id, month, teams, posts, comments, likes_received,
                     builder_comments, builder_likes)
           ON CONFLICT (kind, subject_id, actor_id) DO UPDATE SET
               person_id = excluded.person_id, month = excluded.month, teams = excluded.teams,
               posts = excluded.posts, comments = excluded.comments, likes_received = excluded.likes_received,
               builder_comments = excluded.builder_comments, builder_likes = excluded.builder_likes""",
        *_columns(
            [{**fact, "teams": orjson.dumps(fact["teams"]).decode()} for fact in facts],
            "kind",
            "subject_id",
            "actor_id",
            "person_id",
            "month",
            "teams",
            *SCORE_FIELDS,
        ),
    )


async def delete_facts(conn: Connection, keys: Sequence[tuple[str, uuid.UUID, str]]) -> None:
    if keys:
        await conn.execute(
            """DELETE FROM score_facts f
               USING unnest($1::text[], $2::uuid[], $3::text[]) AS k(kind, subject_id, actor_id)
               WHERE f.kind = k.kind AND f.subject_id = k.subject_id AND f.actor_id = k.actor_id""",
            *[list(column) for column in zip(*keys, strict=True)],
        )


async def add_to_counters(conn: Connection, deltas: Sequence[dict[str, Any]]) -> None:
    """Add each (month, team, person)'s difference to its counters, in key order (no deadlock between replicas)."""
    await conn.execute(
        """INSERT INTO score_counters AS c (month, team, person_id, posts, comments, likes_received,
                                            builder_comments, builder_likes)
           SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::int[],
                                $8::int[])
           ON CONFLICT (month, team, person_id) DO UPDATE SET
               posts = c.posts + excluded.posts, comments = c.comments + excluded.comments,
               likes_received = c.likes_received + excluded.likes_received,
               builder_comments = c.builder_comments + excluded.builder_comments,
               builder_likes = c.builder_likes + excluded.builder_likes""",
        *_columns(deltas, "month", "team", "person_id", *SCORE_FIELDS),
    )


async def all_counters(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM score_counters")


async def replace_counters(conn: Connection, counters: Sequence[dict[str, Any]]) -> None:
    await conn.execute("DELETE FROM score_counters")
    await add_to_counters(conn, counters)


async def lock_scores_for_recount(conn: Connection) -> None:
    """Hold off every consumer's score work until the recount's transaction ends, so it compares one state."""
    await conn.execute("LOCK TABLE contents, like_states, score_facts, score_counters IN SHARE ROW EXCLUSIVE MODE")


async def leaderboard(conn: Connection, *, month: date, team: str, by: str, limit: int) -> list[asyncpg.Record]:
    """The top people of a month and team; `by` is the SQL of the score (contributors' or builders')."""
    return await conn.fetch(
        f"""SELECT s.*, coalesce(d.name, '') AS name FROM (
                SELECT c.*, ({by}) AS score FROM score_counters c WHERE c.month = $1 AND c.team = $2
            ) s LEFT JOIN people_directory d ON d.id = s.person_id
            WHERE s.score > 0 ORDER BY s.score DESC, s.person_id LIMIT $3""",
        month,
        team,
        limit,
    )


async def remember_people(conn: Connection, people: Sequence[tuple[str, str]]) -> None:
    """Keep names seen in events until the people service's versioned event brings the current one."""
    if people:
        await conn.execute(
            """INSERT INTO people_directory (id, name, version)
               SELECT DISTINCT ON (id) id, name, 0 FROM unnest($1::text[], $2::text[]) AS u(id, name)
               ON CONFLICT (id) DO NOTHING""",
            [person for person, _ in people],
            [name for _, name in people],
        )


# Participation insight ------------------------------------------------------------------------------------


async def team_members(conn: Connection, team: str) -> list[str]:
    rows = await conn.fetch("SELECT person_id FROM team_members WHERE $1 = ANY(teams)", team)
    return [r["person_id"] for r in rows]


async def participants(conn: Connection, *, members: Sequence[str], start: datetime, end: datetime) -> asyncpg.Record:
    """How many of `members` posted, commented and reacted (liked a post or comment, or favourited) in [start, end):
    what still stands of it (deleted or hidden posts and comments leave)."""
    row = await conn.fetchrow(
        """WITH m AS (SELECT unnest($1::text[]) AS id)
           SELECT
             (SELECT count(DISTINCT c.author_id) FROM contents c JOIN m ON m.id = c.author_id
              WHERE NOT c.is_comment AND c.created_at >= $2 AND c.created_at < $3 AND NOT c.deleted AND NOT c.hidden)
               AS posted,
             (SELECT count(DISTINCT c.author_id) FROM contents c JOIN m ON m.id = c.author_id
              WHERE c.is_comment AND c.created_at >= $2 AND c.created_at < $3 AND NOT c.deleted AND NOT c.hidden)
               AS commented,
             (SELECT count(DISTINCT r.user_id) FROM (
                  SELECT user_id, created_at FROM likes
                  UNION ALL SELECT user_id, created_at FROM favourites
                  UNION ALL SELECT user_id, created_at FROM comment_likes
              ) r JOIN m ON m.id = r.user_id WHERE r.created_at >= $2 AND r.created_at < $3) AS reacted""",
        list(members),
        start,
        end,
    )
    assert row is not None
    return row


async def trending_ideas(
    conn: Connection, *, members: Sequence[str], viewer_id: str, start: datetime, end: datetime, min_backers: int
) -> list[asyncpg.Record]:
    """Ideas the viewer may see, by how many of `members` backed (liked) them in [start, end)."""
    return await conn.fetch(
        """SELECT l.post_id, count(*) AS new_backers
           FROM likes l
           JOIN contents i ON i.id = l.post_id AND NOT i.is_comment AND i.post_kind = 'idea'
                          AND NOT i.deleted AND NOT i.hidden
           JOIN posts p ON p.id = l.post_id AND NOT p.deleted AND may_see($2, p.author_id, p.audience)
           WHERE l.user_id = ANY($1::text[]) AND l.created_at >= $3 AND l.created_at < $4
           GROUP BY l.post_id HAVING count(*) >= $5
           ORDER BY new_backers DESC, l.post_id LIMIT 10""",
        list(members),
        viewer_id,
        start,
        end,
        min_backers,
    )


async def question_responses(
    conn: Connection, *, members: Sequence[str], start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """Questions `members` asked in [start, end), with the minutes to the first comment by someone else (null
    while unanswered)."""
    return await conn.fetch(
        """SELECT q.id, q.author_id,
                  extract(epoch FROM min(c.created_at) - q.created_at) / 60 AS minutes
           FROM contents q
           LEFT JOIN contents c ON c.is_comment AND c.post_id = q.id AND c.author_id <> q.author_id
                               AND c.created_at IS NOT NULL AND NOT c.deleted AND NOT c.hidden
           WHERE NOT q.is_comment AND q.post_kind = 'question' AND q.author_id = ANY($1::text[])
             AND q.created_at >= $2 AND q.created_at < $3 AND NOT q.deleted AND NOT q.hidden
           GROUP BY q.id, q.author_id, q.created_at""",
        list(members),
        start,
        end,
    )
