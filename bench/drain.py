"""Consumer drain throughput: a backlog of valid events waits in a stopped consumer's queue; the service
is restarted and timed until every event's effect is committed.

Timing runs from the first delivery (the queue's ready count drops: the consumer has started, which
happens inside the service's startup, a little before it reports ready) to the moment the consumer's
inbox holds a row for every event of the backlog (each inbox row commits together with its effects).
That is what `pipeline_batched` and `pipeline_per_event` time too: first delivery to last ack of a
pre-filled queue.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg

from bench import procstat
from shared.events import (
    EventType,
    EveryoneAudience,
    PersonRef,
    PostCreatedV1,
    PostLikedV1,
    new_envelope,
)
from tests.harness import AMQP_URL, System

POLL_SECONDS = 0.01
GIVE_UP_SECONDS = 180.0


def _check_deadline(deadline: float, consumer: str) -> None:
    if time.perf_counter() > deadline:
        raise TimeoutError(f"{consumer} did not drain its backlog in {GIVE_UP_SECONDS:.0f} s")


@dataclass(frozen=True)
class Backlog:
    routing_key: str
    bodies: list[tuple[str, bytes]]  # (message id, body)
    post_ids: list[uuid.UUID]


def liked_backlog(n: int, *, authors: Sequence[str], posts: int = 1000) -> Backlog:
    """n likes by n new people over `posts` posts, each with the counts and version the reactions service
    would stamp: like k of a post carries like_count k and version k."""
    post_ids = [uuid.uuid4() for _ in range(posts)]
    now = datetime.now(UTC)
    bodies = []
    for i in range(n):
        post = i % posts
        k = i // posts + 1
        data = PostLikedV1(
            post_id=post_ids[post],
            post_author_id=authors[post % len(authors)],
            actor=PersonRef(id=f"drain-liker-{i}", name=f"Drain Liker {i}"),
            like_count=k,
            favourite_count=0,
            version=k,
            occurred_at=now,
        )
        envelope = new_envelope(EventType.POST_LIKED, source="bench", subject=str(post_ids[post]), data=data)
        bodies.append((str(envelope.id), envelope.model_dump_json().encode()))
    return Backlog(str(EventType.POST_LIKED), bodies, post_ids)


def created_backlog(n: int, *, authors: Sequence[str]) -> Backlog:
    post_ids = [uuid.uuid4() for _ in range(n)]
    now = datetime.now(UTC)
    bodies = []
    for i, post_id in enumerate(post_ids):
        author = authors[i % len(authors)]
        data = PostCreatedV1(
            post_id=post_id,
            author=PersonRef(id=author, name=f"Author {author}"),
            kind="post",
            body=f"Drain post {i}: a half-finished idea shared for input.",
            audience=EveryoneAudience(type="everyone"),
            created_at=now,
            version=1,
        )
        envelope = new_envelope(EventType.POST_CREATED, source="bench", subject=str(post_id), data=data)
        bodies.append((str(envelope.id), envelope.model_dump_json().encode()))
    return Backlog(str(EventType.POST_CREATED), bodies, post_ids)


async def publish(namespace: str, backlog: Backlog, *, in_flight: int = 500) -> float:
    """Publish persistently with publisher confirms, as the outbox relay does; returns msg/s."""
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(f"{namespace}.events", ensure=False)
        t0 = time.perf_counter()
        for at in range(0, len(backlog.bodies), in_flight):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body=body,
                            message_id=message_id,
                            type=backlog.routing_key,
                            app_id="bench",
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=backlog.routing_key,
                        mandatory=True,
                    )
                    for message_id, body in backlog.bodies[at : at + in_flight]
                )
            )
        return len(backlog.bodies) / (time.perf_counter() - t0)
    finally:
        await connection.close()


class QueueDepth:
    """Ready messages of a queue, by passive declare (cheap for the broker; unacked ones are not counted)."""

    def __init__(self) -> None:
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def __aenter__(self) -> QueueDepth:
        self._connection = await aio_pika.connect(AMQP_URL)
        self._channel = await self._connection.channel()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def ready(self, queue: str) -> int:
        assert self._channel is not None
        declared = await self._channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return int(result.message_count or 0)


async def inbox_count(conn: asyncpg.Connection, consumer: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", consumer))


async def timed_restart(
    system: System,
    *,
    service: str,
    consumer: str,
    events: int,
    verify: Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Start the stopped `service` and time its `consumer` through a backlog of `events` already queued."""
    queue = f"{system.namespace}.{consumer}"
    db = await system.db(service)
    try:
        already = await inbox_count(db, consumer)
        async with QueueDepth() as depth:
            queued = await depth.ready(queue)
            if queued < events:
                raise RuntimeError(f"{queue} holds {queued} events, expected {events}")
            ready_at: list[float] = []
            t_spawn = time.perf_counter()
            restart = asyncio.create_task(system.restart(service))
            restart.add_done_callback(lambda _t: ready_at.append(time.perf_counter()))
            t_first = None
            cpu_from = None
            deadline = time.perf_counter() + GIVE_UP_SECONDS
            while (left := await depth.ready(queue)) >= queued:
                _check_deadline(deadline, consumer)
                await asyncio.sleep(POLL_SECONDS)
                if restart.done() and restart.exception():
                    raise restart.exception()  # type: ignore[misc]
            t_first = time.perf_counter()
            cpu_from = procstat.snapshot()
            while left > 0:
                _check_deadline(deadline, consumer)
                await asyncio.sleep(POLL_SECONDS)
                left = await depth.ready(queue)
        while await inbox_count(db, consumer) < already + events:
            _check_deadline(deadline, consumer)
            await asyncio.sleep(POLL_SECONDS)
        t_done = time.perf_counter()
        roles = {system.processes[service].pid: service, os.getpid(): "bench"}
        cpu = procstat.usage(cpu_from, procstat.snapshot(), roles, database=system.database)
        await restart
        seconds = t_done - t_first
        return {
            "consumer": consumer,
            "service": service,
            "events": events,
            "seconds": round(seconds, 3),
            "rate": events / seconds,
            "startup_s": round(ready_at[0] - t_spawn, 2) if ready_at else None,
            "first_delivery_after_spawn_s": round(t_first - t_spawn, 2),
            "done_after_ready_s": round(t_done - ready_at[0], 2) if ready_at else None,
            "cpu": cpu,
            "effects": await verify(db),
        }
    finally:
        await db.close()


def stop(system: System, *services: str) -> None:
    """SIGTERM: the consumers finish and ack what they hold, so the backlog starts from a clean queue."""
    for service in services:
        system.kill(service, signal.SIGTERM)
