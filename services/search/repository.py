"""Every SQL statement of the search service."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from services.search.projection import PostState
from shared.db import Connection
from shared.events import PersonUpdatedV1


async def upsert_posts(conn: Connection, states: Sequence[PostState]) -> None:
    """Merge each state into the stored one by the rules of projection.merge, in any order and repeatedly."""
    await conn.execute(
        """INSERT INTO posts AS p (id, author_id, body, created_at, audience, audience_version, deleted, version)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[], $6::bigint[],
                                $7::bool[], $8::bigint[])
           ON CONFLICT (id) DO UPDATE SET
               body = CASE WHEN p.deleted OR excluded.deleted THEN NULL ELSE coalesce(p.body, excluded.body) END,
               created_at = coalesce(p.created_at, excluded.created_at),
               audience = CASE WHEN excluded.audience_version > p.audience_version
                               THEN excluded.audience ELSE p.audience END,
               audience_version = greatest(p.audience_version, excluded.audience_version),
               deleted = p.deleted OR excluded.deleted,
               version = greatest(p.version, excluded.version)
           -- Only when something changes: each update recomputes both text vectors and their index entries.
           WHERE excluded.audience_version > p.audience_version
              OR (excluded.deleted AND NOT p.deleted)
              OR (p.body IS NULL AND excluded.body IS NOT NULL AND NOT p.deleted)
              OR excluded.version > p.version""",
        [s.post_id for s in states],
        [s.author_id for s in states],
        [s.body for s in states],
        [s.created_at for s in states],
        [s.audience for s in states],
        [s.audience_version for s in states],
        [s.deleted for s in states],
        [s.version for s in states],
    )


async def upsert_people(conn: Connection, people: Sequence[PersonUpdatedV1]) -> None:
    """Keep each person's newest profile; an older or repeated version changes nothing."""
    # unnest cannot take an array of arrays of different lengths: pass each expertise list as one JSON text.
    await conn.execute(
        """INSERT INTO people AS p (id, name, title, expertise, version)
           SELECT id, name, title, ARRAY(SELECT jsonb_array_elements_text(expertise::jsonb)), version
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
                AS u(id, name, title, expertise, version)
           ON CONFLICT (id) DO UPDATE
           SET name = excluded.name, title = excluded.title, expertise = excluded.expertise,
               version = excluded.version
           WHERE p.version < excluded.version""",
        [p.person_id for p in people],
        [p.name for p in people],
        [p.title for p in people],
        [orjson.dumps(p.expertise).decode() for p in people],
        [p.version for p in people],
    )
