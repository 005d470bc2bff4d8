"""The idempotent, batching event consumer every service uses.

Messages are validated as they arrive. A malformed one is dead-lettered at once with the reason in its
headers. Valid ones are applied in batches: one transaction writes the inbox rows (consumer, event id)
and the effects together, so an event delivered twice is applied once; each message is acked only
after its batch has committed. A transient failure (database or broker away) holds the batch and
retries it with backoff, without counting toward the delivery limit. Any other failure isolates the
event at fault; it is redelivered until the delivery limit, then dead-lettered with the error.

Each batch runs in the trace of its events (the AMQP header `traceparent`, or the envelope's), so the lines
it logs and the events its handler publishes carry that trace. A batch whose events come from several traces
(under load, most do) runs in a trace of its own, and its log line names the trace of each event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from pydantic import ValidationError

from shared import tracing
from shared.broker import Topology
from shared.db import Connection
from shared.events import Event, EventType, parse_event
from shared.logs import event_context
from shared.metrics import BATCH_SIZE, DEAD_LETTERS, EVENTS_CONSUMED, HANDLER_DURATION
from shared.retry import backoff_seconds, is_transient

log = logging.getLogger(__name__)

BatchHandler = Callable[[Connection, Sequence[Event]], Awaitable[None]]


@dataclass(frozen=True)
class EventConsumer:
    """One purpose of one service: which events it takes and what it does with a batch of them."""

    name: str  # e.g. "notifications.reactions"; the queue is <namespace>.<name>
    event_types: Sequence[EventType]
    handle: BatchHandler


@dataclass
class ConsumerStats:
    consumed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    last_batch_at: float | None = None
    by_type: dict[str, int] = field(default_factory=dict)


@dataclass
class _Delivery:
    event: Event
    message: AbstractIncomingMessage
    traceparent: str | None = None


async def claim_inbox(conn: Connection, consumer: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Record the events as processed by `consumer`; returns the ids that were not recorded before."""
    rows = await conn.fetch(
        "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::uuid[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        consumer,
        list(event_ids),
    )
    return {row["event_id"] for row in rows}


