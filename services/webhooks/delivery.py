"""Delivers queued events to the subscribers' URLs, signed, at least once, with retries and backoff.

A delivery row is written in the transaction that consumed the event. The worker leases due rows with
FOR UPDATE SKIP LOCKED (replicas share the work; a lease that runs out gives a row back if a replica dies
mid-attempt), POSTs the envelope and records the attempt. 2xx is delivered; anything else, a redirect, a
timeout or a refused connection is a failed attempt, retried after an exponential, jittered and capped delay.
A subscription whose attempts keep failing is disabled and what waited for it suspended (docs/webhooks.md).

Order is not kept: deliveries run concurrently and retries overtake; receivers deduplicate by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg

from services.webhooks import repository
from shared.db import listen_forever
from shared.settings import Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
USER_AGENT = "Tillit-Webhooks/1"


def utc_now() -> datetime:
    return datetime.now(UTC)


def signature(secret: str, *, timestamp: int, body: bytes) -> str:
    """`sha256=` and the hex HMAC-SHA256, keyed with the secret, of `<timestamp>.<body>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_header(secrets: list[str], *, timestamp: int, body: bytes) -> str:
    """One signature per valid secret, the current one first (two only during a rotation's grace)."""
    return ", ".join(signature(secret, timestamp=timestamp, body=body) for secret in secrets)


def retry_delay(attempts: int, *, base: float, cap: float) -> timedelta:
    """Exponential backoff, capped, with jitter on its upper half so failing receivers are not hit in step."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=delay / 2 + random.uniform(0, delay / 2))


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed_attempts: int = 0
    given_up: int = 0
    disabled: int = 0


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.error is None


class DeliveryWorker:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        settings: Settings,
        schema: str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._schema = schema
        self._clock = clock
        self._concurrency = settings.webhook_concurrency
        # An attempt is bounded by the timeout; the lease outlasts it so a live attempt is never taken twice.
        self._lease = timedelta(seconds=settings.webhook_timeout_seconds * 2 + 30)
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.stats = DeliveryStats()

    def open(self) -> None:
        """The HTTP client only: what `deliver_due` needs (tests call it without starting the loop)."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout_seconds),
            connector=aiohttp.TCPConnector(limit=self._concurrency * 2, limit_per_host=self._concurrency),
            skip_auto_headers=("User-Agent",),
        )

    async def start(self) -> None:
        self.open()
        self._tasks = [
            asyncio.create_task(self._run(), name="webhook-delivery"),
            asyncio.create_task(
                listen_forever(
                    self._settings.database_url, f"{self._schema}.deliveries", self._wake.set, retry_cap_seconds=5
                ),
                name="webhook-delivery-listen",
            ),
        ]

    async def stop(self) -> None:
        """Let attempts in flight finish (each is bounded by the timeout), then stop; leases return the rest."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            run, listen = self._tasks
            listen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listen
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(run, timeout=1)
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=min(10.0, self._settings.webhook_timeout_seconds + 1))
        for task in self._in_flight:
            task.cancel()
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before claiming: a wake-up during the claim (new rows, a finished attempt) is not lost.
            self._wake.clear()
            claimed = 0
            free = self._concurrency - len(self._in_flight)
            if free > 0:
                try:
                    claimed = self._launch(await self._claim(free))
                except Exception as exc:
                    log.warning("webhook worker could not take due deliveries: %r", exc)
            if claimed and claimed == free:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _claim(self, limit: int) -> list[asyncpg.Record]:
        async with self._pool.acquire() as conn:
            return await repository.claim_due(conn, now=self._clock(), limit=limit, lease=self._lease)

    def _launch(self, rows: list[asyncpg.Record]) -> int:
        for row in rows:
            task = asyncio.create_task(self._deliver(row), name=f"webhook-delivery-{row['id']}")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
        return len(rows)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def deliver_due(self) -> int:
        """Attempt what is due now and wait for the outcomes; the number attempted (for tests)."""
        rows = await self._claim(self._concurrency)
        await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _deliver(self, row: asyncpg.Record) -> None:
        try:
            at = self._clock()
            outcome = await self._attempt(row)
            await self._record(row, at=at, outcome=outcome)
        except Exception:
            # The lease gives the row back later; the others need not wait for it.
            log.exception("webhook delivery could not be recorded", extra={"delivery_id": row["id"]})

    async def _attempt(self, row: asyncpg.Record) -> Outcome:
        assert self._session is not None
        body: bytes = row["body"]
        timestamp = int(time.time())
        secrets = [row["secret"], *([row["previous_secret"]] if row["previous_secret"] else [])]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Tillit-Event-Id": str(row["event_id"]),
            "X-Tillit-Event-Type": row["event_type"],
            "X-Tillit-Timestamp": str(timestamp),
            "X-Tillit-Signature": signature_header(secrets, timestamp=timestamp, body=body),
            "X-Tillit-Delivery-Attempt": str(row["attempts"]),
        }
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            async with self._session.post(row["url"], data=body, headers=headers, allow_redirects=False) as reply:
                status_code = reply.status
                # Read (a little of) the answer so the connection can be reused; its content is not kept.
                with contextlib.suppress(Exception):
                    await reply.content.read(4096)
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except TimeoutError:
            error = f"no answer within {self._settings.webhook_timeout_seconds:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
        return Outcome(status_code, error, int((time.monotonic() - started) * 1000))

    async def _record(self, row: asyncpg.Record, *, at: datetime, outcome: Outcome) -> None:
        delivery_id: int = row["id"]
        subscription_id = row["subscription_id"]
        attempts: int = row["attempts"]
        settings = self._settings
        async with self._pool.acquire() as conn, conn.transaction():
            await repository.record_attempt(
                conn,
                delivery_id,
                attempt=attempts,
                at=at,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
            if outcome.delivered:
                assert outcome.status_code is not None
                await repository.subscription_succeeded(conn, subscription_id)
                await repository.mark_delivered(conn, delivery_id, at=self._clock(), status_code=outcome.status_code)
                self.stats.delivered += 1
                return
            error = outcome.error or "failed"
            self.stats.failed_attempts += 1
            # The subscription's row is locked from here to the commit, so concurrent outcomes count one by one.
            state = await repository.subscription_failed(conn, subscription_id, at=at)
            if state is None:
                return  # deleted meanwhile, with its deliveries
            active: bool = state["active"]
            failing_for = (at - state["failing_since"]).total_seconds()
            if (
                active
                and state["consecutive_failures"] >= settings.webhook_disable_after_failures
                and failing_for >= settings.webhook_disable_after_seconds
            ):
                reason = (
                    f"disabled after {state['consecutive_failures']} consecutive failed attempts since "
                    f"{state['failing_since'].isoformat()}; the last: {error}"
                )[:1000]
                await repository.disable(conn, subscription_id, reason=reason, at=at)
                active = False
                self.stats.disabled += 1
                log.warning("webhook disabled", extra={"subscription_id": str(subscription_id), "reason": reason})
            if not active:
                await repository.settle_failure(
                    conn, delivery_id, status="suspended", status_code=outcome.status_code, error=error
                )
            elif attempts >= settings.webhook_max_attempts:
                await repository.settle_failure(
                    conn,
                    delivery_id,
                    status="failed",
                    status_code=outcome.status_code,
                    error=f"gave up after {attempts} attempts: {error}"[:1000],
                )
                self.stats.given_up += 1
            else:
                delay = retry_delay(
                    attempts, base=settings.webhook_retry_base_seconds, cap=settings.webhook_retry_cap_seconds
                )
                await repository.settle_failure(
                    conn,
                    delivery_id,
                    status="pending",
                    status_code=outcome.status_code,
                    error=error,
                    next_attempt_at=self._clock() + delay,
                )
