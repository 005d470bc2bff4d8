"""Every SQL statement of the posts service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from shared.db import Connection

POST_COLUMNS = """
    p.id, p.author_id, coalesce(a.name, '') AS author_name, p.kind, p.body, p.audience, p.created_at,
    coalesce(c.like_count, 0) AS like_count, coalesce(c.favourite_count, 0) AS favourite_count
"""
POST_FROM = """
    posts p
    LEFT JOIN people_directory a ON a.id = p.author_id
    LEFT JOIN post_counts c ON c.post_id = p.id
"""


async def insert_post(
    conn: Connection, *, post_id: uuid.UUID, author_id: str, kind: str, body: str, audience: dict[str, Any]
) -> asyncpg.Record:
    row = await conn.fetchrow(
        "INSERT INTO posts (id, author_id, kind, body, audience) VALUES ($1, $2, $3, $4, $5)"
        " RETURNING id, created_at, version",
        post_id,
        author_id,
        kind,
        body,
        audience,
    )
    assert row is not None
    return row


async def fetch_post(conn: Connection, post_id: uuid.UUID, *, viewer_id: str) -> asyncpg.Record | None:
    """The post if it exists and the viewer is in its audience; outside it, the post does not exist."""
    return await conn.fetchrow(
        f"""SELECT {POST_COLUMNS} FROM {POST_FROM}
            WHERE p.id = $1 AND p.deleted_at IS NULL AND may_see($2, p.author_id, p.audience)""",
        post_id,
        viewer_id,
    )


async def fetch_posts(conn: Connection, post_ids: Sequence[uuid.UUID], *, viewer_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT {POST_COLUMNS} FROM {POST_FROM}
            WHERE p.id = ANY($1::uuid[]) AND p.deleted_at IS NULL AND may_see($2, p.author_id, p.audience)""",
        list(post_ids),
        viewer_id,
    )


async def lock_post(conn: Connection, post_id: uuid.UUID, *, viewer_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, author_id, version FROM posts
           WHERE id = $1 AND deleted_at IS NULL AND may_see($2, author_id, audience) FOR UPDATE""",
        post_id,
        viewer_id,
    )


async def change_audience(conn: Connection, post_id: uuid.UUID, audience: dict[str, Any]) -> int:
    version: int = await conn.fetchval(
        "UPDATE posts SET audience = $2, version = version + 1 WHERE id = $1 RETURNING version", post_id, audience
    )
    return version


async def mark_deleted(conn: Connection, post_id: uuid.UUID) -> int:
    return await conn.fetchval(
        "UPDATE posts SET deleted_at = now(), version = version + 1 WHERE id = $1 RETURNING version", post_id
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
