"""Use cases of the notifications service: grouped in-app notifications and the emails they cause."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.notifications import repository
from shared.api import Notification, NotificationPage, Person, decode_cursor, encode_cursor
from shared.auth import Claims
from shared.db import Connection
from shared.directory import remember_person
from shared.events import (
    Event,
    PostCreatedV1,
    PostDeletedV1,
    PostFavouritedV1,
    PostLikedV1,
    PostUnfavouritedV1,
    PostUnlikedV1,
    ReactionChangedV1,
)

# Likes of one post join one notification while it is unread and younger than this.
GROUPING_WINDOW = timedelta(hours=12)
EXCERPT_CHARS = 200

_KIND_OF = {
    PostLikedV1: ("post.liked", True),
    PostUnlikedV1: ("post.liked", False),
    PostFavouritedV1: ("post.favourited", True),
    PostUnfavouritedV1: ("post.favourited", False),
}


async def apply_reactions(conn: Connection, events: Sequence[Event]) -> None:
    for event in events:
        data = event.data
        assert isinstance(data, ReactionChangedV1)
        kind, active = _KIND_OF[type(data)]
        if data.actor.id == data.post_author_id:
            continue  # nobody is notified of their own reactions
        # Events come in any order: only a state newer than the one applied may change the inbox.
        if not await repository.advance_reaction_state(
            conn, post_id=data.post_id, actor_id=data.actor.id, kind=kind, active=active, version=data.version
        ):
            continue
        if not active:
            await repository.remove_actor_from_open_group(
                conn, recipient_id=data.post_author_id, kind=kind, post_id=data.post_id, actor_id=data.actor.id
            )
            continue
        if await repository.post_is_deleted(conn, data.post_id):
            continue
        await remember_person(conn, person_id=data.actor.id, name=data.actor.name)
        await repository.add_actor_to_group(
            conn,
            recipient_id=data.post_author_id,
            kind=kind,
            post_id=data.post_id,
            actor_id=data.actor.id,
            at=data.occurred_at,
            window=GROUPING_WINDOW,
        )
        if kind == "post.favourited":
            # The seed's promise: a favourite emails the author at once. Once per person and post.
            await repository.queue_email(
                conn,
                dedupe_key=f"favourite:{data.post_id}:{data.actor.id}",
                recipient_id=data.post_author_id,
                kind=kind,
                post_id=data.post_id,
                actor_id=data.actor.id,
            )


async def apply_post_changes(conn: Connection, events: Sequence[Event]) -> None:
    newest: dict[uuid.UUID, dict[str, Any]] = {}
    for event in events:
        data = event.data
        if isinstance(data, PostCreatedV1):
            post = {
                "id": data.post_id,
                "author_id": data.author.id,
                "excerpt": _excerpt(data.body),
                "deleted": False,
                "version": data.version,
            }
        elif isinstance(data, PostDeletedV1):
            post = {
                "id": data.post_id,
                "author_id": data.author_id,
                "excerpt": "",
                "deleted": True,
                "version": data.version,
            }
        else:
            continue
        seen = newest.get(post["id"])
        if seen is None or seen["version"] < post["version"]:
            newest[post["id"]] = post
    if not newest:
        return
    await repository.apply_post_versions(conn, list(newest.values()))
    deleted = [post_id for post_id, post in newest.items() if post["deleted"]]
    if deleted:
        await repository.forget_post(conn, deleted)


def _excerpt(body: str) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1].rstrip() + "…"


async def inbox(pool: asyncpg.Pool, *, user: Claims, cursor: str | None, limit: int) -> NotificationPage:
    after = decode_cursor(cursor, arity=2)
    async with pool.acquire() as conn:
        rows = await repository.inbox_page(
            conn,
            recipient_id=user.sub,
            after=(datetime.fromisoformat(after[0]), uuid.UUID(after[1])) if after else None,
            limit=limit + 1,
        )
        unread = await repository.count_unread(conn, user.sub)
    page = rows[:limit]
    items = [
        Notification(
            id=r["id"],
            kind=r["kind"],
            post_id=r["post_id"],
            actors=[Person(**actor) for actor in r["actors"]],
            actor_count=r["actor_count"],
            read=r["read"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )
        for r in page
    ]
    next_cursor = encode_cursor(page[-1]["updated_at"].isoformat(), str(page[-1]["id"])) if len(rows) > limit else None
    return NotificationPage(items=items, next_cursor=next_cursor, unread=unread)


async def mark_read(pool: asyncpg.Pool, *, user: Claims, ids: Sequence[uuid.UUID] | None) -> None:
    async with pool.acquire() as conn:
        await repository.mark_read(conn, recipient_id=user.sub, ids=ids)
