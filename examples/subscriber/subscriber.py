"""A system outside Tillit that follows its events: its own durable queue, bound to the event types it wants.

    AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ python subscriber.py acme.tillit-posts 'post.*.v1' 'comment.created.v1'

Standalone on purpose (aio-pika and the standard library only): a subscriber needs the contract, documented in
Tillit's AsyncAPI document and docs/events.md, not Tillit's code.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections import OrderedDict
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage


class SeenIds:
    """Events arrive at least once: remember the ids handled. A real system records the id in the same
    database transaction as the effect (a table with the id as primary key); this keeps the newest in memory."""

    def __init__(self, size: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, event_id: str) -> bool:
        """True if the id is new."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


def parse(body: bytes) -> dict[str, Any]:
    """The CloudEvents envelope, checked as far as this subscriber relies on it; raises ValueError."""
    event = json.loads(body)
    if not isinstance(event, dict) or event.get("specversion") != "1.0" or not isinstance(event.get("data"), dict):
        raise ValueError("not a Tillit event envelope")
    uuid.UUID(str(event.get("id")))
    if not str(event.get("type", "")).rsplit(".", 1)[-1].startswith("v"):
        raise ValueError(f"no version in the event type {event.get('type')!r}")
    return event


def handle(event: dict[str, Any]) -> None:
    """What this system does with an event; here, one line on stdout."""
    print(f"received {event['type']} {event['id']} subject {event['subject']}", flush=True)


async def run(url: str, exchange_name: str, queue_name: str, bindings: list[str], stop: asyncio.Event) -> None:
    connection = await aio_pika.connect_robust(url, client_properties={"connection_name": queue_name})
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=50)
        # Our own dead letters: what we cannot parse or keep failing on lands in <queue>.dlq, never lost.
        dead_letters = await channel.declare_exchange(f"{queue_name}.dead-letter", aio_pika.ExchangeType.DIRECT)
        dlq = await channel.declare_queue(f"{queue_name}.dlq", durable=True, arguments={"x-queue-type": "quorum"})
        await dlq.bind(dead_letters, routing_key=queue_name)
        queue = await channel.declare_queue(
            queue_name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": dead_letters.name,
                "x-dead-letter-routing-key": queue_name,
                "x-delivery-limit": 5,
            },
        )
        exchange = await channel.get_exchange(exchange_name, ensure=True)  # Tillit declares it; we only bind
        for pattern in bindings:
            await queue.bind(exchange, routing_key=pattern)
        seen = SeenIds()

        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                event = parse(message.body)
            except ValueError as exc:
                print(f"dead-lettering {message.message_id}: {exc}", file=sys.stderr, flush=True)
                await message.reject(requeue=False)
                return
            # Acked only after handling; an exception requeues it, and after 5 deliveries it is dead-lettered.
            async with message.process(requeue=True):
                if seen.add(str(event["id"])):
                    handle(event)

        tag = await queue.consume(on_message)
        print(f"listening on {queue_name} for {', '.join(bindings)}", flush=True)
        await stop.wait()
        await queue.cancel(tag)


async def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(f"usage: {sys.argv[0]} QUEUE BINDING [BINDING ...]   (bindings like post.*.v1 or #)")
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    exchange = os.environ.get("TILLIT_EXCHANGE", "tillit.events")
    await run(url, exchange, sys.argv[1], sys.argv[2:], stop)


if __name__ == "__main__":
    asyncio.run(main())
