"""Every SQL statement of the people service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from shared.db import Connection

PERSON_COLUMNS = "id, name, email, locale, title, department, location, bio, expertise, languages, photo_url, version"


async def upsert_from_claims(
    conn: Connection, *, person_id: str, name: str, email: str | None, locale: str | None
) -> asyncpg.Record | None:
    """Create the profile or bring it in line with the token; returns the row only when something changed."""
    return await conn.fetchrow(
        f"""INSERT INTO people AS p (id, name, email, locale) VALUES ($1, $2, $3, $4)
            ON CONFLICT (id) DO UPDATE
            SET name = excluded.name, email = excluded.email, locale = excluded.locale,
                updated_at = now(), version = p.version + 1
            WHERE (p.name, p.email, p.locale) IS DISTINCT FROM (excluded.name, excluded.email, excluded.locale)
            RETURNING {PERSON_COLUMNS}""",
        person_id,
        name,
        email,
        locale,
    )


async def fetch_person(conn: Connection, person_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {PERSON_COLUMNS} FROM people WHERE id = $1", person_id)


async def update_profile(conn: Connection, person_id: str, fields: dict[str, Any]) -> asyncpg.Record | None:
    """Change the given profile fields; returns the row only when something changed."""
    names = list(fields)
    assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
    differs = " OR ".join(f"{name} IS DISTINCT FROM ${i + 2}" for i, name in enumerate(names))
    return await conn.fetchrow(
        f"""UPDATE people SET {assignments}, updated_at = now(), version = version + 1
            WHERE id = $1 AND ({differs}) RETURNING {PERSON_COLUMNS}""",
        person_id,
        *fields.values(),
    )


async def replace_teams(conn: Connection, *, person_id: str, teams: Sequence[str]) -> int | None:
    """Set the person's teams; returns the new team version only when they changed."""
    version: int | None = await conn.fetchval(
        """INSERT INTO team_members AS t (person_id, teams, version) VALUES ($1, $2, 1)
           ON CONFLICT (person_id) DO UPDATE SET teams = excluded.teams, version = t.version + 1
           WHERE t.teams IS DISTINCT FROM excluded.teams
           RETURNING version""",
        person_id,
        sorted(set(teams)),
    )
    return version


async def teams_of(conn: Connection, person_id: str) -> list[str]:
    teams = await conn.fetchval("SELECT teams FROM team_members WHERE person_id = $1", person_id)
    return list(teams or [])


async def set_relation(conn: Connection, *, actor_id: str, kind: str, target_id: str, active: bool) -> int | None:
    """Turn a relation on or off; returns its new version only when it changed."""
    if not active:
        version: int | None = await conn.fetchval(
            """UPDATE relations SET active = false, version = version + 1, updated_at = now()
               WHERE actor_id = $1 AND kind = $2 AND target_id = $3 AND active RETURNING version""",
            actor_id,
            kind,
            target_id,
        )
        return version
    return await conn.fetchval(
        """INSERT INTO relations AS r (actor_id, kind, target_id, active, version) VALUES ($1, $2, $3, true, 1)
           ON CONFLICT (actor_id, kind, target_id) DO UPDATE
           SET active = true, version = r.version + 1, updated_at = now(), created_at = now()
           WHERE NOT r.active
           RETURNING version""",
        actor_id,
        kind,
        target_id,
    )


async def relation_flags(conn: Connection, *, viewer_id: str, person_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        """SELECT
             EXISTS (SELECT 1 FROM relations WHERE actor_id = $1 AND kind = 'follow' AND target_id = $2 AND active)
               AS following,
             EXISTS (SELECT 1 FROM relations WHERE actor_id = $1 AND kind = 'mute' AND target_id = $2 AND active)
               AS muted,
             EXISTS (SELECT 1 FROM relations WHERE actor_id = $1 AND kind = 'block' AND target_id = $2 AND active)
               AS blocked,
             EXISTS (SELECT 1 FROM relations WHERE actor_id = $2 AND kind = 'block' AND target_id = $1 AND active)
               AS blocked_by,
             (SELECT count(*) FROM relations WHERE target_id = $2 AND kind = 'follow' AND active) AS followers,
             (SELECT count(*) FROM relations WHERE actor_id = $2 AND kind = 'follow' AND active) AS following_count
        """,
        viewer_id,
        person_id,
    )
    assert row is not None
    return row


async def followers_page(
    conn: Connection, *, person_id: str, outgoing: bool, after: tuple[datetime, str] | None, limit: int
) -> list[asyncpg.Record]:
    """Followers of a person (or, outgoing, whom they follow), newest relation first."""
    mine, other = ("actor_id", "target_id") if outgoing else ("target_id", "actor_id")
    args: list[Any] = [person_id, limit]
    after_clause = ""
    if after is not None:
        after_clause = f"AND (r.updated_at, r.{other}) < ($3, $4)"
        args += list(after)
    return await conn.fetch(
        f"""SELECT r.{other} AS id, p.name, r.updated_at
            FROM relations r JOIN people p ON p.id = r.{other}
            WHERE r.{mine} = $1 AND r.kind = 'follow' AND r.active {after_clause}
            ORDER BY r.updated_at DESC, r.{other} DESC LIMIT $2""",
        *args,
    )
