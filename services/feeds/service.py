"""Use cases of the feeds service: home feeds written on fan-out and read with a second look, team feeds and
trending read from the replicas.

Home feeds follow Mastodon's design: each event writes entries into the bounded feeds of the people who read
recently (set-based, one statement per batch); a feed nobody kept up to date (a new reader, or one back after
the activity window) is built from the replicas when it is read. Handlers act on the replicas' state after
applying a batch rather than on the events themselves, so events may arrive in any order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from services.feeds import repository
from services.feeds.models import Entry, FeedPage
from services.feeds.repository import LikeState, PostState
from services.feeds.settings import FeedSettings, get_feed_settings
from shared import graph
from shared.api import Person, decode_cursor, encode_cursor
from shared.auth import Claims
from shared.db import Connection
from shared.events import (
    ContentModeratedV1,
    Event,
    PersonBlockedV1,
    PersonUnblockedV1,
    PostAudienceChangedV1,
    PostCreatedV1,
    PostDeletedV1,
    PostLikedV1,
    ReactionChangedV1,
    RelationChangedV1,
    TeamAudience,
    TeamMembershipChangedV1,
)
from shared.http import ProblemError
from shared.retry import is_transient

TRENDING_WINDOW = timedelta(days=7)
# Trending names this many backers per entry; actor_count still counts all of them.
TRENDING_NAMES_PER_ENTRY = 20
# last_read_at is written at most this often per reader: far finer than the activity window.
READ_RECORDING_GRANULARITY = timedelta(minutes=1)
FEED_BUILD_ATTEMPTS = 3


def trim_sample_mask(keep: int) -> int:
    """A feed is trimmed on about one insert in keep/4 (rounded down to a power of two). A trim reads the
    owner's `keep` newest entries, so its cost spread over the inserts between trims stays a small part of
    an insert's. The feed holds up to about a quarter more meanwhile; reads never show more than `keep`."""
    every = 1 << max(0, (keep // 4).bit_length() - 1)
    return every - 1


# Event reduction: pure, one state per subject out of a batch ------------------------------------------


def merge_post_events(events: Sequence[Event]) -> list[PostState]:
    """One state per post, merged the way the replica merges them: created_at from post.created, the
    audience and the moderation of the highest version that carries one, deleted if any event says so."""
    merged: dict[uuid.UUID, PostState] = {}
    for event in events:
        data = event.data
        if isinstance(data, PostCreatedV1):
            audience = data.audience.model_dump_json()
            state = PostState(data.post_id, data.author.id, data.created_at, audience, data.version, False)
        elif isinstance(data, PostAudienceChangedV1):
            state = PostState(data.post_id, data.author_id, None, data.audience.model_dump_json(), data.version, False)
        elif isinstance(data, PostDeletedV1):
            state = PostState(data.post_id, data.author_id, None, None, 0, True)
        elif isinstance(data, ContentModeratedV1) and data.comment_id is None:
            state = PostState(data.post_id, data.author_id, None, None, 0, False, data.hidden, data.version)
        else:
            continue
        seen = merged.get(state.id)
        if seen is not None:
            audience_from = state if state.audience_version > seen.audience_version else seen
            moderation_from = state if state.moderation_version > seen.moderation_version else seen
            state = PostState(
                id=state.id,
                author_id=state.author_id,
                created_at=seen.created_at or state.created_at,
                audience_json=audience_from.audience_json,
                audience_version=audience_from.audience_version,
                deleted=seen.deleted or state.deleted,
                hidden=moderation_from.hidden,
                moderation_version=moderation_from.moderation_version,
            )
        merged[state.id] = state
    return list(merged.values())


def newest_like_states(events: Sequence[Event]) -> list[LikeState]:
    """The newest like state per post and person; versions count per post, so the highest is the latest."""
    newest: dict[tuple[uuid.UUID, str], LikeState] = {}
    for event in events:
        data = event.data
        assert isinstance(data, ReactionChangedV1)
        key = (data.post_id, data.actor.id)
        if key not in newest or newest[key].version < data.version:
            newest[key] = LikeState(
                data.post_id, data.actor.id, isinstance(data, PostLikedV1), data.occurred_at, data.version
            )
    return list(newest.values())


def relations_to_reconcile(events: Sequence[Event]) -> tuple[set[tuple[str, str]], set[str]]:
    """(owner, person) pairs whose entries may have changed, and the people whose teams changed. A block
    works both ways, so both feeds are reconciled."""
    pairs: set[tuple[str, str]] = set()
    teams_changed: set[str] = set()
    for event in events:
        data = event.data
        if isinstance(data, RelationChangedV1):
            pairs.add((data.actor_id, data.target_id))
            if isinstance(data, PersonBlockedV1 | PersonUnblockedV1):
                pairs.add((data.target_id, data.actor_id))
        elif isinstance(data, TeamMembershipChangedV1):
            teams_changed.add(data.person_id)
    return pairs, teams_changed


def _post_subjects(events: Sequence[Event]) -> list[str]:
    """The people and teams whose followers and members a batch of post events fans out to."""
    subjects = []
    for event in events:
        data = event.data
        if isinstance(data, PostCreatedV1 | PostAudienceChangedV1 | PostDeletedV1 | ContentModeratedV1):
            subjects.append(f"person:{data.author.id if isinstance(data, PostCreatedV1) else data.author_id}")
        if isinstance(data, PostCreatedV1 | PostAudienceChangedV1) and isinstance(data.audience, TeamAudience):
            subjects.append(f"team:{data.audience.team}")
    return subjects


# Event handlers ---------------------------------------------------------------------------------------


async def apply_post_changes(conn: Connection, events: Sequence[Event]) -> None:
    settings = get_feed_settings()
    states = merge_post_events(events)
    if not states:
        return
    await repository.hold_fan_out_lock(conn)
    await repository.lock_subjects(conn, _post_subjects(events))
    await repository.apply_post_states(conn, states)
    await repository.remember_names(
        conn, {e.data.author.id: e.data.author.name for e in events if isinstance(e.data, PostCreatedV1)}
    )
    post_ids = [state.id for state in states]
    live = await repository.live_posts(conn, post_ids)
    gone = [post_id for post_id in post_ids if post_id not in live]
    if gone:
        await repository.drop_entries_of_posts(conn, gone)
    if not live:
        return
    shown = sorted(live)
    # An audience narrowed takes the post from who may no longer see it; one widened reaches new readers
    # below. A like that arrived before its post is written out now too.
    await repository.rederive_entries_of_posts(conn, shown)
    mask = trim_sample_mask(settings.max_entries)
    to_trim = await repository.fan_out_posts(conn, shown, active_window=settings.active_window, trim_mask=mask)
    likes = await repository.active_likes_of(conn, shown)
    if likes:
        to_trim |= await repository.fan_out_likes(conn, likes, active_window=settings.active_window, trim_mask=mask)
    await repository.trim_feeds(conn, to_trim, keep=settings.max_entries)


async def apply_reactions(conn: Connection, events: Sequence[Event]) -> None:
    settings = get_feed_settings()
    await repository.hold_fan_out_lock(conn)
    await repository.lock_subjects(
        conn, [f"person:{e.data.actor.id}" for e in events if isinstance(e.data, ReactionChangedV1)]
    )
    changes = await repository.apply_like_states(conn, newest_like_states(events))
    names: dict[str, str] = {}
    for event in events:
        assert isinstance(event.data, ReactionChangedV1)
        names[event.data.actor.id] = event.data.actor.name
    await repository.remember_names(conn, names)
    unliked = sorted((c.post_id, c.actor_id) for c in changes if not c.active)
    if unliked:
        await repository.rederive_after_unlikes(conn, unliked)
    liked = sorted((c.post_id, c.actor_id) for c in changes if c.active)
    if liked:
        to_trim = await repository.fan_out_likes(
            conn,
            liked,
            active_window=settings.active_window,
            trim_mask=trim_sample_mask(settings.max_entries),
        )
        await repository.trim_feeds(conn, to_trim, keep=settings.max_entries)


async def apply_social_graph(conn: Connection, events: Sequence[Event]) -> None:
    """Apply follows, mutes, blocks and teams to the replica, and to the feeds in the same transaction."""
    settings = get_feed_settings()
    await repository.hold_fan_out_lock(conn)
    pairs, teams_changed = relations_to_reconcile(events)
    # The teams a person leaves as well as those they join: a post to either may be in flight.
    teams = await repository.teams_of(conn, teams_changed) | {
        team for e in events if isinstance(e.data, TeamMembershipChangedV1) for team in e.data.teams
    }
    await repository.lock_subjects(conn, [f"person:{person}" for _, person in pairs] + [f"team:{t}" for t in teams])
    await graph.apply_graph_changes(conn, events)
    # A feed not kept up to date is built afresh at its next read: nothing to reconcile there.
    active = await repository.active_readers(
        conn, {owner for owner, _ in pairs} | teams_changed, active_window=settings.active_window
    )
    keep = settings.max_entries
    for owner_id, person_id in sorted(pairs):
        if owner_id in active:
            await repository.rederive_entries_about(conn, owner_id=owner_id, person_id=person_id)
            await repository.place_entries_about(conn, owner_id=owner_id, person_id=person_id, keep=keep)
    for owner_id in sorted(teams_changed & active):
        await repository.rederive_team_entries(conn, owner_id)
        await repository.place_team_entries(conn, owner_id=owner_id, keep=keep)
    await repository.trim_feeds(conn, active, keep=keep)


# Reading ----------------------------------------------------------------------------------------------


def _invalid_cursor() -> ProblemError:
    return ProblemError(
        422,
        "Unprocessable Content",
        "invalid input in query.cursor",
        errors=[{"field": "query.cursor", "message": "not a cursor returned by this API", "type": "cursor"}],
    )


def _time_keyset(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    parts = decode_cursor(cursor, arity=2)
    if parts is None:
        return None
    try:
        return datetime.fromisoformat(parts[0]), uuid.UUID(parts[1])
    except (TypeError, ValueError, AttributeError) as exc:
        raise _invalid_cursor() from exc


def _home_keyset(cursor: str | None) -> tuple[tuple[datetime, uuid.UUID] | None, int]:
    """Where the previous page ended, and how many entries the pages before served."""
    parts = decode_cursor(cursor, arity=3)
    if parts is None:
        return None, 0
    try:
        served = int(parts[2])
        if served < 0:
            raise ValueError
        return (datetime.fromisoformat(parts[0]), uuid.UUID(parts[1])), served
    except (TypeError, ValueError, AttributeError) as exc:
        raise _invalid_cursor() from exc


def _backing_keyset(cursor: str | None) -> tuple[int, uuid.UUID] | None:
    parts = decode_cursor(cursor, arity=2)
    if parts is None:
        return None
    try:
        return int(parts[0]), uuid.UUID(parts[1])
    except (TypeError, ValueError, AttributeError) as exc:
        raise _invalid_cursor() from exc


async def _record_read(conn: Connection, user: Claims, settings: FeedSettings) -> bool:
    """Record that the user read a feed; True if their home feed must be built first. The time is written
    at most once per READ_RECORDING_GRANULARITY: far finer than the activity window, and it spares the read
    path a write per page."""
    if await repository.read_recently(conn, user.sub, within=READ_RECORDING_GRANULARITY):
        return False
    return await repository.touch_reader(
        conn, user.sub, active_window=settings.active_window, granularity=READ_RECORDING_GRANULARITY
    )


async def _build_feed(conn: Connection, owner_id: str, settings: FeedSettings) -> None:
    # The reader is recorded as active (committed) before this: fan-outs from now on include them, and
    # the build waits for those that did not.
    await repository.wait_for_fan_outs_in_flight(conn)
    for attempt in range(1, FEED_BUILD_ATTEMPTS + 1):
        try:
            async with conn.transaction():
                if not await repository.claim_build(conn, owner_id):
                    return
                await repository.clear_feed(conn, owner_id)
                await repository.place_every_entry(conn, owner_id=owner_id, keep=settings.max_entries)
                await repository.mark_built(conn, owner_id)
            return
        except asyncpg.PostgresError as exc:
            # A deadlock with a fan-out writing to the same feed: the other side went on, so may we.
            if attempt == FEED_BUILD_ATTEMPTS or not is_transient(exc):
                raise
            await asyncio.sleep(0.05 * attempt)


async def home_feed(pool: asyncpg.Pool, *, user: Claims, cursor: str | None, limit: int) -> FeedPage:
    settings = get_feed_settings()
    after, served = _home_keyset(cursor)
    # The feed is the newest max_entries entries, also between two trims of what is stored.
    limit = min(limit, settings.max_entries - served)
    if limit <= 0:
        return FeedPage(items=[], next_cursor=None)
    async with pool.acquire() as conn:
        if await _record_read(conn, user, settings):
            await _build_feed(conn, user.sub, settings)
        rows = await repository.home_page(conn, viewer_id=user.sub, after=after, limit=limit + 1)
    page = rows[:limit]
    items = [
        Entry(
            id=f"home:{row['post_id']}",
            post_id=row["post_id"],
            reason=row["reason"],
            actors=[Person(**actor) for actor in row["actors"]],
            actor_count=row["actor_count"],
            at=row["at"],
        )
        for row in page
    ]
    last = page[-1] if page else None
    next_cursor = None
    if last is not None and len(rows) > limit and served + limit < settings.max_entries:
        next_cursor = encode_cursor(last["at"].isoformat(), str(last["post_id"]), served + limit)
    return FeedPage(items=items, next_cursor=next_cursor)


async def team_feed(pool: asyncpg.Pool, *, user: Claims, team: str, cursor: str | None, limit: int) -> FeedPage:
    settings = get_feed_settings()
    after = _time_keyset(cursor)
    async with pool.acquire() as conn:
        if not await repository.is_team_member(conn, person_id=user.sub, team=team):
            # Not 403: whether a team exists is not told to outsiders.
            raise ProblemError(404, "Not Found", f"team {team} has no feed you can read")
        await _record_read(conn, user, settings)
        rows = await repository.team_page(conn, viewer_id=user.sub, team=team, after=after, limit=limit + 1)
    page = rows[:limit]
    items = [
        Entry(
            id=f"team:{row['post_id']}",
            post_id=row["post_id"],
            reason="team",
            actors=[Person(id=row["author_id"], name=row["author_name"])],
            actor_count=1,
            at=row["at"],
        )
        for row in page
    ]
    last = page[-1] if page else None
    next_cursor = encode_cursor(last["at"].isoformat(), str(last["post_id"])) if last and len(rows) > limit else None
    return FeedPage(items=items, next_cursor=next_cursor)


async def trending_feed(pool: asyncpg.Pool, *, user: Claims, cursor: str | None, limit: int) -> FeedPage:
    settings = get_feed_settings()
    after = _backing_keyset(cursor)
    async with pool.acquire() as conn:
        await _record_read(conn, user, settings)
        rows = await repository.trending_page(
            conn,
            viewer_id=user.sub,
            window=TRENDING_WINDOW,
            after=after,
            limit=limit + 1,
            names_per_entry=TRENDING_NAMES_PER_ENTRY,
        )
    page = rows[:limit]
    items = [
        Entry(
            id=f"trending:{row['post_id']}",
            post_id=row["post_id"],
            reason="trending",
            actors=[Person(**actor) for actor in row["actors"]],
            actor_count=row["backers"],
            at=row["latest"],
        )
        for row in page
    ]
    last = page[-1] if page else None
    next_cursor = encode_cursor(last["backers"], str(last["post_id"])) if last and len(rows) > limit else None
    return FeedPage(items=items, next_cursor=next_cursor)
