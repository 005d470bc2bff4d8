"""Transactional outbox: events are written beside the business rows and published by a relay.

The relay takes a batch with FOR UPDATE SKIP LOCKED (so replicas share the work), publishes it with
publisher confirms and persistent delivery, and deletes the rows in the same transaction. A crash
between publish and commit publishes the batch again: delivery is at least once, and consumers dedupe.

Each row keeps the trace context it was written in, published as the AMQP header `traceparent`, so the
consumers of the event continue the trace of the request that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import aio_pika
import asyncpg
from aio_pika.abc import AbstractRobustConnection

from shared import tracing
from shared.broker import Topology, open_publishing_channel
from shared.db import Connection, listen_forever
from shared.events import Envelope
from shared.metrics import OUTBOX_PUBLISH_DURATION, OUTBOX_PUBLISHED, OutboxState
from shared.retry import backoff_seconds, is_transient

log = logging.getLogger(__name__)


async def add_to_outbox(conn: Connection, envelope: Envelope) -> None:
    """Queue an event for publishing; call inside the transaction that writes the business rows."""
    await conn.execute(
        "INSERT INTO outbox (event_id, routing_key, body, traceparent) VALUES ($1, $2, $3, $4)",
        envelope.id,
        str(envelope.type),
        envelope.model_dump_json().encode(),
        envelope.traceparent or tracing.current_traceparent(),
    )


class OutboxRelay:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        dsn: str,
        schema: str,
        connection: AbstractRobustConnection,
        topology: Topology,
        source: str,
        poll_seconds: float = 1.0,
        batch_size: int = 500,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._schema = schema
        self._connection = connection
        self._topology = topology
        self._source = source
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._listener_task: asyncio.Task[None] | None = None
        self.published = 0
        self.last_published_at: float | None = None
        self.state = OutboxState()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")
        self._listener_task = asyncio.create_task(self._listen(), name=f"outbox-listen-{self._schema}")

    async def stop(self, *, grace_seconds: float = 5.0) -> None:
        """Finish the batch in flight and publish what the consumers wrote while stopping, for at most
        `grace_seconds`; what is left stays in the table for the next start (or another replica). Cut off
        mid-batch, the batch's transaction rolls back and it is published again later: consumers dedupe."""
        self._stopping = True
        self._wake.set()
        if self._listener_task is not None:
            self._listener_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener_task
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, grace_seconds)
            except TimeoutError:
                log.warning("outbox relay did not finish within %.0f s; the rest is published later", grace_seconds)
            except asyncio.CancelledError:
                pass

    async def _listen(self) -> None:
        await listen_forever(
            self._dsn, f"{self._schema}.outbox", self._wake.set, retry_cap_seconds=self._poll_seconds * 5
        )

    async def _run(self) -> None:
        channel = None
        exchange: aio_pika.abc.AbstractExchange | None = None
        attempt = 0
        while not self._stopping:
            try:
                if channel is None or channel.is_closed:
                    channel = await open_publishing_channel(self._connection)
                    exchange = await self._topology.declare_exchanges(channel)
                assert exchange is not None
                published = await self._publish_batch(exchange)
                attempt = 0
                if published >= self._batch_size:
                    continue  # more waiting: no sleep
            except Exception as exc:
                attempt += 1
                # While the broker is away aio-pika raises plain RuntimeErrors ("channel closed"): that is
                # the outage, already reported by the connection, not a fault of ours.
                broker_away = not self._connection.connected.is_set()
                level = logging.WARNING if is_transient(exc) or broker_away else logging.ERROR
                log.log(level, "outbox relay failed, retrying: %r", exc)
                channel = None
                await asyncio.sleep(backoff_seconds(attempt))
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
        if channel is not None and not channel.is_closed and exchange is not None:
            # The consumers stopped before the relay: publish what their last batches wrote, so it does not
            # wait for the next start.
            with contextlib.suppress(Exception):
                while await self._publish_batch(exchange) >= self._batch_size:
                    pass
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _publish_batch(self, exchange: aio_pika.abc.AbstractExchange) -> int:
        started = time.perf_counter()
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, event_id, routing_key, body, traceparent FROM outbox"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not rows:
                return 0
            await asyncio.gather(*(self._publish(exchange, row) for row in rows))
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [row["id"] for row in rows])
        self.published += len(rows)
        self.last_published_at = time.time()
        OUTBOX_PUBLISH_DURATION.observe(time.perf_counter() - started)
        for row in rows:
            OUTBOX_PUBLISHED.labels(row["routing_key"]).inc()
        return len(rows)

    async def _publish(self, exchange: aio_pika.abc.AbstractExchange, row: asyncpg.Record) -> None:
        event_id: uuid.UUID = row["event_id"]
        headers: dict[str, aio_pika.abc.FieldValue] = {}
        if row["traceparent"]:
            headers["traceparent"] = row["traceparent"]
        message = aio_pika.Message(
            body=bytes(row["body"]),
            message_id=str(event_id),
            type=row["routing_key"],
            app_id=self._source,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=headers,
        )
        await exchange.publish(message, routing_key=row["routing_key"], mandatory=True)

    async def backlog(self) -> int:
        async with self._pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM outbox"))

    async def refresh_state(self) -> OutboxState:
        """Read the backlog and the age of the oldest row, for the metrics; the state is emptied (no sample)
        when the database does not answer in time."""
        try:
            async with self._pool.acquire(timeout=2) as conn:
                row = await conn.fetchrow(
                    "SELECT count(*) AS backlog,"
                    " COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)::float8 AS age"
                    " FROM outbox",
                    timeout=2,
                )
        except Exception as exc:
            log.warning("could not read the outbox for metrics: %r", exc)
            self.state.backlog = None
            return self.state
        assert row is not None
        self.state.backlog = int(row["backlog"])
        self.state.oldest_age_seconds = max(0.0, float(row["age"]))
        self.state.read_at = time.time()
        return self.state
