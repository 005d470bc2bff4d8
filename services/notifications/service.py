"""Use cases of the notifications service: grouped in-app notifications and the emails they cause."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import asyncpg

from services.notifications import repository
from services.notifications.changes import changes_after, languages, publish_changes, render
from shared.api import (
    DEFAULT_CHANNELS,
    SETTINGS_KIND_OF,
    NotificationChanges,
    NotificationPage,
    NotificationSettings,
    NotificationSettingsUpdate,
    QuietHours,
    decode_cursor,
    encode_cursor,
)
from shared.auth import Claims
from shared.db import Connection
from shared.directory import remember_person
from shared.events import (
    Event,
    PersonFollowedV1,
    PersonUnfollowedV1,
    PostCreatedV1,
    PostDeletedV1,
    PostFavouritedV1,
    PostLikedV1,
    PostUnfavouritedV1,
    PostUnlikedV1,
    ReactionChangedV1,
    newest_by_version,
)
from shared.settings import get_settings

# Likes of one post join one notification while it is unread and younger than this.
GROUPING_WINDOW = timedelta(hours=12)
EXCERPT_CHARS = 200
FOLLOWED = "person.followed"
DEFAULT_DIGEST_HOUR = 8  # as the column default in migration 0002
PRESENCE_RESOLUTION = timedelta(seconds=5)

_KIND_OF = {
    PostLikedV1: ("post.liked", True),
    PostUnlikedV1: ("post.liked", False),
    PostFavouritedV1: ("post.favourited", True),
    PostUnfavouritedV1: ("post.favourited", False),
}


async def apply_reactions(conn: Connection, events: Sequence[Event]) -> None:
    """Apply a batch of reaction events with a handful of set-based statements, whatever the batch size.

    The result is the one of applying the events one by one in batch order (apply_reactions_one_by_one,
    which stays the reference). Where the order within the batch could change the outcome, that is what
    runs: when one (post, actor, kind) reacts twice in the batch, or one group both gains and loses actors."""
    changes = await _notable_changes(conn, events)
    joined = await _apply_batched(conn, changes) if changes else []
    await queue_emails(conn, joined)
    await publish_changes(conn)


async def apply_reactions_one_by_one(conn: Connection, events: Sequence[Event]) -> None:
    """The reference apply_reactions must agree with: every event on its own, in batch order."""
    changes = await _notable_changes(conn, events)
    joined = await _apply_one_by_one(conn, changes)
    await queue_emails(conn, joined)
    await publish_changes(conn)


async def _notable_changes(conn: Connection, events: Sequence[Event]) -> list[_Change]:
    """The reactions that may notify: not one's own, not from someone the author muted or blocked (without
    telling them), not of a kind the author turned off. Taking a reaction back always applies."""
    changes = []
    for event in events:
        data = event.data
        assert isinstance(data, ReactionChangedV1)
        if data.actor.id == data.post_author_id:
            continue  # nobody is notified of their own reactions
        kind, active = _KIND_OF[type(data)]
        changes.append(_Change(data, kind, active))
    adding = [c for c in changes if c.active]
    if not adding:
        return changes
    silenced = await repository.silenced_pairs(conn, list({(c.data.post_author_id, c.data.actor.id) for c in adding}))
    channels = await channels_of(conn, list({c.data.post_author_id for c in adding}))
    return [
        c
        for c in changes
        if not c.active
        or (
            (c.data.post_author_id, c.data.actor.id) not in silenced
            and channels[c.data.post_author_id][SETTINGS_KIND_OF[c.kind]] != "off"
        )
    ]


async def _apply_batched(conn: Connection, changes: list[_Change]) -> list[Joined]:
    keys = {(c.data.post_id, c.data.actor.id, c.kind) for c in changes}
    adding = {c.group for c in changes if c.active}
    if len(keys) < len(changes) or any(c.group in adding for c in changes if not c.active):
        return await _apply_one_by_one(conn, changes)

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
    if not adds:
        return []
    return await _add_actors(conn, adds, [advanced[(c.data.post_id, c.data.actor.id, c.kind)] for c in adds])


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


async def _add_actors(conn: Connection, adds: list[_Change], found: list[asyncpg.Record]) -> list[Joined]:
    """add_actor_to_group for every add, as one by one would: walk the batch in order over the groups as
    found (one row per add), then write. A group that closes in mid-batch (its window runs out) starts a
    new phase, since a new open group can only be inserted once the old one is closed."""
    open_since: dict[tuple[str, uuid.UUID, str], datetime | None] = {
        change.group: row["open_since"] for change, row in zip(adds, found, strict=True)
    }
    deleted = {row["post_id"] for row in found if row["post_deleted"]}
    people: dict[str, str] = {}
    joined = []
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
        joined.append(Joined(*group, actor_id=data.actor.id))
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
    return joined


async def _apply_one_by_one(conn: Connection, changes: Sequence[_Change]) -> list[Joined]:
    joined = []
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
        joined.append(Joined(data.post_author_id, data.post_id, kind, actor_id=data.actor.id))
    return joined


@dataclass(frozen=True)
class Joined:
    """An actor who joined a group: what may cause an email."""

    recipient_id: str
    post_id: uuid.UUID | None
    kind: str
    actor_id: str


async def channels_of(conn: Connection, recipients: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each recipient's channel per kind: their choices over the defaults."""
    chosen = await repository.settings_of(conn, recipients)
    return {
        recipient: {**DEFAULT_CHANNELS, **(chosen[recipient]["channels"] if recipient in chosen else {})}
        for recipient in recipients
    }


