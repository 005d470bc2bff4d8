"""Fault injection against a system of each test's own: PostgreSQL cut under load, a consumer killed with
SIGKILL mid-stream, RabbitMQ cut while posts are written. The shared servers are never touched: each cut
goes through a TcpProxy the test controls. Nothing accepted may be lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import orjson
import pytest

from shared.events import EventType
from tests.harness import System, TcpProxy, eventually, random_id
from tests.test_reliability import (
    REACTION_CONSUMERS,
    Envelope,
    amqp_channel,
    assert_no_dead_letters,
    consumer_stats,
    create_post,
    db,
    inbox_count,
    like_projections,
    publish,
    reaction_envelope,
    shuffled,
    wait_for_inbox,
    wait_for_likes_settled,
    wait_until_post_known,
)
from tillit.catalog import BACKEND_SERVICES

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def running(system: System, *proxies: TcpProxy) -> AsyncIterator[System]:
    """Start the system (its proxies first: the services connect through them); always stop and clean up."""
    try:
        for proxy in proxies:
            await proxy.start()
        await system.start()
        yield system
    finally:
        for proxy in proxies:
            await proxy.restore()  # so the services can shut down cleanly
        await system.stop()
        for proxy in proxies:
            await proxy.close()


async def wait_for_empty_outboxes(system: System, *, timeout: float = 30) -> None:
    backlog: dict[str, int] = {}

    async def empty() -> bool:
        for schema in BACKEND_SERVICES:  # every service has an outbox in its schema
            async with db(system, schema) as conn:
                backlog[schema] = int(await conn.fetchval("SELECT count(*) FROM outbox"))
        return not any(backlog.values())

    try:
        await eventually(empty, timeout=timeout, interval=0.2)
    except AssertionError:
        raise AssertionError(f"outboxes not drained after {timeout}s: {backlog}") from None


async def service_ready(system: System, service: str) -> dict[str, Any]:
    """A service's readiness checks, e.g. {"postgres": "ok", "rabbitmq": "unreachable"}."""
    async with httpx.AsyncClient(timeout=5) as client:
        reply = await client.get(f"http://127.0.0.1:{system.ports[service]}/ready")
    return reply.json()


async def like(client: httpx.AsyncClient, system: System, post_id: uuid.UUID, user: str) -> int | None:
    """PUT a like through the gateway; the status, or None when the request itself failed."""
    try:
        reply = await client.put(
            f"/api/posts/{post_id}/like", headers={"Authorization": f"Bearer {system.token(user)}"}
        )
    except httpx.HTTPError:
        return None
    return reply.status_code


# 5. PostgreSQL restarted under load --------------------------------------------------------------------------


