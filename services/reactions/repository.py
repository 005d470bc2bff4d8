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


async def find_post(conn: Connection, post_id: uuid.UUID, *, lock: bool = False) -> asyncpg.Record | None:
    # FOR SHARE makes a like wait for a delete of the same post being applied, and vice versa.
    suffix = " FOR SHARE" if lock else ""
    return await conn.fetchrow(
        f"SELECT id, author_id, audience FROM posts WHERE id = $1 AND NOT deleted{suffix}", post_id
    )


async def add_reaction(
    conn: Connection, reaction: Reaction, *, post_id: uuid.UUID, user_id: str
) -> asyncpg.Record | None:
    """Insert the reaction and bump the counter in one statement; the row says whether anything changed."""
    table, count = _TABLE[reaction], _COUNT[reaction]
    return await conn.fetchrow(
        f"""WITH added AS (
                INSERT INTO {table} (post_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING post_id
            ), bumped AS (
                INSERT INTO post_counters AS c (post_id, like_count, favourite_count, version)
                SELECT post_id, {int(reaction == "like")}, {int(reaction == "favourite")}, 1 FROM added
                ON CONFLICT (post_id) DO UPDATE SET {count} = c.{count} + 1, version = c.version + 1
                RETURNING like_count, favourite_count, version
            )
            SELECT like_count, favourite_count, version, true AS changed FROM bumped
            UNION ALL
            SELECT like_count, favourite_count, version, false FROM post_counters
            WHERE post_id = $1 AND NOT EXISTS (SELECT 1 FROM bumped)""",
        post_id,
        user_id,
    )


async def remove_reaction(
    conn: Connection, reaction: Reaction, *, post_id: uuid.UUID, user_id: str
) -> asyncpg.Record | None:
    table, count = _TABLE[reaction], _COUNT[reaction]
    return await conn.fetchrow(
        f"""WITH removed AS (
                DELETE FROM {table} WHERE post_id = $1 AND user_id = $2 RETURNING post_id
            ), lowered AS (
                UPDATE post_counters c SET {count} = c.{count} - 1, version = c.version + 1
                FROM removed WHERE c.post_id = removed.post_id
                RETURNING c.like_count, c.favourite_count, c.version
            )
            SELECT like_count, favourite_count, version, true AS changed FROM lowered
            UNION ALL
            SELECT like_count, favourite_count, version, false FROM post_counters
            WHERE post_id = $1 AND NOT EXISTS (SELECT 1 FROM lowered)""",
        post_id,
        user_id,
    )


async def likers_page(
    conn: Connection, *, post_id: uuid.UUID, after: tuple[datetime, str] | None, limit: int
) -> list[asyncpg.Record]:
    if after is None:
        after_clause, args = "", [post_id, limit]
    else:
        after_clause, args = "AND (l.created_at, l.user_id) < ($3, $4)", [post_id, limit, after[0], after[1]]
    return await conn.fetch(
        f"""SELECT l.user_id, coalesce(p.name, '') AS name, l.created_at
            FROM likes l LEFT JOIN people_directory p ON p.id = l.user_id
            WHERE l.post_id = $1 {after_clause}
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
            WHERE f.user_id = $1 {after_clause}
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
