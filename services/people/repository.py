"""Every SQL statement of the people service."""

from __future__ import annotations

import asyncpg

from shared.db import Connection


async def upsert_from_claims(
    conn: Connection, *, person_id: str, name: str, email: str | None, locale: str | None
) -> asyncpg.Record | None:
    """Create the profile or bring it in line with the token; returns the row only when something changed."""
    return await conn.fetchrow(
        """INSERT INTO people AS p (id, name, email, locale) VALUES ($1, $2, $3, $4)
           ON CONFLICT (id) DO UPDATE
           SET name = excluded.name, email = excluded.email, locale = excluded.locale,
               updated_at = now(), version = p.version + 1
           WHERE (p.name, p.email, p.locale) IS DISTINCT FROM (excluded.name, excluded.email, excluded.locale)
           RETURNING id, name, email, locale, version""",
        person_id,
        name,
        email,
        locale,
    )


async def fetch_person(conn: Connection, person_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, name, email, locale, version FROM people WHERE id = $1", person_id)