async def test_every_accepted_like_counts_once_across_a_database_outage() -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    async with running(System(db_via=proxy), proxy) as system:
        author = random_id("author")
        posts = [uuid.UUID((await create_post(system, system.token(author)))["id"]) for _ in range(3)]
        flooded_post = uuid.UUID((await create_post(system, system.token(author)))["id"])
        for post_id in (*posts, flooded_post):
            await wait_until_post_known(system, post_id)

        rng = random.Random(secrets.randbits(32))
        # Reaction events published straight to the broker while the database is away: the consumers take
        # them during the outage for certain, and must hold and retry them, neither drop nor dead-letter them.
        history, flood_likers, flood_last = like_history(
            flooded_post, author, [random_id("actor") for _ in range(10)], 200, rng
        )
        applied_before = {c: await inbox_count(system, schema, c) for schema, c in REACTION_CONSUMERS}
        retries_before = {c: (await consumer_stats(system, schema, c))["retries"] for schema, c in REACTION_CONSUMERS}
        accepted: dict[uuid.UUID, set[str]] = {post_id: set() for post_id in posts}
        refused: list[tuple[uuid.UUID, str]] = []
        statuses: dict[str, int] = {}
        stop = asyncio.Event()
        phase = ["before"]

        async def keep_liking(client: httpx.AsyncClient) -> None:
            while not stop.is_set():
                post_id, user = rng.choice(posts), random_id("liker")
                status = await like(client, system, post_id, user)
                statuses[f"{phase[0]} {status}"] = statuses.get(f"{phase[0]} {status}", 0) + 1
                if status == 200:
                    accepted[post_id].add(user)
                    continue
                # A request may fail while the database is away, but only as a server error.
                assert status is None or status >= 500, f"{user}: {status}"
                refused.append((post_id, user))
                await asyncio.sleep(0.15)

        async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as client:
            workers = [asyncio.create_task(keep_liking(client)) for _ in range(6)]
            try:
                await asyncio.sleep(1.5)
                phase[0] = "cut"
                await proxy.cut()

                async def database_away() -> bool:
                    return (await service_ready(system, "reactions"))["checks"]["postgres"] != "ok"

                await eventually(database_away, timeout=5, message="the reactions service sees the database away")
                await publish(system.namespace, shuffled(history, rng))
                await asyncio.sleep(3)
                await proxy.restore()
                phase[0] = "after"
                await asyncio.sleep(1.5)
            finally:
                stop.set()
                await asyncio.gather(*workers)

            assert refused, f"nothing failed during the outage: {statuses}"
            assert sum(len(users) for users in accepted.values()) > 20, statuses
            # A refused like may or may not have committed; liking again is idempotent and settles it.
            gate = asyncio.Semaphore(6)

            async def like_again(post_id: uuid.UUID, user: str) -> None:
                async def taken() -> bool:
                    async with gate:
                        return await like(client, system, post_id, user) == 200

                await eventually(taken, timeout=20, interval=0.2, message=f"{user} can like again")

            await asyncio.gather(*(like_again(post_id, user) for post_id, user in refused))

        for post_id in posts:
            expected = accepted[post_id] | {user for p, user in refused if p == post_id}
            await wait_for_likes_settled(system, post_id, author_id=author, expected=expected, timeout=40)
        real_events = sum([await _post_version(system, post_id) for post_id in posts])
        for schema, consumer in REACTION_CONSUMERS:
            # One inbox row per event, written with its effect: every event applied, none twice.
            await wait_for_inbox(system, schema, consumer, applied_before[consumer] + len(history) + real_events)
            stats = await consumer_stats(system, schema, consumer)
            assert stats["retries"] > retries_before[consumer], f"{consumer} never met the outage: {stats}"
            assert stats["dead_lettered"] == 0
        seen = await like_projections(system, flooded_post)
        assert seen.counted == (len(flood_likers), len(history))
        assert seen.states == flood_last and seen.group_actors == sorted(flood_likers)
        await wait_for_empty_outboxes(system)
        await assert_no_dead_letters(system)


async def _post_version(system: System, post_id: uuid.UUID) -> int:
    """How many reaction events the reactions service published for a post: each change bumps its version."""
    async with db(system, "reactions") as conn:
        return int(await conn.fetchval("SELECT version FROM post_counters WHERE post_id = $1", post_id))


# 6. A consumer killed with SIGKILL mid-stream ------------------------------------------------------------------


def like_history(post_id: uuid.UUID, author: str, actors: list[str], steps: int, rng: random.Random) -> Any:
    """Events as the reactions service would stamp them for random toggles: (envelopes, final likers, last
    state and version per actor)."""
    liked: set[str] = set()
    history: list[Envelope] = []
    last: dict[str, tuple[bool, int]] = {}
    for version in range(1, steps + 1):
        actor = rng.choice(actors)
        now_liked = actor not in liked
        (liked.add if now_liked else liked.discard)(actor)
        history.append(
            reaction_envelope(
                post_id=post_id,
                author_id=author,
                actor_id=actor,
                liked=now_liked,
                like_count=len(liked),
                version=version,
            )
        )
        last[actor] = (now_liked, version)
    return history, liked, last