async def queue_emails(conn: Connection, joined: Sequence[Joined]) -> None:
    """Queue the emails the recipients' choices ask for. A favourite emails at once, once per person and
    post (the seed's promise); other kinds email once per group, after the window, if still worth it then
    (the mailer decides: read, active in the app, quiet hours, the hourly cap)."""
    if not joined:
        return
    channels = await channels_of(conn, list({j.recipient_id for j in joined}))
    wanted = [j for j in joined if channels[j.recipient_id][SETTINGS_KIND_OF[j.kind]] == "email_now"]
    favourites = [j for j in wanted if j.kind == "post.favourited"]
    if favourites:
        await repository.queue_emails(
            conn,
            [
                (f"favourite:{j.post_id}:{j.actor_id}", j.recipient_id, j.kind, j.post_id, j.actor_id)
                for j in favourites
                if j.post_id is not None
            ],
        )
    grouped = {(j.recipient_id, j.post_id, j.kind) for j in wanted if j.kind != "post.favourited"}
    if grouped:
        groups = await repository.open_groups(conn, sorted(grouped, key=str))
        await repository.queue_group_emails(
            conn,
            [(f"group:{group_id}", key[0], key[2], key[1], group_id) for key, group_id in groups.items()],
            delay=timedelta(seconds=get_settings().email_window_seconds),
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
                "kind": data.kind,
                "campaign_id": data.campaign_id,
                "audience": data.audience.model_dump(),
                "audience_version": data.version,
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
        await publish_changes(conn)


async def apply_follows(conn: Connection, events: Sequence[Event]) -> None:
    """A follow joins the followed person's open group of followers; an unfollow leaves it while unread."""
    relations = [e.data for e in events if isinstance(e.data, PersonFollowedV1 | PersonUnfollowedV1)]
    newest = newest_by_version(relations, key=lambda r: (r.actor_id, r.target_id), version=lambda r: r.version)
    follows = [r for r in newest.values() if isinstance(r, PersonFollowedV1)]
    silenced = await repository.silenced_pairs(conn, [(r.target_id, r.actor_id) for r in follows]) if follows else set()
    channels = await channels_of(conn, list({r.target_id for r in follows}))
    joined = []
    for relation in newest.values():
        active = isinstance(relation, PersonFollowedV1)
        if not await repository.advance_follow_state(
            conn, actor_id=relation.actor_id, target_id=relation.target_id, active=active, version=relation.version
        ):
            continue
        if not active:
            await repository.remove_actor_from_open_group(
                conn, recipient_id=relation.target_id, kind=FOLLOWED, post_id=None, actor_id=relation.actor_id
            )
            continue
        if (relation.target_id, relation.actor_id) in silenced or channels[relation.target_id]["follow"] == "off":
            continue
        await repository.add_actor_to_group(
            conn,
            recipient_id=relation.target_id,
            kind=FOLLOWED,
            post_id=None,
            actor_id=relation.actor_id,
            at=datetime.now(UTC),
            window=GROUPING_WINDOW,
        )
        joined.append(Joined(relation.target_id, None, FOLLOWED, actor_id=relation.actor_id))
    await queue_emails(conn, joined)
    await publish_changes(conn)


def _excerpt(body: str) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1].rstrip() + "…"


