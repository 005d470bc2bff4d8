"""Every SQL statement of the reactions service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import asyncpg

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