@pytest.mark.parametrize("victim", ["notifications", "posts"])
async def test_a_consumer_killed_mid_stream_loses_and_repeats_nothing(victim: str) -> None:
    async with running(System()) as system:
        rng = random.Random(secrets.randbits(32))
        author = random_id("author")
        liked_post = uuid.UUID((await create_post(system, system.token(author)))["id"])
        flooded_post = uuid.UUID((await create_post(system, system.token(author)))["id"])
        for post_id in (liked_post, flooded_post):
            await wait_until_post_known(system, post_id)
        schema, consumer = next((s, c) for s, c in REACTION_CONSUMERS if s == victim)
        applied_before = await inbox_count(system, schema, consumer)

        # A flood of hand-made reaction events keeps the consumer busy with a full prefetch window, so the
        # kill lands with messages taken but not acknowledged; real likes go through the gateway meanwhile.
        history, flood_likers, flood_last = like_history(
            flooded_post, author, [random_id("actor") for _ in range(40)], 1500, rng
        )
        flood = asyncio.create_task(publish(system.namespace, shuffled(history, rng)))
        likers = [random_id("liker") for _ in range(60)]
        gate = asyncio.Semaphore(6)

        async def like_once(client: httpx.AsyncClient, user: str) -> int | None:
            async with gate:
                return await like(client, system, liked_post, user)

        async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as client:
            likes = asyncio.gather(*(like_once(client, user) for user in likers))

            async def well_under_way() -> int | None:
                applied = await inbox_count(system, schema, consumer) - applied_before
                return applied if applied >= 200 else None

            applied_at_kill = await eventually(well_under_way, timeout=30, interval=0.01, message="consumer busy")
            system.kill(victim)
            statuses = await likes
            await flood
        assert applied_at_kill < len(history), "the consumer had finished before it was killed"
        # Only the victim died; the gateway and the reactions service took every like.
        assert statuses == [200] * len(likers), statuses
        await asyncio.sleep(0.5)  # the rest of the stream queues up for the dead consumer
        await system.restart(victim)

        async with db(system, "reactions") as conn:
            real_events = int(await conn.fetchval("SELECT version FROM post_counters WHERE post_id = $1", liked_post))
        # One inbox row per event, written with its effect: all applied, none twice.
        await wait_for_inbox(system, schema, consumer, applied_before + len(history) + real_events, timeout=40)
        await wait_for_likes_settled(system, liked_post, author_id=author, expected=set(likers))
        seen = await like_projections(system, flooded_post)
        assert seen.counted == (len(flood_likers), len(history))
        if victim == "notifications":
            assert seen.states == flood_last
            assert seen.group_actors == sorted(flood_likers) and len(seen.groups) == (1 if flood_likers else 0)
        stats = await consumer_stats(system, victim, consumer)
        assert stats["dead_lettered"] == 0
        await assert_no_dead_letters(system)


# 7. The broker unreachable while posts are written -------------------------------------------------------------


