"""Use cases of the people service: profiles, teams and the social graph (follow, mute, block)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg

from services.people import repository
from services.people.completeness import completeness
from shared.api import Me, Person, PersonPage, Profile, ProfileUpdate, decode_cursor, encode_cursor
from shared.auth import Claims
from shared.db import Connection
from shared.events import (
    EventType,
    PersonBlockedV1,
    PersonFollowedV1,
    PersonMutedV1,
    PersonUnblockedV1,
    PersonUnfollowedV1,
    PersonUnmutedV1,
    PersonUpdatedV1,
    RelationChangedV1,
    TeamMembershipChangedV1,
    new_envelope,
)
from shared.http import ProblemError
from shared.outbox import add_to_outbox

SOURCE = "people"
RelationKind = Literal["follow", "mute", "block"]

_RELATION_EVENTS: dict[tuple[str, bool], tuple[EventType, type[RelationChangedV1]]] = {
    ("follow", True): (EventType.PERSON_FOLLOWED, PersonFollowedV1),
    ("follow", False): (EventType.PERSON_UNFOLLOWED, PersonUnfollowedV1),
    ("mute", True): (EventType.PERSON_MUTED, PersonMutedV1),
    ("mute", False): (EventType.PERSON_UNMUTED, PersonUnmutedV1),
    ("block", True): (EventType.PERSON_BLOCKED, PersonBlockedV1),
    ("block", False): (EventType.PERSON_UNBLOCKED, PersonUnblockedV1),
}


def person_not_found(person_id: str) -> ProblemError:
    return ProblemError(404, "Not Found", f"person {person_id} does not exist")


def _profile_fields(row: asyncpg.Record) -> dict[str, Any]:
    """The fields a person edits on their profile, as both the event and the Profile reply carry them."""
    fields = {name: row[name] for name in ("title", "department", "location", "bio", "photo_url")}
    return {**fields, "expertise": list(row["expertise"]), "languages": list(row["languages"])}


async def _publish_person(conn: Connection, row: asyncpg.Record) -> None:
    event = PersonUpdatedV1(
        person_id=row["id"],
        name=row["name"],
        email=row["email"],
        locale=row["locale"],
        version=row["version"],
        **_profile_fields(row),
    )
    await add_to_outbox(conn, new_envelope(EventType.PERSON_UPDATED, source=SOURCE, subject=row["id"], data=event))


async def sync_from_claims(pool: asyncpg.Pool, claims: Claims) -> Me:
    """The identity provider owns name, email, locale and teams: take them from the token when they change."""
    async with pool.acquire() as conn, conn.transaction():
        changed = await repository.upsert_from_claims(
            conn, person_id=claims.sub, name=claims.name, email=claims.email, locale=claims.locale
        )
        if changed is not None:
            await _publish_person(conn, changed)
        team_version = await repository.replace_teams(conn, person_id=claims.sub, teams=claims.groups)
        if team_version is not None:
            event = TeamMembershipChangedV1(
                person_id=claims.sub, teams=sorted(set(claims.groups)), version=team_version
            )
            envelope = new_envelope(EventType.TEAM_MEMBERSHIP_CHANGED, source=SOURCE, subject=claims.sub, data=event)
            await add_to_outbox(conn, envelope)
        row = changed or await repository.fetch_person(conn, claims.sub)
    assert row is not None  # the upsert above created it, or it existed unchanged
    return Me(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        locale=row["locale"],
        completeness=completeness(dict(row), locale=claims.locale or row["locale"]),
    )


async def _profile(conn: Connection, row: asyncpg.Record, *, viewer_id: str) -> Profile:
    flags = await repository.relation_flags(conn, viewer_id=viewer_id, person_id=row["id"])
    return Profile(
        id=row["id"],
        name=row["name"],
        **_profile_fields(row),
        teams=await repository.teams_of(conn, row["id"]),
        followers_count=flags["followers"],
        following_count=flags["following_count"],
        following=flags["following"],
        muted=flags["muted"],
        blocked=flags["blocked"],
    )


async def get_profile(pool: asyncpg.Pool, *, person_id: str, viewer: Claims) -> Profile:
    async with pool.acquire() as conn:
        row = await repository.fetch_person(conn, person_id)
        if row is None:
            raise person_not_found(person_id)
        return await _profile(conn, row, viewer_id=viewer.sub)


async def update_profile(pool: asyncpg.Pool, *, user: Claims, update: ProfileUpdate) -> Profile:
    fields: dict[str, Any] = update.model_dump(exclude_unset=True)
    for list_field in ("expertise", "languages"):
        if list_field in fields:
            # Tags are a set in the order given: "Python, python" is one tag.
            seen: dict[str, str] = {}
            for tag in fields[list_field] or []:
                seen.setdefault(tag.strip().casefold(), tag.strip())
            fields[list_field] = list(seen.values())
    async with pool.acquire() as conn, conn.transaction():
        row = await repository.update_profile(conn, user.sub, fields) if fields else None
        if row is not None:
            await _publish_person(conn, row)
        else:
            row = await repository.fetch_person(conn, user.sub)
        if row is None:
            raise person_not_found(user.sub)
        return await _profile(conn, row, viewer_id=user.sub)


async def _change_relation(conn: Connection, *, actor_id: str, kind: str, target_id: str, active: bool) -> bool:
    version = await repository.set_relation(conn, actor_id=actor_id, kind=kind, target_id=target_id, active=active)
    if version is not None:
        event_type, model = _RELATION_EVENTS[(kind, active)]
        event = model(actor_id=actor_id, target_id=target_id, version=version)
        await add_to_outbox(conn, new_envelope(event_type, source=SOURCE, subject=actor_id, data=event))
    return version is not None


async def set_relation(pool: asyncpg.Pool, *, user: Claims, target_id: str, kind: RelationKind, active: bool) -> bool:
    """Follow, mute or block someone (active) or stop; idempotent. Returns the relation's state."""
    if target_id == user.sub:
        raise ProblemError(
            422,
            "Unprocessable Content",
            f"invalid input in path.person_id: you cannot {kind} yourself",
            errors=[{"field": "path.person_id", "message": f"you cannot {kind} yourself", "type": "self"}],
        )
    async with pool.acquire() as conn, conn.transaction():
        if await repository.fetch_person(conn, target_id) is None:
            raise person_not_found(target_id)
        if kind == "follow" and active and await conn.fetchval("SELECT blocked_between($1, $2)", user.sub, target_id):
            raise ProblemError(403, "Forbidden", "you cannot follow this person")
        await _change_relation(conn, actor_id=user.sub, kind=kind, target_id=target_id, active=active)
        if kind == "block" and active:
            # A block ends the follows both ways.
            await _change_relation(conn, actor_id=user.sub, kind="follow", target_id=target_id, active=False)
            await _change_relation(conn, actor_id=target_id, kind="follow", target_id=user.sub, active=False)
    return active


async def follow_list(
    pool: asyncpg.Pool, *, person_id: str, outgoing: bool, cursor: str | None, limit: int
) -> PersonPage:
    after = decode_cursor(cursor, arity=2)
    async with pool.acquire() as conn:
        if await repository.fetch_person(conn, person_id) is None:
            raise person_not_found(person_id)
        rows = await repository.followers_page(
            conn,
            person_id=person_id,
            outgoing=outgoing,
            after=(datetime.fromisoformat(after[0]), after[1]) if after else None,
            limit=limit + 1,
        )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]["updated_at"].isoformat(), page[-1]["id"]) if len(rows) > limit else None
    return PersonPage(items=[Person(id=r["id"], name=r["name"]) for r in page], next_cursor=next_cursor)
