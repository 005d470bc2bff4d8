"""Live notifications for the browsers connected to this gateway replica: GET /api/stream (docs/streaming.md).

Fan-in: every replica binds its own exclusive queue to the events exchange for `notification.changed.v1`, so
each replica receives every change and hands it to the streams of that recipient open on it. No replica needs
to know where a person is connected, and a replica that goes away takes only its own queue with it.

Resume: a change carries the recipient's change number (`seq`), which is also the SSE id. A stream registers
for live changes first, then asks the notifications service for the state to start from; live changes it already
covered are dropped, and a gap (a change lost on the way) is filled from the notifications service again. So a
client that reconnects with Last-Event-ID misses nothing and sees nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import anyio
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from pydantic import ValidationError
from sse_starlette import ServerSentEvent

from services.gateway.upstream import Upstreams
from shared import broker
from shared.events import EventType, NotificationChangedV1, parse_event
from shared.retry import backoff_seconds

log = logging.getLogger(__name__)

RETRY_MILLISECONDS = 3000
PING_SECONDS = 15
PRESENCE_SECONDS = 60
# On the server's exit signal, how long a stream has to finish the message it is sending and end properly.
SHUTDOWN_GRACE_SECONDS = 2.0
SUBSCRIBER_CAPACITY = 1000
# How long the gateway's start waits for the broker before serving without live changes (it keeps trying).
BROKER_WAIT_AT_START_SECONDS = 10.0


class Subscriber:
    """One open stream's live changes, buffered until the stream sends them."""

    def __init__(self, recipient_id: str, *, capacity: int) -> None:
        self.recipient_id = recipient_id
        self._changes: asyncio.Queue[NotificationChangedV1 | None] = asyncio.Queue(capacity)

    def offer(self, change: NotificationChangedV1) -> bool:
        """False when the buffer is full: the client is not reading fast enough."""
        try:
            self._changes.put_nowait(change)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        """Ends the stream after the changes it is sending now. What is still buffered is dropped: the client
        resumes from its Last-Event-ID and gets it from the notifications service instead."""
        while not self._changes.empty():
            self._changes.get_nowait()
        self._changes.put_nowait(None)

    async def next_change(self) -> NotificationChangedV1 | None:
        """The next live change, or None once the stream is to end."""
        return await self._changes.get()


