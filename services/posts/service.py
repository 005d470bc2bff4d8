"""Use cases of the posts service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.posts import repository
from shared.api import CreatePost, Person, Post
from shared.auth import Claims
from shared.db import Connection
from shared.directory import remember_person
from shared.events import (
    Audience,
    Event,
    EventType,
    PersonRef,
    PostAudienceChangedV1,
    PostCreatedV1,
    PostDeletedV1,
    ReactionChangedV1,
    TeamAudience,
    new_envelope,
    newest_by_version,
)
from shared.http import ProblemError
from shared.outbox import add_to_outbox

SOURCE = "posts"


def _post_from_row(row: asyncpg.Record) -> Post:
    return Post(
        id=row["id"],
        author=Person(id=row["author_id"], name=row["author_name"]),
        kind=row["kind"],
        body=row["body"],
        audience=row["audience"],
        created_at=row["created_at"],
        like_count=row["like_count"],
        favourite_count=row["favourite_count"],
    )


def post_not_found(post_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not Found", f"post {post_id} does not exist")


def _check_author_may_address(author: Claims, audience: Audience) -> None:
    # The token's groups are the identity provider's word on membership at this moment.
    if isinstance(audience, TeamAudience) and audience.team not in author.groups:
        raise ProblemError(
            422,
            "Unprocessable Content",
            "invalid input in body.audience.team: you can only post to a team you belong to",
            errors=[{"field": "body.audience.team", "message": "you are not a member of this team", "type": "team"}],
        )


async def create_post(pool: asyncpg.Pool, *, author: Claims, request: CreatePost) -> Post:
    _check_author_may_address(author, request.audience)
    post_id = uuid.uuid4()
    audience: dict[str, Any] = request.audience.model_dump()
    async with pool.acquire() as conn, conn.transaction():
        await remember_person(conn, person_id=author.sub, name=author.name)
        row = await repository.insert_post(
            conn, post_id=post_id, author_id=author.sub, kind=request.kind, body=request.body, audience=audience
        )
        event = PostCreatedV1(
            post_id=post_id,
            author=PersonRef(id=author.sub, name=author.name),
            kind=request.kind,
            body=request.body,
            audience=request.audience,
            created_at=row["created_at"],
            version=row["version"],
        )
        await add_to_outbox(conn, new_envelope(EventType.POST_CREATED, source=SOURCE, subject=str(post_id), data=event))
        stored = await repository.fetch_post(conn, post_id, viewer_id=author.sub)
    assert stored is not None
    return _post_from_row(stored)


async def get_post(pool: asyncpg.Pool, post_id: uuid.UUID, *, viewer: Claims) -> Post:
    async with pool.acquire() as conn:
        row = await repository.fetch_post(conn, post_id, viewer_id=viewer.sub)
    if row is None:
        raise post_not_found(post_id)
    return _post_from_row(row)


async def get_posts(pool: asyncpg.Pool, post_ids: Sequence[uuid.UUID], *, viewer: Claims) -> list[Post]:
    """The posts that exist and the viewer may see, in the order asked for."""
    async with pool.acquire() as conn:
        rows = {row["id"]: row for row in await repository.fetch_posts(conn, post_ids, viewer_id=viewer.sub)}
    return [_post_from_row(rows[post_id]) for post_id in post_ids if post_id in rows]


async def delete_post(pool: asyncpg.Pool, *, post_id: uuid.UUID, user: Claims) -> None:
    async with pool.acquire() as conn, conn.transaction():
        post = await repository.lock_post(conn, post_id, viewer_id=user.sub)
        if post is None:
            raise post_not_found(post_id)
        if post["author_id"] != user.sub:
            raise ProblemError(403, "Forbidden", "only the author can delete a post")
        version = await repository.mark_deleted(conn, post_id)
        event = PostDeletedV1(post_id=post_id, author_id=post["author_id"], version=version)
        await add_to_outbox(conn, new_envelope(EventType.POST_DELETED, source=SOURCE, subject=str(post_id), data=event))


async def change_audience(pool: asyncpg.Pool, *, post_id: uuid.UUID, user: Claims, audience: Audience) -> Post:
    """The author widens or narrows who may see the post; every service follows by event."""
    _check_author_may_address(user, audience)
    async with pool.acquire() as conn, conn.transaction():
        post = await repository.lock_post(conn, post_id, viewer_id=user.sub)
        if post is None:
            raise post_not_found(post_id)
        if post["author_id"] != user.sub:
            raise ProblemError(403, "Forbidden", "only the author can change who sees a post")
        version = await repository.change_audience(conn, post_id, audience.model_dump())
        event = PostAudienceChangedV1(post_id=post_id, author_id=user.sub, audience=audience, version=version)
        envelope = new_envelope(EventType.POST_AUDIENCE_CHANGED, source=SOURCE, subject=str(post_id), data=event)
        await add_to_outbox(conn, envelope)
        stored = await repository.fetch_post(conn, post_id, viewer_id=user.sub)
    assert stored is not None
    return _post_from_row(stored)


async def apply_reaction_counts(conn: Connection, events: Sequence[Event]) -> None:
    changes = [event.data for event in events if isinstance(event.data, ReactionChangedV1)]
    newest = newest_by_version(changes, key=lambda c: c.post_id, version=lambda c: c.version)
    await repository.apply_count_versions(
        conn, [(c.post_id, c.like_count, c.favourite_count, c.version) for c in newest.values()]
    )