async def inbox(pool: asyncpg.Pool, *, user: Claims, cursor: str | None, limit: int) -> NotificationPage:
    after = decode_cursor(cursor, arity=2)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        # One snapshot, so `seq` is exactly the newest change the page and the count include.
        rows = await repository.inbox_page(
            conn,
            recipient_id=user.sub,
            after=(datetime.fromisoformat(after[0]), uuid.UUID(after[1])) if after else None,
            limit=limit + 1,
        )
        unread = await repository.count_unread(conn, user.sub)
        stream = await repository.stream_of(conn, user.sub)
        language = await languages(conn, [user.sub], token_locale=user.locale)
    await seen(pool, user=user)
    page = rows[:limit]
    items = [shown.notification for shown in render(page, language=language, settings=get_settings())]
    next_cursor = encode_cursor(page[-1]["updated_at"].isoformat(), str(page[-1]["id"])) if len(rows) > limit else None
    return NotificationPage(
        items=[item for item in items if item is not None],
        next_cursor=next_cursor,
        unread=unread,
        seq=stream["seq"] if stream else 0,
    )


async def mark_read(pool: asyncpg.Pool, *, user: Claims, ids: Sequence[uuid.UUID] | None) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await repository.mark_read(conn, recipient_id=user.sub, ids=ids)
        await publish_changes(conn)
    await seen(pool, user=user)


async def seen(pool: asyncpg.Pool, *, user: Claims) -> None:
    """The person is looking at the app now: an email waiting to tell them something is not needed."""
    async with pool.acquire() as conn:
        await repository.touch_presence(conn, user.sub, at_most_every=PRESENCE_RESOLUTION)


async def changes(pool: asyncpg.Pool, *, user: Claims, after: int) -> NotificationChanges:
    found = await changes_after(pool, recipient_id=user.sub, after=after, token_locale=user.locale)
    await seen(pool, user=user)
    return found


async def get_notification_settings(pool: asyncpg.Pool, *, user: Claims) -> NotificationSettings:
    async with pool.acquire() as conn:
        row = (await repository.settings_of(conn, [user.sub])).get(user.sub)
    return _settings_reply(row)


async def put_notification_settings(
    pool: asyncpg.Pool, *, user: Claims, update: NotificationSettingsUpdate
) -> NotificationSettings:
    given = update.model_fields_set
    fields: dict[str, Any] = {}
    for name in ("channels", "digest", "digest_hour", "digest_weekday", "time_zone", "locale"):
        if name in given and (getattr(update, name) is not None or name in ("time_zone", "locale")):
            fields[name] = getattr(update, name)
    if "quiet_hours" in given:
        quiet = update.quiet_hours
        fields["quiet_start"] = time.fromisoformat(quiet.start) if quiet else None
        fields["quiet_end"] = time.fromisoformat(quiet.end) if quiet else None
    async with pool.acquire() as conn, conn.transaction():
        if fields:  # `{}` or only nulls: nothing to write, and no columns to write it in
            await repository.save_settings(conn, user.sub, fields)
        row = (await repository.settings_of(conn, [user.sub])).get(user.sub)
    return _settings_reply(row)


def _settings_reply(row: asyncpg.Record | None) -> NotificationSettings:
    settings = get_settings()
    if row is None:
        return NotificationSettings(
            channels=dict(DEFAULT_CHANNELS),
            digest="daily",
            digest_hour=DEFAULT_DIGEST_HOUR,
            digest_weekday=1,
            time_zone=settings.default_time_zone,
            quiet_hours=None,
            locale=None,
        )
    quiet = (
        QuietHours(start=row["quiet_start"].strftime("%H:%M"), end=row["quiet_end"].strftime("%H:%M"))
        if row["quiet_start"] is not None and row["quiet_end"] is not None
        else None
    )
    return NotificationSettings(
        channels={**DEFAULT_CHANNELS, **row["channels"]},
        digest=row["digest"],
        digest_hour=row["digest_hour"],
        digest_weekday=row["digest_weekday"],
        time_zone=row["time_zone"] or settings.default_time_zone,
        quiet_hours=quiet,
        locale=row["locale"],
    )
