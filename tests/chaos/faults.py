"""The faults of a chaos round, each injected while the load runs, and how recovery is measured.

Recovery: right after a fault ends (the process restarted, the proxy restored) a probe writes a post and a
like through the gateway, retrying until they are taken, and the time until each projection shows them is
the projection's recovery time. Queues are served about in order, so the probe's events come after the
backlog the fault left: the time covers draining it. The shared servers are never touched: PostgreSQL and
RabbitMQ are cut through the round's own TcpProxy."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx

from tests.chaos.load import Load
from tests.harness import AMQP_URL, System, TcpProxy, random_id

PROBE_TIMEOUT_SECONDS = 120
# What the probe waits for in each projection, read straight from the service's schema; $1 is the probe's
# post, $2 its liker, $3 its author.
PROBE_QUERIES: dict[str, tuple[str, str]] = {
    "post counts": ("posts", "SELECT like_count = 1 FROM post_counts WHERE post_id = $1 AND $2::text <> $3::text"),
    "notifications": (
        "notifications",
        """SELECT true FROM notifications n JOIN notification_actors a ON a.notification_id = n.id
           WHERE n.post_id = $1 AND a.actor_id = $2 AND n.recipient_id = $3""",
    ),
    "home feed": ("feeds", "SELECT true FROM feed_entries WHERE post_id = $1 AND owner_id = $3 AND $2::text <> ''"),
    "search": ("search", "SELECT body IS NOT NULL FROM posts WHERE id = $1 AND $2::text <> $3::text"),
}
PROJECTIONS = tuple(PROBE_QUERIES)


class Probe:
    """A post and a like of people of its own, and how long until every projection has them."""

    def __init__(self, system: System, *, projections: bool = True) -> None:
        self.system = system
        # False: only until the gateway takes writes again (a bounded round has no time to wait for more).
        self.projections = projections
        self.author = random_id("probe-author")
        self.liker = random_id("probe-liker")

    async def setup(self) -> None:
        for person, paths in ((self.author, ("/api/me", "/api/feed")), (self.liker, ("/api/me",))):
            async with self.system.client(self.system.token(person)) as client:
                for path in paths:
                    assert (await client.get(path)).status_code == 200

    async def measure(self, since: float) -> dict[str, float | None]:
        """Seconds from `since` until the gateway took the probe's writes ("accepted") and until each
        projection showed them; None for one that did not within PROBE_TIMEOUT_SECONDS."""
        deadline = since + PROBE_TIMEOUT_SECONDS
        times: dict[str, float | None] = dict.fromkeys(("accepted", *PROJECTIONS))
        body = {"body": "Prøve etter feilen", "kind": "post", "audience": {"type": "everyone"}}
        created = await self._until_taken(self.author, "POST", "/api/posts", body, deadline)
        if created is None or not await self._until_taken(
            self.liker, "PUT", f"/api/posts/{created['id']}/like", None, deadline
        ):
            return times
        times["accepted"] = round(time.monotonic() - since, 2)
        if not self.projections:
            return times
        post_id = uuid.UUID(created["id"])
        conns = {schema: await self.system.db(schema) for schema, _ in PROBE_QUERIES.values()}
        try:
            while time.monotonic() < deadline and any(times[p] is None for p in PROJECTIONS):
                for projection, (schema, query) in PROBE_QUERIES.items():
                    if times[projection] is None and await conns[schema].fetchval(
                        query, post_id, self.liker, self.author
                    ):
                        times[projection] = round(time.monotonic() - since, 2)
                await asyncio.sleep(0.1)
        finally:
            for conn in conns.values():
                await conn.close()
        return times

    async def _until_taken(
        self, person: str, method: str, path: str, body: Any, deadline: float
    ) -> dict[str, Any] | None:
        async with self.system.client(self.system.token(person)) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    reply = await client.request(method, path, json=body)
                    if reply.status_code in (200, 201):
                        result: dict[str, Any] = reply.json()
                        return result
                await asyncio.sleep(0.2)
        return None


class EventTap:
    """A queue of the round's own, straight on the broker (not through the proxy), bound to every event:
    which event ids were published more than once (a relay that died before marking its rows)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.seen: Counter[str] = Counter()
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(AMQP_URL)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(f"{self.namespace}.events", routing_key="#")
        await queue.consume(self._take, no_ack=True)

    async def _take(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.seen[str(message.message_id)] += 1

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    @property
    def published_more_than_once(self) -> int:
        return sum(1 for n in self.seen.values() if n > 1)


@dataclass
class Round:
    """What a fault acts on."""

    system: System
    db_proxy: TcpProxy
    amqp_proxy: TcpProxy
    load: Load
    probe: Probe
    tap: EventTap
    down_seconds: float


@dataclass
class FaultResult:
    name: str
    kind: str
    recovery: dict[str, float | None]
    notes: dict[str, Any] = field(default_factory=dict)
    # Event ids a relay held unconfirmed when it was killed: they must have been published twice.
    in_flight: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Fault:
    name: str
    kind: str
    inject: Callable[[Round], Awaitable[FaultResult]]


async def _restart(r: Round, process: str) -> float:
    """Start a stopped process again; the moment it was started (recovery counts from there)."""
    started = time.monotonic()
    r.system.start_process(process)
    await r.system.wait_service_ready(process)
    return started


def stop_and_restart(service: str, sig: signal.Signals) -> Fault:
    kind = "sigkill" if sig == signal.SIGKILL else "sigterm"

    async def inject(r: Round) -> FaultResult:
        started = time.monotonic()
        # In a thread: a graceful stop takes seconds, and the load and the proxies run on this loop.
        await asyncio.to_thread(r.system.kill, service, sig)
        stopped_in = time.monotonic() - started
        await asyncio.sleep(r.down_seconds)
        since = await _restart(r, service)
        notes = {"stopped_in_s": round(stopped_in, 2), "ready_in_s": round(time.monotonic() - since, 2)}
        return FaultResult(f"{kind} {service}", kind, await r.probe.measure(since), notes)

    return Fault(f"{kind} {service}", kind, inject)


def cut(what: str) -> Fault:
    """RabbitMQ or PostgreSQL stopped and started, as the services see it: every connection dropped and new
    ones refused for a while."""

    async def inject(r: Round) -> FaultResult:
        proxy = r.amqp_proxy if what == "rabbitmq" else r.db_proxy
        await proxy.cut()
        await asyncio.sleep(r.down_seconds)
        await proxy.restore()
        since = time.monotonic()
        return FaultResult(f"{what} stopped and started", what, await r.probe.measure(since))

    return Fault(f"{what} stopped and started", what, inject)


def relay_killed_in_flight(service: str) -> Fault:
    """The outbox relay killed between publish and mark: the broker's replies are held (it has routed the
    publish, the confirm does not come back), the relay sits in its transaction over the outbox rows, and
    the process is killed there. The rows stay and are published again at restart: at least once."""

    async def inject(r: Round) -> FaultResult:
        r.amqp_proxy.stall()
        try:
            hit = await _until(lambda: _relay_waiting_for_confirms(r.system, service), timeout=20)
            in_flight = await _locked_outbox_rows(r.system, service) if hit else []
            await asyncio.to_thread(r.system.kill, service, signal.SIGKILL)
        finally:
            await r.amqp_proxy.restore()
        await asyncio.sleep(r.down_seconds)
        since = await _restart(r, service)
        notes = {"relay_caught_in_flight": hit, "events_in_flight": len(in_flight)}
        result = FaultResult(f"relay of {service} killed in flight", "relay", await r.probe.measure(since), notes)
        result.in_flight = in_flight
        return result

    return Fault(f"relay of {service} killed in flight", "relay", inject)


def two_replicas(services: tuple[str, ...], hold_seconds: float) -> Fault:
    """A second process of every consumer service for a while (competing consumers, a shared relay), then
    scaled down again with SIGTERM."""

    async def inject(r: Round) -> FaultResult:
        names = [r.system.start_replica(service) for service in services]
        await asyncio.gather(*(r.system.wait_service_ready(name) for name in names))
        since = time.monotonic()
        recovery = await r.probe.measure(since)
        await asyncio.sleep(max(0.0, hold_seconds - (time.monotonic() - since)))
        await asyncio.gather(*(asyncio.to_thread(r.system.kill, name, signal.SIGTERM) for name in names))
        for name in names:
            del r.system.processes[name]
        return FaultResult("two replicas of every consumer", "replicas", recovery, {"replicas": names})

    return Fault("two replicas of every consumer", "replicas", inject)


async def _until(check: Callable[[], Awaitable[bool]], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


async def _relay_waiting_for_confirms(system: System, service: str) -> bool:
    """The service's relay has taken outbox rows in a transaction and waits on the broker."""
    conn = await system.db(service)
    try:
        return bool(
            await conn.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND application_name = $1
                     AND state = 'idle in transaction' AND query LIKE '%FROM outbox%FOR UPDATE SKIP LOCKED%'""",
                f"tillit-{service}",
            )
        )
    finally:
        await conn.close()


async def _locked_outbox_rows(system: System, service: str) -> list[str]:
    """The event ids of the outbox rows someone holds locked: the relay's batch in flight."""
    conn = await system.db(service)
    try:
        transaction = conn.transaction()
        await transaction.start()
        # Rows this transaction can lock are free; the rest are the relay's. Rolled back at once.
        rows = await conn.fetch(
            "SELECT event_id FROM outbox WHERE id NOT IN (SELECT id FROM outbox FOR UPDATE SKIP LOCKED)"
        )
        await transaction.rollback()
    finally:
        await conn.close()
    return [str(r["event_id"]) for r in rows]


async def baseline(r: Round) -> FaultResult:
    """No fault: what the probe measures in calm, for comparison."""
    return FaultResult("no fault (baseline)", "baseline", await r.probe.measure(time.monotonic()))
