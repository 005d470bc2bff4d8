"""Use cases of the reactions service: the source of truth for likes, favourites and their counts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.reactions import repository
from services.reactions.repository import Reaction
from shared.api import (
    FavouriteRef,
    FavouriteRefPage,
    MyReaction,
    Person,
    PersonPage,
    decode_cursor,
    encode_cursor,
)
from shared.auth import Claims
from shared.db import Connection
from shared.directory import remember_person
from shared.events import (
    CommentLikedV1,
    CommentReactionChangedV1,
    CommentUnlikedV1,
    Event,
    EventType,
    PersonRef,
    PostAudienceChangedV1,
    PostCreatedV1,
    PostDeletedV1,
    PostFavouritedV1,
    PostLikedV1,
    PostUnfavouritedV1,
    PostUnlikedV1,
    ReactionChangedV1,
    new_envelope,
    newest_by_version,
)
from shared.http import ProblemError
from shared.outbox import add_to_outbox

SOURCE = "reactions"

# A post reaches this service by event a few milliseconds after it is created; a like that arrives
# sooner waits for it rather than answering 404 for a post its author can already see.
POST_ARRIVAL_GRACE_SECONDS = 1.0

_EVENTS: dict[tuple[Reaction, bool], tuple[EventType, type[ReactionChangedV1]]] = {
    ("like", True): (EventType.POST_LIKED, PostLikedV1),
    ("like", False): (EventType.POST_UNLIKED, PostUnlikedV1),
    ("favourite", True): (EventType.POST_FAVOURITED, PostFavouritedV1),
    ("favourite", False): (EventType.POST_UNFAVOURITED, PostUnfavouritedV1),
}


def post_not_found(post_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not Found", f"post {post_id} does not exist")


async def _wait_for_post(pool: asyncpg.Pool, post_id: uuid.UUID, *, viewer_id: str) -> None:
    deadline = asyncio.get_running_loop().time() + POST_ARRIVAL_GRACE_SECONDS
    while True:
        async with pool.acquire() as conn:
            if await repository.find_post(conn, post_id, viewer_id=viewer_id) is not None:
                return
        if asyncio.get_running_loop().time() >= deadline:
            raise post_not_found(post_id)
        await asyncio.sleep(0.05)


async def set_reaction(
    pool: asyncpg.Pool, reaction: Reaction, *, post_id: uuid.UUID, user: Claims, on: bool
) -> tuple[bool, int, int]:
    """Like/favourite (on) or take it back (off); idempotent. Returns (state, like_count, favourite_count)."""
    event_type, model = _EVENTS[(reaction, on)]
    # The event as the contract renders it; the statement fills in the author, the counts and the
    # version it computes (zero and one here only to pass validation), and queues it only on a change.
    template = new_envelope(
        event_type,
        source=SOURCE,
        subject=str(post_id),
        data=model(
            post_id=post_id,
            post_author_id="",
            actor=PersonRef(id=user.sub, name=user.name),
            like_count=0,
            favourite_count=0,
            version=1,
            occurred_at=datetime.now(UTC),
        ),
    )
    for attempt in range(2):
        async with pool.acquire() as conn:
            row = await repository.change_reaction(
                conn,
                reaction,
                on=on,
                post_id=post_id,
                user_id=user.sub,
                user_name=user.name,
                event_id=template.id,
                routing_key=str(event_type),
                event_template=template.model_dump_json(),
            )
        if row is not None:
            return on, row["like_count"], row["favourite_count"]
        if attempt == 0:
            await _wait_for_post(pool, post_id, viewer_id=user.sub)
    raise post_not_found(post_id)


async def likers(
    pool: asyncpg.Pool, *, post_id: uuid.UUID, viewer: Claims, cursor: str | None, limit: int
) -> PersonPage:
    after = decode_cursor(cursor, arity=2)
    async with pool.acquire() as conn:
        if await repository.find_post(conn, post_id, viewer_id=viewer.sub) is None:
            raise post_not_found(post_id)
        rows = await repository.likers_page(
            conn,
            post_id=post_id,
            viewer_id=viewer.sub,
            after=(datetime.fromisoformat(after[0]), after[1]) if after else None,
            limit=limit + 1,
        )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]["created_at"].isoformat(), page[-1]["user_id"]) if len(rows) > limit else None
    return PersonPage(items=[Person(id=r["user_id"], name=r["name"]) for r in page], next_cursor=next_cursor)


async def favourites(pool: asyncpg.Pool, *, user: Claims, cursor: str | None, limit: int) -> FavouriteRefPage:
    after = decode_cursor(cursor, arity=2)
    async with pool.acquire() as conn:
        rows = await repository.favourites_page(
            conn,
            user_id=user.sub,
            after=(datetime.fromisoformat(after[0]), uuid.UUID(after[1])) if after else None,
            limit=limit + 1,
        )
    page = rows[:limit]
    next_cursor = (
        encode_cursor(page[-1]["created_at"].isoformat(), str(page[-1]["post_id"])) if len(rows) > limit else None
    )
    return FavouriteRefPage(
        items=[FavouriteRef(post_id=r["post_id"], favourited_at=r["created_at"]) for r in page],
        next_cursor=next_cursor,
    )


async def my_reactions(pool: asyncpg.Pool, *, user: Claims, post_ids: Sequence[uuid.UUID]) -> dict[str, MyReaction]:
    async with pool.acquire() as conn:
        rows = await repository.reactions_of_user(conn, user_id=user.sub, post_ids=post_ids)
    return {str(r["post_id"]): MyReaction(liked=r["liked"], favourited=r["favourited"]) for r in rows}


async def apply_post_changes(conn: Connection, events: Sequence[Event]) -> None:
    states: list[dict[str, Any]] = []
    for event in events:
        data = event.data
        post: dict[str, Any]
        if isinstance(data, PostCreatedV1):
            post = {
                "id": data.post_id,
                "author_id": data.author.id,
                "audience": data.audience.model_dump_json(),
                "deleted": False,
                "version": data.version,
            }
        elif isinstance(data, PostAudienceChangedV1):
            post = {
                "id": data.post_id,
                "author_id": data.author_id,
                "audience": data.audience.model_dump_json(),
                "deleted": False,
                "version": data.version,
            }
        elif isinstance(data, PostDeletedV1):
            post = {
                "id": data.post_id,
                "author_id": data.author_id,
                "audience": "{}",
                "deleted": True,
                "version": data.version,
            }
        else:
            continue
        states.append(post)
    newest = newest_by_version(states, key=lambda post: post["id"], version=lambda post: post["version"])
    if newest:
        await repository.apply_post_versions(conn, list(newest.values()))


# Likes of comments ----------------------------------------------------------------------------------------

_COMMENT_EVENTS: dict[bool, tuple[EventType, type[CommentReactionChangedV1]]] = {
    True: (EventType.COMMENT_LIKED, CommentLikedV1),
    False: (EventType.COMMENT_UNLIKED, CommentUnlikedV1),
}


def comment_not_found(comment_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not Found", f"comment {comment_id} does not exist")


async def _wait_for_comment(pool: asyncpg.Pool, comment_id: uuid.UUID, *, viewer_id: str) -> None:
    """A comment reaches this service by event just after it is written, as a post does."""
    deadline = asyncio.get_running_loop().time() + POST_ARRIVAL_GRACE_SECONDS
    while True:
        async with pool.acquire() as conn:
            if await repository.find_comment(conn, comment_id, viewer_id=viewer_id) is not None:
                return
        if asyncio.get_running_loop().time() >= deadline:
            raise comment_not_found(comment_id)
        await asyncio.sleep(0.05)


async def set_comment_like(pool: asyncpg.Pool, *, comment_id: uuid.UUID, user: Claims, on: bool) -> tuple[bool, int]:
    """Like a comment (on) or take the like back; idempotent. Returns (liked, like_count).

    A comment that is deleted or hidden, or whose post the user may not see, does not exist (404). A change
    bumps the comment's reaction version and queues comment.liked/unliked in the same transaction."""
    for attempt in range(2):
        async with pool.acquire() as conn, conn.transaction():
            # FOR SHARE: a deletion or hiding of the comment being applied waits for this like, and vice versa.
            comment = await repository.find_comment(conn, comment_id, viewer_id=user.sub, lock=True)
            if comment is not None:
                if on:
                    changed = await repository.add_comment_like(conn, comment_id=comment_id, user_id=user.sub)
                else:
                    changed = await repository.remove_comment_like(conn, comment_id=comment_id, user_id=user.sub)
                if not changed:
                    return on, await repository.comment_like_count(conn, comment_id)
                if on:
                    await remember_person(conn, person_id=user.sub, name=user.name)
                counter = await repository.move_comment_counter(conn, comment_id=comment_id, delta=1 if on else -1)
                event_type, model = _COMMENT_EVENTS[on]
                data = model(
                    comment_id=comment_id,
                    post_id=comment["post_id"],
                    comment_author_id=comment["author_id"],
                    actor=PersonRef(id=user.sub, name=user.name),
                    like_count=counter["like_count"],
                    version=counter["version"],
                    occurred_at=datetime.now(UTC),
                )
                await add_to_outbox(conn, new_envelope(event_type, source=SOURCE, subject=str(comment_id), data=data))
                return on, counter["like_count"]
        if attempt == 0:
            await _wait_for_comment(pool, comment_id, viewer_id=user.sub)
    raise comment_not_found(comment_id)