class LiveNotifications:
    """This replica's queue of notification changes and the streams open on it, by recipient."""

    def __init__(self, *, rabbitmq_url: str, topology: broker.Topology, capacity: int = SUBSCRIBER_CAPACITY) -> None:
        self._rabbitmq_url = rabbitmq_url
        self._topology = topology
        self._capacity = capacity
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._connection: AbstractRobustConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        # One queue per replica and process life; the name says whose it is in the broker's management UI.
        self.queue_name = topology.queue_name(f"gateway.live.{secrets.token_hex(6)}")

    async def start(self, *, wait_seconds: float = BROKER_WAIT_AT_START_SECONDS) -> None:
        """Starts consuming, waiting a little for the broker. The gateway serves its other routes without it,
        so a broker that is away only delays live changes; streams opened meanwhile end once it is back."""
        self._connecting = asyncio.create_task(self._consume_when_reachable(), name="live-notifications-connect")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._connecting), wait_seconds)

    async def _consume_when_reachable(self) -> None:
        attempt = 0
        while True:
            try:
                await self._consume()
                return
            except CONNECTION_EXCEPTIONS as exc:
                attempt += 1
                log.warning("live notifications: broker not reachable yet, retrying: %r", exc)
                if self._connection is not None:
                    with contextlib.suppress(Exception):
                        await self._connection.close()
                    self._connection = None
                await asyncio.sleep(backoff_seconds(attempt, base=0.5, cap=5))

    async def _consume(self) -> None:
        self._connection = await broker.connect(self._rabbitmq_url, name="tillit-gateway-live")
        channel = await self._connection.channel()
        events = await self._topology.declare_exchanges(channel)
        # Exclusive and auto-delete: the queue lives as long as this connection, so a replica that stops or
        # crashes leaves nothing behind; the robust connection declares it again after a reconnect.
        queue = await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
        await queue.bind(events, routing_key=EventType.NOTIFICATION_CHANGED.value)
        channel.close_callbacks.add(self._on_channel_closed)
        channel.reopen_callbacks.add(self._on_channel_reopened)
        # No acks: a change is worth delivering only to the streams open now. What a stream misses because
        # of this replica is replayed from the notifications service when its client resumes.
        await queue.consume(self._on_message, no_ack=True)
        self._now_consuming()

    def _on_channel_closed(self, _channel: object, exc: BaseException | None, /) -> None:
        # Changes published while the queue is gone are lost to this replica, and a stream would not notice
        # until the next change showed a gap (perhaps never). Ending the streams makes the clients reconnect
        # with Last-Event-ID and catch up from the notifications service.
        if self._subscribers:
            log.warning("live notifications: broker channel closed, ending %d streams: %r", self.open_streams, exc)
        self.end_all()

    def _on_channel_reopened(self, _channel: object, /) -> None:
        self._now_consuming()

    def _now_consuming(self) -> None:
        # The queue is bound again before this runs (aio-pika restores the queue, then calls back). Streams
        # opened while it was not had no live changes: end them too, so they resume from here.
        self.end_all()
        log.info("live notifications: consuming", extra={"queue": self.queue_name})

    def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            event = parse_event(message.body)
        except (ValidationError, ValueError) as exc:
            # Nothing to retry or dead-letter: this queue is a live view, and the notifications service, which
            # validated the change before publishing it, still has it for any stream that resumes.
            log.warning("live notifications: dropped a malformed event: %r", exc)
            return
        if isinstance(event.data, NotificationChangedV1):
            self.dispatch(event.data)

    def dispatch(self, change: NotificationChangedV1) -> None:
        """Hands a change to every stream of its recipient open on this replica."""
        for subscriber in tuple(self._subscribers.get(change.recipient_id, ())):
            if not subscriber.offer(change):
                log.warning("live notifications: a stream fell %d changes behind, ending it", self._capacity)
                self._remove(subscriber)
                subscriber.end()

    @contextlib.contextmanager
    def subscribe(self, recipient_id: str) -> Iterator[Subscriber]:
        subscriber = Subscriber(recipient_id, capacity=self._capacity)
        self._subscribers.setdefault(recipient_id, set()).add(subscriber)
        try:
            yield subscriber
        finally:
            self._remove(subscriber)

    def _remove(self, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(subscriber.recipient_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[subscriber.recipient_id]

    @property
    def open_streams(self) -> int:
        return sum(len(subscribers) for subscribers in self._subscribers.values())

    def end_all(self) -> None:
        subscribers = [s for group in self._subscribers.values() for s in group]
        self._subscribers.clear()
        for subscriber in subscribers:
            subscriber.end()

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        self.end_all()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()


class StreamInterrupted(Exception):
    """The stream cannot go on for now; the client reconnects and resumes where it was."""


def _message(event: str, seq: int, data: dict[str, Any], *, retry: int | None = None) -> ServerSentEvent:
    return ServerSentEvent(orjson.dumps(data).decode(), event=event, id=str(seq), retry=retry)


def _live_change_message(change: NotificationChangedV1) -> ServerSentEvent:
    return _message(
        "notifications",
        change.seq,
        {
            "seq": change.seq,
            "items": [item.model_dump(mode="json") for item in change.items],
            "removed": [str(removed) for removed in change.removed],
            "unread": change.unread,
        },
    )


async def _changes_after(upstreams: Upstreams, *, token: str, after: int) -> ServerSentEvent:
    """What changed after `after`, as one message: `notifications`; `reset` when it cannot be replayed; `unread`
    when nothing changed. Raises StreamInterrupted when the notifications service does not answer."""
    try:
        reply = await upstreams.call(
            "notifications", "GET", "/notifications/changes", token=token, params=[("after", str(after))]
        )
    except Exception as exc:
        raise StreamInterrupted(f"could not fetch changes: {exc!r}") from exc
    if reply.status != 200:
        raise StreamInterrupted(f"GET /notifications/changes answered {reply.status}")
    changes = reply.json()
    seq, unread = int(changes["seq"]), int(changes["unread"])
    # A seq below the client's means its id is not one of ours (say, the data was restored from a backup):
    # its inbox cannot be trusted either.
    if changes.get("reset") or seq < after:
        return _message("reset", seq, {"seq": seq, "unread": unread})
    if seq == after:
        return _message("unread", seq, {"seq": seq, "unread": unread})
    return _message(
        "notifications",
        seq,
        {"seq": seq, "items": changes["items"], "removed": changes["removed"], "unread": unread},
    )


async def _current_unread(upstreams: Upstreams, *, token: str) -> ServerSentEvent:
    try:
        reply = await upstreams.call("notifications", "GET", "/notifications", token=token, params=[("limit", "1")])
    except Exception as exc:
        raise StreamInterrupted(f"could not fetch the inbox: {exc!r}") from exc
    if reply.status != 200:
        raise StreamInterrupted(f"GET /notifications answered {reply.status}")
    page = reply.json()
    seq = int(page.get("seq", 0))
    return _message("unread", seq, {"seq": seq, "unread": int(page["unread"])})


async def notification_events(
    live: LiveNotifications,
    upstreams: Upstreams,
    *,
    recipient_id: str,
    token: str,
    last_event_id: int | None,
    expires_at: float,
    shutdown: anyio.Event,
) -> AsyncGenerator[ServerSentEvent, None]:
    """The SSE messages of one stream: where the client stands, then every change after it, until the token
    expires, the client goes, or this replica ends the stream (the client then resumes with Last-Event-ID).
    `shutdown` is set when the server is stopping (sse-starlette watches the exit signal)."""
    with live.subscribe(recipient_id) as subscriber:
        presence = asyncio.create_task(_report_presence(upstreams, token=token), name="presence")
        # Ending the stream by itself lets it close the response properly; uvicorn waits for open responses
        # before it stops, and one that is cancelled instead is logged as an error.
        ending = asyncio.create_task(_end_on(shutdown, subscriber), name="end-on-shutdown")
        try:
            try:
                if last_event_id is None:
                    first = await _current_unread(upstreams, token=token)
                else:
                    first = await _changes_after(upstreams, token=token, after=last_event_id)
            except StreamInterrupted as exc:
                log.warning("stream: %s; the client will retry", exc)
                yield ServerSentEvent(comment="notifications unavailable, retrying", retry=RETRY_MILLISECONDS)
                return
            assert first.id is not None
            first.retry = RETRY_MILLISECONDS
            last_sent = int(first.id)
            yield first
            while True:
                try:
                    # An expired token ends the stream: the client has to come back with a fresh one.
                    change = await asyncio.wait_for(subscriber.next_change(), timeout=expires_at - time.time())
                except TimeoutError:
                    return
                if change is None:
                    return
                if change.seq <= last_sent:
                    continue  # already covered by what the stream sent
                if change.seq == last_sent + 1:
                    message = _live_change_message(change)
                else:
                    # A change did not reach this replica (or not yet): take them all from the source.
                    try:
                        message = await _changes_after(upstreams, token=token, after=last_sent)
                    except StreamInterrupted as exc:
                        log.warning("stream: %s; the client will resume", exc)
                        return
                    if message.event == "unread":
                        continue  # nothing the client lacks
                assert message.id is not None
                last_sent = int(message.id)
                yield message
        finally:
            presence.cancel()
            ending.cancel()


async def _end_on(shutdown: anyio.Event, subscriber: Subscriber) -> None:
    await shutdown.wait()
    subscriber.end()


async def _report_presence(upstreams: Upstreams, *, token: str) -> None:
    """Tells the notifications service the person is in the app, so it holds back emails meanwhile."""
    while True:
        try:
            reply = await upstreams.call(
                "notifications", "POST", "/notifications/presence", token=token, timeout_seconds=5
            )
            if reply.status >= 300:
                log.warning("stream: POST /notifications/presence answered %d", reply.status)
        except Exception as exc:
            # Presence only delays emails; a stream must never end over it.
            log.warning("stream: could not report presence: %r", exc)
        await asyncio.sleep(PRESENCE_SECONDS)
