"""Use cases of the search service: keep the search projection from events, and answer searches from it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import asyncpg

from services.search import repository
from services.search.projection import PostState, merge, state_of
from services.search.results import PersonHit, PersonHitPage, PostHit, PostHitPage
from shared.api import Person, decode_cursor, encode_cursor
from shared.auth import Claims
from shared.db import Connection
from shared.events import Event, PersonUpdatedV1, newest_by_version
from shared.http import ProblemError

SearchType = Literal["posts", "people"]

MAX_QUERY_CHARS = 200
# More words than anyone types into a search box; keeps the prefix query small whatever arrives.
MAX_PREFIX_WORDS = 16
# Letters and digits only, so a word can be written into tsquery syntax without escaping anything.
_WORD = re.compile(r"[^\W_]+")


async def apply_post_changes(conn: Connection, events: Sequence[Event]) -> None:
    states: dict[uuid.UUID, PostState] = {}
    for event in events:
        state = state_of(event.data)
        if state is None:
            continue
        seen = states.get(state.post_id)
        states[state.post_id] = state if seen is None else merge(seen, state)
    if states:
        await repository.upsert_posts(conn, list(states.values()))


async def apply_person_updates(conn: Connection, events: Sequence[Event]) -> None:
    updates = [event.data for event in events if isinstance(event.data, PersonUpdatedV1)]
    newest = newest_by_version(updates, key=lambda p: p.person_id, version=lambda p: p.version)
    if newest:
        await repository.upsert_people(conn, list(newest.values()))


def checked_query(q: str) -> str:
    """The query trimmed; 422 naming query.q unless 1-200 characters remain."""
    trimmed = q.strip()
    if not trimmed or len(trimmed) > MAX_QUERY_CHARS:
        message = (
            "must not be empty"
            if not trimmed
            else f"must be at most {MAX_QUERY_CHARS} characters after trimming, got {len(trimmed)}"
        )
        raise ProblemError(
            422,
            "Unprocessable Content",
            "invalid input in query.q",
            errors=[{"field": "query.q", "message": message, "type": "string_length"}],
        )
    return trimmed


def prefix_words(q: str) -> list[str]:
    """The words of a query to match as beginnings of names: "Kar" finds "Kari"."""
    words = dict.fromkeys(word.lower() for word in _WORD.findall(q))
    return list(words)[:MAX_PREFIX_WORDS]


def _foreign_cursor() -> ProblemError:
    return ProblemError(
        422,
        "Unprocessable Content",
        "invalid input in query.cursor",
        errors=[{"field": "query.cursor", "message": "not a cursor returned by this API", "type": "cursor"}],
    )


def post_cursor_position(cursor: str | None) -> tuple[float, datetime, uuid.UUID] | None:
    """Where the previous page of posts ended; 422 for a cursor of another listing or not ours at all."""
    parts = decode_cursor(cursor, arity=4)
    if parts is None:
        return None
    try:
        kind, rank, created_at, post_id = parts
        if kind != "posts" or not isinstance(rank, int | float) or isinstance(rank, bool):
            raise ValueError
        return float(rank), datetime.fromisoformat(created_at), uuid.UUID(post_id)
    except (TypeError, ValueError) as exc:
        raise _foreign_cursor() from exc


def person_cursor_position(cursor: str | None) -> tuple[float, str, str] | None:
    """Where the previous page of people ended; 422 for a cursor of another listing or not ours at all."""
    parts = decode_cursor(cursor, arity=4)
    if parts is None:
        return None
    kind, rank, name, person_id = parts
    if (
        kind != "people"
        or not isinstance(rank, int | float)
        or isinstance(rank, bool)
        or not isinstance(name, str)
        or not isinstance(person_id, str)
    ):
        raise _foreign_cursor()
    return float(rank), name, person_id


async def search_posts(pool: asyncpg.Pool, *, viewer: Claims, q: str, cursor: str | None, limit: int) -> PostHitPage:
    query = checked_query(q)
    after = post_cursor_position(cursor)
    async with pool.acquire() as conn:
        rows = await repository.search_posts(conn, query=query, viewer_id=viewer.sub, after=after, limit=limit + 1)
    page = rows[:limit]
    items = [PostHit(post_id=r["id"], headline=r["headline"], rank=r["rank"], created_at=r["created_at"]) for r in page]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor("posts", last["rank"], last["created_at"].isoformat(), str(last["id"]))
    return PostHitPage(items=items, next_cursor=next_cursor)


async def search_people(pool: asyncpg.Pool, *, viewer: Claims, q: str, cursor: str | None, limit: int) -> PersonHitPage:
    query = checked_query(q)
    after = person_cursor_position(cursor)
    async with pool.acquire() as conn:
        rows = await repository.search_people(
            conn, query=query, name_prefixes=prefix_words(query), viewer_id=viewer.sub, after=after, limit=limit + 1
        )
    page = rows[:limit]
    items = [
        PersonHit(
            person=Person(id=r["id"], name=r["name"]),
            title=r["title"],
            expertise=list(r["expertise"]),
            headline=r["headline"],
            rank=r["rank"],
        )
        for r in page
    ]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor("people", last["rank"], last["name"], last["id"])
    return PersonHitPage(items=items, next_cursor=next_cursor)


async def search(
    pool: asyncpg.Pool, *, viewer: Claims, q: str, kind: SearchType, cursor: str | None, limit: int
) -> PostHitPage | PersonHitPage:
    if kind == "people":
        return await search_people(pool, viewer=viewer, q=q, cursor=cursor, limit=limit)
    return await search_posts(pool, viewer=viewer, q=q, cursor=cursor, limit=limit)
