"""A post a moderator hides leaves every feed, home and trending, and comes back when restored; the newest
moderation decision wins whatever order the events arrive in."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from services.feeds import service
from services.feeds.tests.events import deliver, like, moderated, post_created, relation
from shared.auth import Claims
from shared.consumer import BatchHandler
from shared.events import Event, EventType


def _handler(event: Event) -> BatchHandler:
    if event.type == EventType.POST_LIKED:
        return service.apply_reactions
    if event.type == EventType.PERSON_FOLLOWED:
        return service.apply_social_graph
    return service.apply_post_changes


async def _deliver(pool: asyncpg.Pool, *events: Event) -> None:
    for event in events:
        await deliver(pool, _handler(event), event)


async def _home(pool: asyncpg.Pool, user: str) -> list[uuid.UUID]:
    page = await service.home_feed(pool, user=Claims(sub=user, name=user), cursor=None, limit=50)
    return [item.post_id for item in page.items]


async def _trending(pool: asyncpg.Pool, user: str) -> list[uuid.UUID]:
    page = await service.trending_feed(pool, user=Claims(sub=user, name=user), cursor=None, limit=50)
    return [item.post_id for item in page.items]


async def test_hidden_leaves_home_and_trending_and_restored_returns(feeds_pool: asyncpg.Pool) -> None:
    reader, author, liker = (f"{p}-{secrets.token_hex(4)}" for p in ("r", "a", "l"))
    post = uuid.uuid4()
    at = datetime.now(UTC) - timedelta(minutes=5)
    await _deliver(
        feeds_pool,
        relation("follow", reader, author, version=1),
        post_created(post, author, at=at),
        like(post, author, liker, version=1, at=at + timedelta(seconds=1)),
    )
    assert post in await _home(feeds_pool, reader) and post in await _trending(feeds_pool, reader)

    await _deliver(feeds_pool, moderated(post, author, hidden=True, version=2))
    assert post not in await _home(feeds_pool, reader) and post not in await _trending(feeds_pool, reader)
    assert post not in await _home(feeds_pool, author), "the author reads it through the posts service, not a feed"

    # A stale restore (an older decision delivered late) changes nothing; the newer one brings it back.
    await _deliver(feeds_pool, moderated(post, author, hidden=False, version=1))
    assert post not in await _home(feeds_pool, reader)
    await _deliver(feeds_pool, moderated(post, author, hidden=False, version=3))
    assert post in await _home(feeds_pool, reader) and post in await _trending(feeds_pool, reader)


async def test_hidden_before_its_post_arrives_is_never_shown(feeds_pool: asyncpg.Pool) -> None:
    reader, author = (f"{p}-{secrets.token_hex(4)}" for p in ("r", "a"))
    post = uuid.uuid4()
    await _deliver(
        feeds_pool,
        relation("follow", reader, author, version=1),
        moderated(post, author, hidden=True, version=2),
        post_created(post, author),
    )
    assert post not in await _home(feeds_pool, reader)


async def test_a_follow_and_the_followed_persons_post_applied_at_once_both_reach_the_feed(
    feeds_pool: asyncpg.Pool,
) -> None:
    """The follow's transaction is still open when the post's fan-out starts: the fan-out waits for it and
    then sees the new follower (without the lock each missed the other's work: no entry at all)."""
    reader, author = (f"{p}-{secrets.token_hex(4)}" for p in ("r", "a"))
    post = uuid.uuid4()
    await _home(feeds_pool, reader)  # the reader is active: fan-out on write reaches them
    follow_applied = asyncio.Event()
    release = asyncio.Event()

    async def follow() -> None:
        async with feeds_pool.acquire() as conn, conn.transaction():
            await service.apply_social_graph(conn, [relation("follow", reader, author, version=1)])
            follow_applied.set()
            await release.wait()

    following = asyncio.create_task(follow())
    await follow_applied.wait()
    posting = asyncio.create_task(_deliver(feeds_pool, post_created(post, author)))
    await asyncio.sleep(0.3)
    assert not posting.done(), "the post's fan-out waits for the follow on the same person"
    release.set()
    await asyncio.gather(following, posting)
    assert post in await _home(feeds_pool, reader)
