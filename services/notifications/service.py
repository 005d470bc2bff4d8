"""Use cases of the notifications service: grouped in-app notifications and the emails they cause."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    newest_by_version,
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
    """Apply a batch of reaction events with a handful of set-based statements, whatever the batch size.

    The result is the one of applying the events one by one in batch order (_apply_one_by_one, which
    stays the reference). Where the order within the batch could change the outcome, that is what runs:
    when one (post, actor, kind) reacts twice in the batch, or one group both gains and loses actors."""
    changes = []
    for event in events:
        data = event.data
        assert isinstance(data, ReactionChangedV1)
        if data.actor.id == data.post_author_id:
            continue  # nobody is notified of their own reactions
        kind, active = _KIND_OF[type(data)]
        changes.append(_Change(data, kind, active))
    # A muted or blocked actor stops notifying, without being told; taking a reaction back still applies.
    silenced = await repository.silenced_pairs(
        conn, list({(c.data.post_author_id, c.data.actor.id) for c in changes if c.active})
    )
    changes = [c for c in changes if not c.active or (c.data.post_author_id, c.data.actor.id) not in silenced]
    if not changes:
        return
    keys = {(c.data.post_id, c.data.actor.id, c.kind) for c in changes}
    adding = {c.group for c in changes if c.active}
    if len(keys) < len(changes) or any(c.group in adding for c in changes if not c.active):
        await _apply_one_by_one(conn, changes)
        return

    # Events come in any order: only a state newer than the one applied may change the inbox. The same
    # statement reads the groups as found, which the removals below cannot change (they touch other groups).
    advanced = {
        (r["post_id"], r["actor_id"], r["kind"]): r
        for r in await repository.advance_reaction_states(
            conn, [(c.data.post_id, c.data.actor.id, c.kind, c.active, c.data.version, c.group[0]) for c in changes]
        )
    }
    changes = [c for c in changes if (c.data.post_id, c.data.actor.id, c.kind) in advanced]
    removals = [(*c.group, c.data.actor.id) for c in changes if not c.active]
    if removals:
        await repository.remove_actors_from_open_groups(conn, removals)
    adds = [c for c in changes if c.active]
    if adds:
        await _add_actors(conn, adds, [advanced[(c.data.post_id, c.data.actor.id, c.kind)] for c in adds])


@dataclass(frozen=True)
class _Change:
    data: ReactionChangedV1
    kind: str
    active: bool

    @property
    def group(self) -> tuple[str, uuid.UUID, str]:
        """The (recipient, post, kind) whose open group the actor joins or leaves."""
        return (self.data.post_author_id, self.data.post_id, self.kind)


@dataclass
class _Phase:
    """Statements that must run in this order: close groups, then join the (new) open groups."""

    closes: list[tuple[str, uuid.UUID, str, datetime]] = field(default_factory=list)
    groups: dict[tuple[str, uuid.UUID, str], list[Any]] = field(default_factory=dict)
    actors: list[tuple[str, uuid.UUID, str, str, datetime]] = field(default_factory=list)


async def _add_actors(conn: Connection, adds: list[_Change], found: list[asyncpg.Record]) -> None:
    """add_actor_to_group for every add, as one by one would: walk the batch in order over the groups as
    found (one row per add), then write. A group that closes in mid-batch (its window runs out) starts a
    new phase, since a new open group can only be inserted once the old one is closed."""
    open_since: dict[tuple[str, uuid.UUID, str], datetime | None] = {
        change.group: row["open_since"] for change, row in zip(adds, found, strict=True)
    }
    deleted = {row["post_id"] for row in found if row["post_deleted"]}
    people: dict[str, str] = {}
    emails = []
    phases = [_Phase()]
    phase_of: dict[tuple[str, uuid.UUID, str], int] = {}
    for change in adds:
        data, group = change.data, change.group
        if data.post_id in deleted:
            continue
        people.setdefault(data.actor.id, data.actor.name)
        at = data.occurred_at
        index = phase_of.get(group, 0)
        since = open_since[group]
        if since is not None and since < at - GROUPING_WINDOW:
            if group in phases[index].groups:  # joined in this phase already: the close comes after
                index += 1
                if index == len(phases):
                    phases.append(_Phase())
            phases[index].closes.append((*group, at - GROUPING_WINDOW))
            since = None
        if since is None:
            open_since[group] = at
            phases[index].groups[group] = [uuid.uuid4(), group[0], group[2], group[1], at, at]
        # As one by one: the first event to join in this phase carries the created_at of a group it would open.
        row = phases[index].groups.setdefault(group, [uuid.uuid4(), group[0], group[2], group[1], at, at])
        row[5] = max(row[5], at)
        phase_of[group] = index
        phases[index].actors.append((*group, data.actor.id, at))
        if change.kind == "post.favourited":
            # The seed's promise: a favourite emails the author at once. Once per person and post.
            emails.append(
                (
                    f"favourite:{data.post_id}:{data.actor.id}",
                    data.post_author_id,
                    change.kind,
                    data.post_id,
                    data.actor.id,
                )
            )
    for i, phase in enumerate(phases):
        if phase.closes:
            await repository.close_groups(conn, phase.closes)
        if phase.actors:
            await repository.join_groups(
                conn,
                people=list(people.items()) if i == 0 else [],
                groups=[tuple(row) for row in phase.groups.values()],
                actors=phase.actors,
            )
    if emails:
        await repository.queue_emails(conn, emails)


async def apply_reactions_one_by_one(conn: Connection, events: Sequence[Event]) -> None:
    """The reference apply_reactions must agree with: every event on its own, in batch order."""
    changes = []
    for event in events:
        data = event.data
        assert isinstance(data, ReactionChangedV1)
        if data.actor.id != data.post_author_id:
            changes.append(_Change(data, *_KIND_OF[type(data)]))
    await _apply_one_by_one(conn, changes)


async def _apply_one_by_one(conn: Connection, changes: Sequence[_Change]) -> None:
    for change in changes:
        data, kind, active = change.data, change.kind, change.active
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
    states: list[dict[str, Any]] = []
    for event in events:
        data = event.data
        post: dict[str, Any]
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
        states.append(post)
    newest = newest_by_version(states, key=lambda post: post["id"], version=lambda post: post["version"])
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
