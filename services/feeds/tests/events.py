"""Events as the feeds service receives them, for tests that call its handlers directly."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from shared.db import Connection
from shared.events import (
    Audience,
    ContentModeratedV1,
    Contract,
    Event,
    EventType,
    PersonBlockedV1,
    PersonFollowedV1,
    PersonMutedV1,
    PersonRef,
    PersonUnblockedV1,
    PersonUnfollowedV1,
    PersonUnmutedV1,
    PostAudienceChangedV1,
    PostCreatedV1,
    PostDeletedV1,
    PostLikedV1,
    PostUnlikedV1,
    TeamMembershipChangedV1,
    new_envelope,
)

EVERYONE: dict[str, Any] = {"type": "everyone"}
_AUDIENCE: TypeAdapter[Audience] = TypeAdapter(Audience)


def _event(event_type: EventType, subject: str, data: Contract) -> Event:
    return Event(envelope=new_envelope(event_type, source="test", subject=subject, data=data), data=data)


def post_created(
    post_id: uuid.UUID,
    author: str,
    *,
    audience: dict[str, Any] = EVERYONE,
    at: datetime | None = None,
    version: int = 1,
) -> Event:
    data = PostCreatedV1(
        post_id=post_id,
        author=PersonRef(id=author, name=f"Name of {author}"),
        kind="post",
        body="Halvferdig idé",
        audience=_AUDIENCE.validate_python(audience),
        created_at=at or datetime.now(UTC),
        version=version,
    )
    return _event(EventType.POST_CREATED, str(post_id), data)


def audience_changed(post_id: uuid.UUID, author: str, audience: dict[str, Any], *, version: int) -> Event:
    data = PostAudienceChangedV1(
        post_id=post_id, author_id=author, audience=_AUDIENCE.validate_python(audience), version=version
    )
    return _event(EventType.POST_AUDIENCE_CHANGED, str(post_id), data)


def moderated(post_id: uuid.UUID, author: str, *, hidden: bool, version: int) -> Event:
    data = ContentModeratedV1(post_id=post_id, author_id=author, hidden=hidden, reason="off topic", version=version)
    return _event(EventType.CONTENT_MODERATED, str(post_id), data)


def post_deleted(post_id: uuid.UUID, author: str, *, version: int) -> Event:
    return _event(
        EventType.POST_DELETED, str(post_id), PostDeletedV1(post_id=post_id, author_id=author, version=version)
    )


def like(
    post_id: uuid.UUID, author: str, actor: str, *, version: int, active: bool = True, at: datetime | None = None
) -> Event:
    model = PostLikedV1 if active else PostUnlikedV1
    data = model(
        post_id=post_id,
        post_author_id=author,
        actor=PersonRef(id=actor, name=f"Name of {actor}"),
        like_count=0,
        favourite_count=0,
        version=version,
        occurred_at=at or datetime.now(UTC),
    )
    return _event(EventType.POST_LIKED if active else EventType.POST_UNLIKED, str(post_id), data)


_RELATIONS = {
    ("follow", True): (EventType.PERSON_FOLLOWED, PersonFollowedV1),
    ("follow", False): (EventType.PERSON_UNFOLLOWED, PersonUnfollowedV1),
    ("mute", True): (EventType.PERSON_MUTED, PersonMutedV1),
    ("mute", False): (EventType.PERSON_UNMUTED, PersonUnmutedV1),
    ("block", True): (EventType.PERSON_BLOCKED, PersonBlockedV1),
    ("block", False): (EventType.PERSON_UNBLOCKED, PersonUnblockedV1),
}


def relation(kind: str, actor: str, target: str, *, version: int, active: bool = True) -> Event:
    event_type, model = _RELATIONS[(kind, active)]
    return _event(event_type, actor, model(actor_id=actor, target_id=target, version=version))


def teams(person: str, names: list[str], *, version: int) -> Event:
    data = TeamMembershipChangedV1(person_id=person, teams=names, version=version)
    return _event(EventType.TEAM_MEMBERSHIP_CHANGED, person, data)


Handler = Callable[[Connection, Sequence[Event]], Awaitable[None]]


async def deliver(pool: asyncpg.Pool, handler: Handler, *events: Event) -> None:
    """Apply a batch in one transaction, as the consumer does."""
    async with pool.acquire() as conn, conn.transaction():
        await handler(conn, events)
