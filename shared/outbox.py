"""Transactional outbox: events are written beside the business rows and published by a relay.

The relay takes a batch with FOR UPDATE SKIP LOCKED (so replicas share the work), publishes it with
publisher confirms and persistent delivery, and deletes the rows in the same transaction. A crash
between publish and commit publishes the batch again: delivery is at least once, and consumers dedupe.
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

from shared.broker import Topology, open_publishing_channel
from shared.db import Connection, listen_forever
from shared.events import Envelope
from shared.retry import backoff_seconds, is_transient

log = logging.getLogger(__name__)


async def add_to_outbox(conn: Connection, envelope: Envelope) -> None:
    """Queue an event for publishing; call inside the transaction that writes the business rows."""
    await conn.execute(
        "INSERT INTO outbox (event_id, routing_key, body) VALUES ($1, $2, $3)",
        envelope.id,
        str(envelope.type),
        envelope.model_dump_json().encode(),
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

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")
        self._listener_task = asyncio.create_task(self._listen(), name=f"outbox-listen-{self._schema}")

    async def stop(self) -> None:
        """Finish the batch in flight, then stop; what is left stays in the table for the next start."""
        self._stopping = True
        self._wake.set()
        for task in (self._listener_task, self._task):
            if task is None:
                continue
            if task is self._listener_task:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self) -> None:
        await listen_forever(
            self._dsn, f"{self._schema}.outbox", self._wake.set, retry_cap_seconds=self._poll_seconds * 5
        )

    async def _run(self) -> None:
        channel = None
        attempt = 0
        while not self._stopping:
            try:
                if channel is None or channel.is_closed:
                    channel = await open_publishing_channel(self._connection)
                    exchange = await self._topology.declare_exchanges(channel)
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
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _publish_batch(self, exchange: aio_pika.abc.AbstractExchange) -> int:
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
