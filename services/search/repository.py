"""Every SQL statement of the search service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import orjson

from services.search.projection import PostState
from shared.db import Connection
from shared.events import PersonUpdatedV1

# A short text is shown whole (a person's name, title and expertise; a post up to SHORT_POST_CHARS).
WHOLE_HEADLINE_OPTIONS = "StartSel=<mark>, StopSel=</mark>, HighlightAll=true"
# A long post shows the fragments around its matches. ShortWord=0 keeps short words such as "Vi" that the
# default trims from the ends of a fragment.
FRAGMENTS_HEADLINE_OPTIONS = (
    'StartSel=<mark>, StopSel=</mark>, MaxFragments=3, MaxWords=30, MinWords=10, ShortWord=0, FragmentDelimiter=" … "'
)
SHORT_POST_CHARS = 300


async def upsert_posts(conn: Connection, states: Sequence[PostState]) -> None:
    """Merge each state into the stored one by the rules of projection.merge, in any order and repeatedly."""
    await conn.execute(
        """INSERT INTO posts AS p (id, author_id, body, created_at, audience, audience_version, deleted, version,
                                   hidden, moderation_version)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[], $6::bigint[],
                                $7::bool[], $8::bigint[], $9::bool[], $10::bigint[])
           ON CONFLICT (id) DO UPDATE SET
               body = CASE WHEN p.deleted OR excluded.deleted THEN NULL ELSE coalesce(p.body, excluded.body) END,
               created_at = coalesce(p.created_at, excluded.created_at),
               audience = CASE WHEN excluded.audience_version > p.audience_version
                               THEN excluded.audience ELSE p.audience END,
               audience_version = greatest(p.audience_version, excluded.audience_version),
               deleted = p.deleted OR excluded.deleted,
               version = greatest(p.version, excluded.version),
               hidden = CASE WHEN excluded.moderation_version > p.moderation_version
                             THEN excluded.hidden ELSE p.hidden END,
               moderation_version = greatest(p.moderation_version, excluded.moderation_version)
           -- Only when something changes: each update recomputes both text vectors and their index entries.
           WHERE excluded.audience_version > p.audience_version
              OR (excluded.deleted AND NOT p.deleted)
              OR (p.body IS NULL AND excluded.body IS NOT NULL AND NOT p.deleted)
              OR excluded.version > p.version
              OR excluded.moderation_version > p.moderation_version""",
        [s.post_id for s in states],
        [s.author_id for s in states],
        [s.body for s in states],
        [s.created_at for s in states],
        [s.audience for s in states],
        [s.audience_version for s in states],
        [s.deleted for s in states],
        [s.version for s in states],
        [s.hidden for s in states],
        [s.moderation_version for s in states],
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


async def search_posts(
    conn: Connection,
    *,
    query: str,
    viewer_id: str,
    after: tuple[float, datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Posts matching `query` in Norwegian or English that the viewer may see, best first, then newest.

    A post's rank is that of the language in which it matches better, and its headline is cut in that
    language, so the words highlighted are the ones that matched. Headlines are made for the page only:
    ts_headline is by far the most expensive part.
    """
    return await conn.fetch(
        """WITH hits AS (
               SELECT p.id, p.created_at, p.body, q.norwegian_query, q.english_query,
                      CASE WHEN p.norwegian @@ q.norwegian_query
                           THEN ts_rank_cd(p.norwegian, q.norwegian_query, 1) ELSE 0 END AS norwegian_rank,
                      CASE WHEN p.english @@ q.english_query
                           THEN ts_rank_cd(p.english, q.english_query, 1) ELSE 0 END AS english_rank
               FROM (SELECT websearch_to_tsquery('norwegian', $1) AS norwegian_query,
                            websearch_to_tsquery('english', $1) AS english_query) q
               JOIN posts p ON p.norwegian @@ q.norwegian_query OR p.english @@ q.english_query
               WHERE NOT p.deleted AND NOT p.hidden AND p.body IS NOT NULL
                 AND may_see($2, p.author_id, p.audience)
           ), page AS (
               SELECT *, greatest(norwegian_rank, english_rank)::real AS rank FROM hits
               WHERE $3::real IS NULL
                  OR (greatest(norwegian_rank, english_rank)::real, created_at, id) < ($3::real, $4, $5)
               ORDER BY rank DESC, created_at DESC, id DESC
               LIMIT $6
           )
           SELECT id, created_at, rank,
                  CASE WHEN norwegian_rank >= english_rank
                       THEN ts_headline('norwegian', escape_html(body), norwegian_query, options)
                       ELSE ts_headline('english', escape_html(body), english_query, options) END AS headline
           FROM page
           CROSS JOIN LATERAL (SELECT CASE WHEN char_length(body) <= $7 THEN $8 ELSE $9 END AS options) o
           ORDER BY rank DESC, created_at DESC, id DESC""",
        query,
        viewer_id,
        after[0] if after else None,
        after[1] if after else None,
        after[2] if after else None,
        limit,
        SHORT_POST_CHARS,
        WHOLE_HEADLINE_OPTIONS,
        FRAGMENTS_HEADLINE_OPTIONS,
    )


async def search_people(
    conn: Connection,
    *,
    query: str,
    name_prefixes: Sequence[str],
    viewer_id: str,
    after: tuple[float, str, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """People whose name begins with the words typed, or whose name, title or expertise matches `query`.

    `name_prefixes` must be words of letters and digits only (service.prefix_words): they are joined into
    tsquery syntax here. People who blocked the viewer, or whom the viewer blocked, are not found.
    """
    prefix_query = " & ".join(f"{word}:*" for word in name_prefixes)
    return await conn.fetch(
        """WITH hits AS (
               SELECT p.id, p.name, p.title, p.expertise, q.query,
                      -- Ranked by the reading that matches best. One rank of the three combined would not do:
                      -- ts_rank of an OR of ANDs is 0 when one of them does not match.
                      greatest(CASE WHEN p.document @@ q.prefixes THEN ts_rank(p.document, q.prefixes) ELSE 0 END,
                               CASE WHEN p.document @@ q.norwegian THEN ts_rank(p.document, q.norwegian) ELSE 0 END,
                               CASE WHEN p.document @@ q.english THEN ts_rank(p.document, q.english) ELSE 0 END
                      )::real AS rank
               FROM (SELECT prefixes, norwegian, english, prefixes || norwegian || english AS query
                     FROM (SELECT to_tsquery('simple', $1) AS prefixes,
                                  websearch_to_tsquery('norwegian', $2) AS norwegian,
                                  websearch_to_tsquery('english', $2) AS english) readings) q
               JOIN people p ON p.document @@ q.query
               WHERE NOT blocked_between($3, p.id)
           ), page AS (
               SELECT * FROM hits
               WHERE $4::real IS NULL OR rank < $4::real OR (rank = $4::real AND (name, id) > ($5, $6))
               ORDER BY rank DESC, name, id
               LIMIT $7
           )
           SELECT id, name, title, expertise, rank,
                  ts_headline('norwegian', escape_html(concat_ws(' · ', name, title, array_to_string(expertise, ', '))),
                              query, $8) AS headline
           FROM page
           ORDER BY rank DESC, name, id""",
        prefix_query,
        query,
        viewer_id,
        after[0] if after else None,
        after[1] if after else None,
        after[2] if after else None,
        limit,
        WHOLE_HEADLINE_OPTIONS,
    )