class ConsumerRunner:
    def __init__(
        self,
        consumer: EventConsumer,
        *,
        pool: asyncpg.Pool,
        connection: AbstractRobustConnection,
        topology: Topology,
        prefetch: int,
        batch_size: int,
        batch_wait_ms: float,
    ) -> None:
        self.consumer = consumer
        self._pool = pool
        self._connection = connection
        self._topology = topology
        self._prefetch = prefetch
        self._batch_size = batch_size
        self._batch_wait = batch_wait_ms / 1000
        self._deliveries: asyncio.Queue[_Delivery] = asyncio.Queue()
        self._channel: AbstractChannel | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False
        self.stats = ConsumerStats()
        # Series that exist from the start, at zero, so a rate or an alert on them works before the first one.
        for cause in ("malformed", "handler_failed"):
            DEAD_LETTERS.labels(consumer.name, cause)
        HANDLER_DURATION.labels(consumer.name)

    @property
    def queue_name(self) -> str:
        return self._topology.queue_name(self.consumer.name)

    async def start(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await self._channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await self._topology.declare_consumer_queue(
            self._channel, self.consumer.name, [str(t) for t in self.consumer.event_types]
        )
        self._worker = asyncio.create_task(self._apply_batches(), name=f"consumer-{self.consumer.name}")
        self._consumer_tag = await self._queue.consume(self._on_message)

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Stop taking messages, finish and ack what was taken, then close; nothing in flight is lost."""
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):
                await self._queue.cancel(self._consumer_tag)
        self._stopping = True
        # Bounded: a batch stuck on a database that stays away is redelivered after we close instead.
        try:
            await asyncio.wait_for(self._deliveries.join(), timeout=grace_seconds)
        except TimeoutError:
            log.warning(
                "consumer stopped with messages unapplied; the broker redelivers them",
                extra={"consumer": self.consumer.name, "unapplied": self._deliveries.qsize()},
            )
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            event = parse_event(message.body)
        except (ValidationError, ValueError) as exc:
            await self._dead_letter(message, reason=f"malformed event: {_short(exc)}", cause="malformed")
            return
        if event.type not in self.consumer.event_types:
            # The routing key is the event type, and handlers are written for the types bound; an envelope
            # of another type (its producer's routing key and type disagree) can never be applied. Without
            # this check the handler failed on it `delivery_limit` times, each time splitting its batch, and
            # the dead letter's reason was a bare "AssertionError".
            reason = f"malformed event: type {event.type} arrived with routing key {message.routing_key}"
            await self._dead_letter(message, reason=reason, cause="malformed")
            return
        traceparent = (message.headers or {}).get("traceparent") or event.envelope.traceparent
        if isinstance(traceparent, bytes):
            traceparent = traceparent.decode("latin-1")
        await self._deliveries.put(_Delivery(event, message, traceparent if isinstance(traceparent, str) else None))

    async def _next_batch(self) -> list[_Delivery]:
        batch = [await self._deliveries.get()]
        deadline = time.monotonic() + self._batch_wait
        while len(batch) < self._batch_size:
            try:
                batch.append(self._deliveries.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._deliveries.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _apply_batches(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                await self._apply(batch)
            finally:
                for _ in batch:
                    self._deliveries.task_done()

    async def _apply(self, batch: list[_Delivery]) -> None:
        with tracing.span(_common_traceparent(batch)):
            try:
                await self._apply_with_retries(batch)
            except Exception as exc:
                if len(batch) == 1:
                    await self._reject(batch[0], exc)
                    return
            else:
                await self._ack(batch)
                return
        # Something in the batch is at fault: apply one by one so only that event pays for it.
        for delivery in batch:
            with tracing.span(delivery.traceparent):
                try:
                    await self._apply_with_retries([delivery])
                except Exception as single_exc:
                    await self._reject(delivery, single_exc)
                else:
                    await self._ack([delivery])

    async def _apply_with_retries(self, batch: list[_Delivery]) -> None:
        unique: dict[uuid.UUID, _Delivery] = {}
        for delivery in batch:
            unique.setdefault(delivery.event.id, delivery)
        name = self.consumer.name
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    fresh = await claim_inbox(conn, name, list(unique))
                    events = [delivery.event for event_id, delivery in unique.items() if event_id in fresh]
                    if events:
                        await self.consumer.handle(conn, events)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                attempt += 1
                self.stats.retries += 1
                _count(name, (d.event for d in batch), "retried")
                log.warning(
                    "transient failure, retrying batch",
                    extra={
                        "consumer": self.consumer.name,
                        "attempt": attempt,
                        "error": repr(exc),
                        "event_ids": [str(event_id) for event_id in list(unique)[:20]],
                    },
                )
                await asyncio.sleep(backoff_seconds(attempt))
                continue
            elapsed = time.perf_counter() - started
            HANDLER_DURATION.labels(name).observe(elapsed)
            BATCH_SIZE.labels(name).observe(len(batch))
            self.stats.consumed += len(events)
            self.stats.duplicates += len(batch) - len(events)
            self.stats.last_batch_at = time.time()
            for event in events:
                self.stats.by_type[event.type] = self.stats.by_type.get(event.type, 0) + 1
            _count(name, events, "applied")
            if len(events) < len(batch):
                _count(name, (d.event for d in batch if d.event.id not in fresh), "duplicate")
            if log.isEnabledFor(logging.INFO):
                self._log_batch(unique, fresh, duplicates=len(batch) - len(events), elapsed=elapsed)
            return

    def _log_batch(
        self, unique: dict[uuid.UUID, _Delivery], fresh: set[uuid.UUID], *, duplicates: int, elapsed: float
    ) -> None:
        applied = [delivery for event_id, delivery in unique.items() if event_id in fresh]
        extra: dict[str, object] = {
            "consumer": self.consumer.name,
            "applied": len(applied),
            "duplicates": duplicates,
            "duration_ms": round(elapsed * 1000, 2),
            "event_ids": [str(d.event.id) for d in applied],
            "types": sorted({str(d.event.type) for d in applied}),
            # The trace of each event applied (the batch's own trace_id is the line's): a like followed
            # across services is found here even when its event shared a batch with others.
            "trace_ids": sorted({t for d in applied if (t := tracing.trace_id_of(d.traceparent))}),
        }
        if len(applied) == 1:
            extra["event_id"] = str(applied[0].event.id)
        log.info("batch applied", extra=extra)

    async def _ack(self, batch: list[_Delivery]) -> None:
        for delivery in batch:
            try:
                await delivery.message.ack()
            except Exception as exc:
                # The channel closed after the commit: the broker redelivers and the inbox drops it.
                log.info("ack failed, message will be redelivered and deduplicated: %r", exc)

    async def _reject(self, delivery: _Delivery, exc: Exception) -> None:
        with event_context(delivery.event.id):
            deliveries = _delivery_count(delivery.message) + 1
            if deliveries >= self._topology.delivery_limit:
                await self._dead_letter(
                    delivery.message,
                    reason=f"handler failed {deliveries} times: {_short(exc)}",
                    cause="handler_failed",
                    event_type=str(delivery.event.type),
                )
                return
            _count(self.consumer.name, [delivery.event], "requeued")
            log.exception(
                "handler failed; message requeued",
                exc_info=exc,
                extra={"consumer": self.consumer.name, "deliveries": deliveries},
            )
            with contextlib.suppress(Exception):
                # basic.reject counts toward the quorum queue's delivery limit on every RabbitMQ version.
                await delivery.message.reject(requeue=True)

    async def _dead_letter(
        self, message: AbstractIncomingMessage, *, reason: str, cause: str, event_type: str | None = None
    ) -> None:
        """Move a message to this consumer's dead-letter queue with the reason; ack only once it is there."""
        assert self._channel is not None
        self.stats.dead_lettered += 1
        DEAD_LETTERS.labels(self.consumer.name, cause).inc()
        # A malformed message's routing key is whatever its publisher chose: only known types become labels.
        known = event_type or (message.routing_key if message.routing_key in _EVENT_TYPES else "unknown")
        EVENTS_CONSUMED.labels(self.consumer.name, known, "dead_lettered").inc()
        log.error(
            "dead-lettering message",
            extra={"consumer": self.consumer.name, "reason": reason, "event_id": message.message_id},
        )
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-tillit-reason": reason[:1000],
                "x-tillit-consumer": self.consumer.name,
                "x-tillit-queue": self.queue_name,
                "x-tillit-routing-key": message.routing_key or "",
                "x-tillit-dead-lettered-at": datetime.now(UTC).isoformat(),
                # The dead-letter queue overwrites x-delivery-count with its own: keep ours under our name.
                "x-tillit-deliveries": _delivery_count(message) + 1,
            }
        )
        dead = aio_pika.Message(
            body=message.body,
            headers=headers,
            message_id=message.message_id,
            type=message.type,
            app_id=message.app_id,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            exchange = await self._channel.get_exchange(self._topology.dead_letter_exchange, ensure=False)
            await exchange.publish(dead, routing_key=self.queue_name, mandatory=True)
        except Exception:
            # Could not park it: leave it to the broker, which dead-letters it at the delivery limit.
            log.exception("could not dead-letter; requeueing")
            with contextlib.suppress(Exception):
                await message.reject(requeue=True)
            return
        with contextlib.suppress(Exception):
            await message.ack()


_EVENT_TYPES = frozenset(str(t) for t in EventType)


def _count(consumer: str, events: Iterable[Event], outcome: str) -> None:
    by_type: dict[str, int] = {}
    for event in events:
        by_type[event.type] = by_type.get(event.type, 0) + 1
    for event_type, n in by_type.items():
        EVENTS_CONSUMED.labels(consumer, event_type, outcome).inc(n)


def _common_traceparent(batch: Sequence[_Delivery]) -> str | None:
    """The trace to continue for a batch: its events' one trace, or None (a new trace) when they have several."""
    first = batch[0].traceparent
    trace_id = tracing.trace_id_of(first)
    if trace_id is None:
        return None
    for delivery in batch[1:]:
        if tracing.trace_id_of(delivery.traceparent) != trace_id:
            return None
    return first


def _delivery_count(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get("x-delivery-count", 0)
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", "; ")
    return f"{type(exc).__name__}: {text}"[:800]
