"""Graceful life: a rolling restart with SIGTERM, one service after another, under a steady stream of likes.

Each process must drain what it holds (requests in flight, the consumers' batches, the relay's publish) and exit
within the runtime's bound; afterwards every accepted like is counted exactly once in reactions, the posts'
counts, the notification groups and the feeds."""

from __future__ import annotations

import asyncio
import random
import secrets
import signal
import time
import uuid

import httpx
import pytest

from shared.runtime import SHUTDOWN_BOUND_SECONDS
from tests.harness import System, eventually, random_id
from tests.test_reliability import (
    REACTION_CONSUMERS,
    assert_no_dead_letters,
    create_post,
    db,
    inbox_count,
    wait_for_inbox,
    wait_for_likes_settled,
    wait_until_post_known,
)
from tests.test_reliability_faults import like, running, wait_for_empty_outboxes

pytestmark = pytest.mark.slow

# Every service that consumes the likes, and reactions, which takes them over HTTP and publishes them.
VICTIMS = ("reactions", "posts", "notifications", "feeds")
LIKE_CONSUMERS = (*REACTION_CONSUMERS, ("feeds", "feeds.reactions"))


async def test_a_rolling_restart_with_sigterm_under_load_loses_and_repeats_nothing() -> None:
    # At INFO, so each process's "service stopped" line shows that its lifespan ran to the end.
    async with running(System(extra_env={"LOG_LEVEL": "INFO"})) as system:
        rng = random.Random(secrets.randbits(32))
        author = random_id("author")
        posts = [uuid.UUID((await create_post(system, system.token(author)))["id"]) for _ in range(3)]
        for post_id in posts:
            await wait_until_post_known(system, post_id)
        applied_before = {c: await inbox_count(system, schema, c) for schema, c in LIKE_CONSUMERS}

        accepted: dict[uuid.UUID, set[str]] = {post_id: set() for post_id in posts}
        refused: list[tuple[uuid.UUID, str]] = []
        stop = asyncio.Event()

        async def keep_liking(client: httpx.AsyncClient) -> None:
            while not stop.is_set():
                post_id, user = rng.choice(posts), random_id("liker")
                status = await like(client, system, post_id, user)
                if status == 200:
                    accepted[post_id].add(user)
                    await asyncio.sleep(0.01)
                    continue
                # Only while reactions restarts, and only as a server error: the gateway cannot reach it.
                assert status is None or status >= 500, f"{user}: {status}"
                refused.append((post_id, user))
                await asyncio.sleep(0.1)

        exits: dict[str, tuple[float, int | None]] = {}

        async def roll(victim: str, after: float) -> None:
            await asyncio.sleep(after)  # likes flow, and the victim holds batches and requests in flight
            started = time.monotonic()
            # In a thread: the likes go on while the victim drains.
            await asyncio.to_thread(system.kill, victim, signal.SIGTERM)
            exits[victim] = (time.monotonic() - started, system.processes[victim].returncode)
            await system.restart(victim)

        async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as client:
            workers = [asyncio.create_task(keep_liking(client)) for _ in range(4)]
            try:
                # One service after another, a second apart; each is back as soon as it is ready (starting a
                # Python process takes seconds on a busy machine, so the rolls overlap rather than queue).
                await asyncio.gather(*(roll(victim, 1.0 + i * 1.0) for i, victim in enumerate(VICTIMS)))
                await asyncio.sleep(1.0)
            finally:
                stop.set()
                await asyncio.gather(*workers)

            # A refused like may or may not have committed; liking again is idempotent and settles it.
            for post_id, user in refused:

                async def taken(post_id: uuid.UUID = post_id, user: str = user) -> bool:
                    return await like(client, system, post_id, user) == 200

                await eventually(taken, timeout=20, interval=0.2, message=f"{user} can like again")

        for victim, (seconds, code) in exits.items():
            # uvicorn shuts down, then re-raises the signal it caught: -SIGTERM is its clean exit.
            assert code in (0, -signal.SIGTERM), f"{victim} exited with {code} on SIGTERM:\n{system.log_tail(victim)}"
            assert seconds < SHUTDOWN_BOUND_SECONDS, f"{victim} took {seconds:.1f} s to stop"
            log = (system.log_dir / f"{victim}.log").read_text(errors="replace")
            assert log.count('"message": "service stopped"') == 1, system.log_tail(victim)
        assert sum(len(users) for users in accepted.values()) >= 50, accepted

        expected = {post_id: accepted[post_id] | {user for p, user in refused if p == post_id} for post_id in posts}
        for post_id in posts:
            await wait_for_likes_settled(system, post_id, author_id=author, expected=expected[post_id], timeout=40)
        async with db(system, "reactions") as conn:
            # Each like (re-likes of a refused one included, when it had committed) bumped its post's version once.
            events = int(
                await conn.fetchval("SELECT sum(version) FROM post_counters WHERE post_id = ANY($1::uuid[])", posts)
            )
        for schema, consumer in LIKE_CONSUMERS:
            # One inbox row per event, written with its effect: every like's event applied, none twice.
            await wait_for_inbox(system, schema, consumer, applied_before[consumer] + events, timeout=40)
        async with db(system, "feeds") as conn:
            for post_id in posts:
                rows = await conn.fetch("SELECT actor_id FROM likes WHERE post_id = $1 AND active", post_id)
                assert {r["actor_id"] for r in rows} == expected[post_id]
        await wait_for_empty_outboxes(system)
        await assert_no_dead_letters(system)