async def test_posts_written_while_the_broker_is_away_are_published_when_it_returns() -> None:
    proxy = TcpProxy("127.0.0.1", 5672)
    async with running(System(amqp_via=proxy), proxy) as system, amqp_channel() as probe_channel:
        author, fans = random_id("author"), [random_id("fan") for _ in range(4)]
        author_token = system.token(author)
        earlier = uuid.UUID((await create_post(system, author_token))["id"])
        await wait_until_post_known(system, earlier)
        post_consumers = (("reactions", "reactions.posts"), ("notifications", "notifications.posts"))
        applied_before = {c: await inbox_count(system, schema, c) for schema, c in post_consumers}
        duplicates_before = {c: (await consumer_stats(system, schema, c))["duplicates"] for schema, c in post_consumers}
        # A queue of the test's own, straight on the broker (not through the proxy), sees every post.created.
        probe = await probe_channel.declare_queue(exclusive=True)
        await probe.bind(f"{system.namespace}.events", routing_key=str(EventType.POST_CREATED))

        # The broker goes away in the middle of a publish: it has routed the message, but the relay has no
        # confirm when the connection drops. The relay must keep the row and publish it again, not lose it.
        proxy.stall()
        in_flight = uuid.UUID((await create_post(system, author_token, "Publisert idet megleren forsvant"))["id"])
        await eventually(lambda: _relay_waiting_for_confirms(system), timeout=10, message="the relay publishes")
        published = await _collect(probe, in_flight)
        await proxy.cut()

        async def broker_away() -> bool:
            return (await service_ready(system, "posts"))["checks"]["rabbitmq"] != "ok"

        await eventually(broker_away, timeout=10, message="the posts service sees the broker away")
        written = [
            uuid.UUID((await create_post(system, author_token, f"Skrevet uten megler {i}"))["id"]) for i in range(5)
        ]
        async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as client:
            # Reactions to a post the reactions service already knows are taken too, and wait in its outbox.
            assert [await like(client, system, earlier, fan) for fan in fans] == [200] * len(fans)
        await asyncio.sleep(1)  # the relays try, and fail, meanwhile

        async with db(system, "posts") as conn:
            rows = await conn.fetch("SELECT routing_key, body FROM outbox")
        waiting = {
            uuid.UUID(orjson.loads(r["body"])["data"]["post_id"]) for r in rows if r["routing_key"] == "post.created.v1"
        }
        assert waiting == {in_flight, *written}, "every post written while the broker was away waits in the outbox"
        async with db(system, "reactions") as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE routing_key = 'post.liked.v1'") == len(fans)
            assert await conn.fetchval("SELECT count(*) FROM posts WHERE id = ANY($1::uuid[])", written) == 0

        await proxy.restore()
        # The connections come back by themselves (aio-pika retries every 5 s) and the relays drain.
        await wait_for_empty_outboxes(system, timeout=40)
        # The event in flight at the cut was published again, with the same id: at least once, as promised.
        published += await _collect(probe, in_flight)
        assert len(published) == 2 and len(set(published)) == 1, published
        everything = [in_flight, *written]
        for schema, consumer in post_consumers:
            # Each post's event applied exactly once; the copy published again is dropped.
            await wait_for_inbox(system, schema, consumer, applied_before[consumer] + len(everything))

            async def dropped(schema: str = schema, consumer: str = consumer) -> bool:
                stats = await consumer_stats(system, schema, consumer)
                return bool(stats["duplicates"] > duplicates_before[consumer])

            await eventually(dropped, message=f"{consumer} drops the copy published again")
        for post_id in everything:
            await wait_until_post_known(system, post_id)

        fan = fans[0]
        async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as client:
            assert [await like(client, system, post_id, fan) for post_id in everything] == [200] * len(everything)
        for post_id in everything:
            await wait_for_likes_settled(system, post_id, author_id=author, expected={fan})
        await wait_for_likes_settled(system, earlier, author_id=author, expected=set(fans))
        await assert_no_dead_letters(system)


async def _collect(queue: aio_pika.abc.AbstractQueue, post_id: uuid.UUID) -> list[str]:
    """Wait for the next post.created of this post in the probe queue; the message ids of those found."""
    found: list[str] = []

    async def arrived() -> bool:
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            if orjson.loads(message.body)["data"]["post_id"] == str(post_id):
                found.append(str(message.message_id))
        return bool(found)

    await eventually(arrived, timeout=40, interval=0.1, message=f"post.created of {post_id} published")
    return found


async def _relay_waiting_for_confirms(system: System) -> bool:
    """The posts service's relay has taken outbox rows in a transaction and waits on the broker."""
    async with db(system, "posts") as conn:
        return bool(
            await conn.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND application_name = 'tillit-posts'
                     AND state = 'idle in transaction' AND query LIKE '%FROM outbox%FOR UPDATE SKIP LOCKED%'"""
            )
        )
