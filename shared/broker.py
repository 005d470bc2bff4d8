"""RabbitMQ topology, written once: every service declares the same exchanges and its own queues here.

<ns>.events         durable topic exchange; routing key = event type with version (post.liked.v1)
<ns>.unrouted       where an event nobody subscribes to goes (alternate exchange), so publishing
                    with mandatory=True only fails when the topology itself is broken
<ns>.dead-letter    direct exchange; routing key = the queue the message died in
<ns>.<consumer>     durable quorum queue per consumer and purpose, with a delivery limit
<ns>.<consumer>.dlq its dead letters
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustConnection


@dataclass(frozen=True)
class Topology:
    namespace: str
    delivery_limit: int = 5

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def unrouted_exchange(self) -> str:
        return f"{self.namespace}.unrouted"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dead-letter"

    def queue_name(self, consumer: str) -> str:
        return f"{self.namespace}.{consumer}"

    def dead_letter_queue_name(self, consumer: str) -> str:
        return f"{self.queue_name(consumer)}.dlq"

    async def declare_exchanges(self, channel: AbstractChannel) -> AbstractExchange:
        unrouted = await channel.declare_exchange(self.unrouted_exchange, aio_pika.ExchangeType.FANOUT, durable=True)
        unrouted_queue = await channel.declare_queue(
            self.unrouted_exchange,
            durable=True,
            # Kept for inspection, bounded so an unconsumed event type cannot fill the disk.
            arguments={"x-queue-type": "quorum", "x-max-length": 10_000, "x-overflow": "drop-head"},
        )
        await unrouted_queue.bind(unrouted)
        await channel.declare_exchange(self.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True)
        return await channel.declare_exchange(
            self.events_exchange,
            aio_pika.ExchangeType.TOPIC,
            durable=True,
            arguments={"alternate-exchange": self.unrouted_exchange},
        )

    async def declare_consumer_queue(
        self, channel: AbstractChannel, consumer: str, routing_keys: Iterable[str]
    ) -> AbstractQueue:
        events = await self.declare_exchanges(channel)
        dead_letters = await channel.get_exchange(self.dead_letter_exchange, ensure=False)
        name = self.queue_name(consumer)
        dlq = await channel.declare_queue(
            self.dead_letter_queue_name(consumer), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dlq.bind(dead_letters, routing_key=name)
        queue = await channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": self.dead_letter_exchange,
                "x-dead-letter-routing-key": name,
                "x-delivery-limit": self.delivery_limit,
            },
        )
        for key in routing_keys:
            await queue.bind(events, routing_key=key)
        return queue


async def connect(url: str, *, name: str) -> AbstractRobustConnection:
    """A connection that reconnects by itself and restores its channels, queues and consumers."""
    return await aio_pika.connect_robust(url, client_properties={"connection_name": name})


async def open_publishing_channel(connection: AbstractRobustConnection) -> AbstractChannel:
    # Confirms so a publish returns only once the broker has the message; on_return_raises so an
    # unroutable message is an error instead of silently vanishing.
    return await connection.channel(publisher_confirms=True, on_return_raises=True)
