"""The example subscriber of docs/events.md (examples/subscriber/) against the real broker: it declares and binds
its own queue, receives an event Tillit publishes once even when it is delivered twice, and dead-letters into its
own queue what it cannot read."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
import uuid
from datetime import UTC, datetime

import aio_pika
import pytest

from shared.broker import Topology
from shared.events import EventType, PersonRef, PostLikedV1, new_envelope
from tests.harness import AMQP_URL, ROOT, drop_namespace, eventually, random_id

SUBSCRIBER = ROOT / "examples" / "subscriber" / "subscriber.py"


async def read_line(stream: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(stream.readline(), timeout=30)).decode().strip()


async def test_the_example_subscriber_receives_events_once_and_dead_letters_the_unreadable() -> None:
    topology = Topology(f"test_{random_id('ex').replace('-', '')}")
    queue = f"{topology.namespace}.example-subscriber"
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await topology.declare_exchanges(channel)  # what Tillit's services declare when they start
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SUBSCRIBER),
        queue,
        "post.*.v1",
        env={**os.environ, "AMQP_URL": AMQP_URL, "TILLIT_EXCHANGE": topology.events_exchange},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        assert await read_line(process.stdout) == f"listening on {queue} for post.*.v1"

        data = PostLikedV1(
            post_id=uuid.uuid4(),
            post_author_id="author",
            actor=PersonRef(id="liker", name="Liker"),
            like_count=1,
            favourite_count=0,
            version=1,
            occurred_at=datetime.now(UTC),
        )
        liked = new_envelope(EventType.POST_LIKED, source="reactions", subject=str(data.post_id), data=data)
        unreadable_id = str(uuid.uuid4())
        for body, message_id in (
            (liked.model_dump_json().encode(), str(liked.id)),
            (liked.model_dump_json().encode(), str(liked.id)),  # at least once: the same event again
            (b"not json", unreadable_id),
        ):
            message = aio_pika.Message(body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await exchange.publish(message, routing_key=str(EventType.POST_LIKED))

        assert await read_line(process.stdout) == f"received post.liked.v1 {liked.id} subject {data.post_id}"
        assert unreadable_id in await read_line(process.stderr)

        async def dead_lettered() -> bool:
            declared = await channel.declare_queue(f"{queue}.dlq", passive=True)
            return declared.declaration_result.message_count == 1

        await eventually(dead_lettered, message="the unreadable message is in the example's own dead-letter queue")
        dead = await (await channel.get_queue(f"{queue}.dlq")).get(no_ack=True)
        assert dead.message_id == unreadable_id and dead.body == b"not json"

        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)
        assert process.returncode == 0
        # The duplicate was dropped: nothing more was printed.
        assert (await process.stdout.read()).decode().strip() == ""
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for name in (queue, f"{queue}.dlq"):
            await channel.queue_delete(name)
        await channel.exchange_delete(f"{queue}.dead-letter")
        await connection.close()
        await drop_namespace(topology.namespace, [topology.unrouted_exchange])


@pytest.mark.parametrize("body", [b"[]", b'{"specversion": "1.0", "id": "x", "type": "post.liked.v1", "data": {}}'])
def test_the_example_refuses_what_is_not_an_envelope(body: bytes) -> None:
    spec = importlib.util.spec_from_file_location("example_subscriber", SUBSCRIBER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(ValueError):
        module.parse(body)
