"""One chaos round: a system of its own behind two proxies, the load, the plan's faults in turn, then the
system settled and every projection and every answer held against the truth."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.chaos import faults
from tests.chaos.faults import EventTap, Fault, FaultResult, Probe, Round
from tests.chaos.load import Load
from tests.chaos.truth import ClientCheck, Differences, check_client_records, compare_projections, read_truth
from tests.harness import System, TcpProxy
from tests.test_reliability import queue_depths
from tillit.catalog import BACKEND_SERVICES, all_consumers

CONSUMER_SERVICES: tuple[str, ...] = tuple(s for s, consumers in all_consumers().items() if consumers)
PUBLISHERS = ("posts", "reactions", "people")


@dataclass(frozen=True)
class Plan:
    name: str
    faults: tuple[Fault, ...]
    rate: float = 40
    people: int = 8
    down_seconds: float = 5  # how long a process stays dead or a server away
    calm_seconds: float = 5  # load without a fault between two faults, and before the first
    settle_timeout: float = 120
    measure_recovery: bool = True  # False: the probe waits for the gateway only, not every projection


def full_plan(*, rate: float = 30) -> Plan:
    return Plan(
        "full",
        (
            *(faults.stop_and_restart(s, signal.SIGKILL) for s in CONSUMER_SERVICES),
            *(faults.stop_and_restart(s, signal.SIGTERM) for s in CONSUMER_SERVICES),
            faults.cut("rabbitmq"),
            faults.cut("postgresql"),
            *(faults.relay_killed_in_flight(s) for s in PUBLISHERS),
            faults.two_replicas(CONSUMER_SERVICES, hold_seconds=30),
        ),
        rate=rate,
        down_seconds=3,
        calm_seconds=3,
    )


def bounded_plan() -> Plan:
    """The round CI runs: one consumer killed, the broker and the database each away for a while."""
    return Plan(
        "bounded",
        (
            faults.stop_and_restart("notifications", signal.SIGKILL),
            faults.cut("rabbitmq"),
            faults.cut("postgresql"),
        ),
        rate=30,
        people=6,
        down_seconds=3,
        calm_seconds=3,
        settle_timeout=90,
        measure_recovery=False,
    )


@dataclass
class Result:
    plan: str
    started: str
    load: dict[str, Any] = field(default_factory=dict)
    faults: list[FaultResult] = field(default_factory=list)
    baseline: FaultResult | None = None
    projections: list[Differences] = field(default_factory=list)
    client: ClientCheck | None = None
    settle_seconds: float | None = None
    pipeline: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        return sum(len(d.lost) for d in self._all())

    @property
    def duplicated(self) -> int:
        return sum(len(d.duplicated) for d in self._all())

    @property
    def wrong(self) -> int:
        return sum(len(d.wrong) for d in self._all())

    def _all(self) -> list[Differences]:
        return [*self.projections, *([self.client.differences] if self.client else [])]


async def chaos_round(plan: Plan, *, log: Any = print) -> Result:
    started = time.monotonic()
    result = Result(plan.name, datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    db_proxy, amqp_proxy = TcpProxy("127.0.0.1", 5432), TcpProxy("127.0.0.1", 5672)
    # Feeds keep every entry here, so each one can be held against the truth (trimming is tested elsewhere).
    system = System(db_via=db_proxy, amqp_via=amqp_proxy, extra_env={"FEEDS_MAX_ENTRIES": "1000000"})
    tap = EventTap(system.namespace)
    running: Load | None = None
    try:
        await db_proxy.start()
        await amqp_proxy.start()
        await system.start()
        await tap.start()
        probe = Probe(system, projections=plan.measure_recovery)
        await probe.setup()
        load = Load(system, rate=plan.rate, people=plan.people)
        running = load
        await load.start()
        r = Round(system, db_proxy, amqp_proxy, load, probe, tap, plan.down_seconds)
        log(f"chaos {plan.name}: {plan.people} people at {plan.rate} requests/s, logs in {system.log_dir}")
        await asyncio.sleep(plan.calm_seconds)
        result.baseline = await faults.baseline(r)
        for fault in plan.faults:
            load.phase = fault.name
            log(f"  {fault.name} ...")
            outcome = await fault.inject(r)
            result.faults.append(outcome)
            log(f"  {fault.name}: recovered in {outcome.recovery} {outcome.notes}")
            load.phase = f"after {fault.name}"
            await asyncio.sleep(plan.calm_seconds)
        running = None
        await load.stop()
        result.load = load.summary()
        log(f"  load stopped: {result.load['requests']} requests, settling")

        settle_started = time.monotonic()
        await settle(system, timeout=plan.settle_timeout)
        deadline = settle_started + plan.settle_timeout
        while True:
            truth = await read_truth(system)
            result.projections = await compare_projections(system, truth)
            if all(d.clean for d in result.projections) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        result.settle_seconds = round(time.monotonic() - settle_started, 1)
        result.client = check_client_records(truth, load.records)
        result.pipeline = await pipeline_figures(system, tap, result.faults)
    finally:
        if running is not None:
            await running.stop()
        await db_proxy.restore()
        await amqp_proxy.restore()
        await tap.close()
        await system.stop()
        await db_proxy.close()
        await amqp_proxy.close()
    result.seconds = round(time.monotonic() - started, 1)
    return result


async def settle(system: System, *, timeout: float) -> None:
    """Until every outbox is empty and every queue drained, twice in a row (or the timeout)."""
    queues = [q for q in system.queue_names() if not q.endswith(".dlq") and not q.endswith(".unrouted")]
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        backlog = sum(s["outbox_backlog"] for s in (await service_stats(system)).values())
        depth = sum((await queue_depths(queues)).values())
        quiet = quiet + 1 if backlog == 0 and depth == 0 else 0
        await asyncio.sleep(0.5)


async def service_stats(system: System) -> dict[str, dict[str, Any]]:
    stats = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for service in BACKEND_SERVICES:
            reply = await client.get(f"http://127.0.0.1:{system.ports[service]}/stats")
            reply.raise_for_status()
            stats[service] = reply.json()
    return stats


async def pipeline_figures(system: System, tap: EventTap, results: list[FaultResult]) -> dict[str, Any]:
    """The event pipeline's own figures: events published more than once (and each applied once, which the
    projections show), the relays' batches caught in flight, dead letters, inbox rows per consumer."""
    dead = await queue_depths(q for q in system.queue_names() if q.endswith(".dlq"))
    in_flight = [event_id for r in results for event_id in r.in_flight]
    applied: dict[str, int] = {}
    for service, consumers in all_consumers().items():
        if not consumers:
            continue
        conn = await system.db(service)
        try:
            for row in await conn.fetch("SELECT consumer, count(*) AS n FROM inbox GROUP BY consumer"):
                applied[row["consumer"]] = int(row["n"])
        finally:
            await conn.close()
    return {
        "events_published": len(tap.seen),
        "published_more_than_once": tap.published_more_than_once,
        "in_flight_at_relay_kills": len(in_flight),
        "in_flight_published_again": sum(1 for event_id in in_flight if tap.seen[event_id] > 1),
        "dead_letters": sum(dead.values()),
        "events_applied": sum(applied.values()),
        "applied_per_consumer": applied,
    }
