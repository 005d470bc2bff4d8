"""Dead letters on the real broker: `python -m tillit dlq list | show | redrive | purge` (tillit/dlq.py).

A consumer runs in this process (shared/consumer.py, as every service runs it) against a scratch database and
broker namespace: it dead-letters a malformed event with its reason, and a valid one whose handler keeps failing;
once the handler is mended, a redrive of that one gets it applied. The CLI runs as a subprocess where what it
prints or refuses matters; the functions are called directly elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import asyncpg
import orjson
import pytest

from shared import broker
from shared import db as shared_db
from shared.broker import Topology
from shared.consumer import ConsumerRunner, EventConsumer
from shared.db import Connection
from shared.events import Envelope, Event, EventType, PersonUpdatedV1, new_envelope
from tests.harness import AMQP_URL, PG_ADMIN_URL, ROOT, drop_database, drop_namespace, eventually, random_id
from tillit.dlq import DeadLetters, dead_letter_queue, origin_queue

CONSUMER = "dlqtest.people"


@dataclass
class Scratch:
    namespace: str
    topology: Topology
    pool: asyncpg.Pool
    connection: aio_pika.abc.AbstractRobustConnection
    failing: set[str] = field(default_factory=set)  # person ids the handler refuses for now
    runners: list[ConsumerRunner] = field(default_factory=list)

    @property
    def queue(self) -> str:
        return self.topology.queue_name(CONSUMER)

    @property
    def dlq(self) -> str:
        return self.topology.dead_letter_queue_name(CONSUMER)

    def consumer(self) -> EventConsumer:
        async def handle(conn: Connection, events: Sequence[Event]) -> None:
            for event in events:
                assert isinstance(event.data, PersonUpdatedV1)
                if event.data.person_id in self.failing:
                    raise RuntimeError(f"cannot take {event.data.person_id} yet")
                await conn.execute("INSERT INTO applied VALUES ($1, $2)", event.id, event.data.person_id)

        return EventConsumer(name=CONSUMER, event_types=[EventType.PERSON_UPDATED], handle=handle)

    async def run_consumer(self) -> ConsumerRunner:
        runner = ConsumerRunner(
            self.consumer(),
            pool=self.pool,
            connection=self.connection,
            topology=self.topology,
            prefetch=20,
            batch_size=20,
            batch_wait_ms=5,
        )
        self.runners.append(runner)
        await runner.start()
        return runner

    async def declare_queues(self) -> None:
        """The consumer's queues without a consumer: messages wait there for the test to look at them."""
        channel = await self.connection.channel()
        await self.topology.declare_consumer_queue(channel, CONSUMER, [str(EventType.PERSON_UPDATED)])
        await channel.close()

    async def applied(self) -> list[str]:
        async with self.pool.acquire() as conn:
            return [r["person_id"] for r in await conn.fetch("SELECT person_id FROM applied ORDER BY person_id")]

    def dead_letters(self) -> contextlib.AbstractAsyncContextManager[DeadLetters]:
        return DeadLetters.connect(AMQP_URL, self.namespace)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TILLIT_NAMESPACE": self.namespace, "RABBITMQ_URL": AMQP_URL}
        return subprocess.run(
            [sys.executable, "-m", "tillit", "dlq", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,  # not a TTY: nothing may wait for an answer
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
async def scratch(tmp_path: Path) -> AsyncIterator[Scratch]:
    name = f"dlq{secrets.token_hex(4)}"
    namespace, database = f"test_{name}", f"tillit_test_{name}"
    dsn = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_applied.sql").write_text("CREATE TABLE applied (event_id uuid PRIMARY KEY, person_id text);\n")
    topology = Topology(namespace)
    pool: asyncpg.Pool | None = None
    connection: aio_pika.abc.AbstractRobustConnection | None = None
    state: Scratch | None = None
    try:
        await shared_db.migrate(dsn, schema="scratch", migrations=migrations)
        pool = await shared_db.create_pool(dsn, schema="scratch", size=4)
        connection = await broker.connect(AMQP_URL, name="tillit-test-dlq")
        state = Scratch(namespace, topology, pool, connection)
        yield state
    finally:
        for runner in state.runners if state else []:
            await runner.stop()
        if connection is not None:
            await connection.close()
        if pool is not None:
            await pool.close()
        queues = [topology.queue_name(CONSUMER), topology.dead_letter_queue_name(CONSUMER)]
        await drop_namespace(namespace, [*queues, topology.unrouted_exchange])
        await drop_database(database)


def person_updated(person_id: str) -> Envelope:
    data = PersonUpdatedV1(person_id=person_id, name=f"Name of {person_id}", version=1)
    return new_envelope(EventType.PERSON_UPDATED, source="people", subject=person_id, data=data)


async def publish(scratch: Scratch, *messages: tuple[bytes, str], to_queue: str | None = None) -> None:
    """Publish (body, message id) as the relay does: to the events exchange, or straight onto `to_queue`."""
    channel = await scratch.connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        if to_queue is None:
            exchange = await channel.get_exchange(scratch.topology.events_exchange, ensure=False)
            routing_key = str(EventType.PERSON_UPDATED)
        else:
            exchange, routing_key = channel.default_exchange, to_queue
        for body, message_id in messages:
            message = aio_pika.Message(
                body=body,
                message_id=message_id,
                type=str(EventType.PERSON_UPDATED),
                app_id="tests",
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(message, routing_key=routing_key, mandatory=True)
    finally:
        await channel.close()


def encoded(envelope: Envelope) -> tuple[bytes, str]:
    return envelope.model_dump_json().encode(), str(envelope.id)


async def wait_for_depth(dead_letters: DeadLetters, queue: str, depth: int) -> None:
    async def reached() -> bool:
        return await dead_letters.depth(queue) == depth

    await eventually(reached, timeout=20, interval=0.1, message=f"{queue} holds {depth} message(s)")


def test_queue_names_from_what_an_operator_types() -> None:
    for typed in ("reactions.posts", "tillit.reactions.posts", "tillit.reactions.posts.dlq"):
        assert dead_letter_queue(typed, namespace="tillit") == "tillit.reactions.posts.dlq"
    assert origin_queue("tillit.reactions.posts.dlq") == "tillit.reactions.posts"
    with pytest.raises(ValueError):
        origin_queue("tillit.reactions.posts")


async def test_dead_letters_listed_with_reasons_shown_and_a_mended_one_redriven_and_applied(scratch: Scratch) -> None:
    poison, healthy = person_updated(random_id("poison")), person_updated(random_id("healthy"))
    scratch.failing.add(poison.data["person_id"])
    malformed = (b'{"type": "person.updated.v1", "not": "an envelope"}', str(uuid.uuid4()))
    runner = await scratch.run_consumer()
    await publish(scratch, encoded(poison), malformed, encoded(healthy))

    async with scratch.dead_letters() as dead_letters:
        await wait_for_depth(dead_letters, scratch.dlq, 2)
        assert await scratch.applied() == [healthy.data["person_id"]]

        [report] = await dead_letters.list([scratch.dlq])
        assert report.exists and report.count == 2
        letters = {letter.message_id: letter for letter in report.letters}
        assert set(letters) == {str(poison.id), malformed[1]}
        assert (letters[malformed[1]].reason or "").startswith("malformed event"), letters[malformed[1]].reason
        assert letters[malformed[1]].deliveries == 1
        limit = scratch.topology.delivery_limit
        assert (
            letters[str(poison.id)].reason
            == f"handler failed {limit} times: RuntimeError: cannot take " + str(poison.data["person_id"]) + " yet"
        )
        assert letters[str(poison.id)].deliveries == limit
        assert letters[str(poison.id)].event_type == "person.updated.v1"
        # Listing takes nothing away.
        assert await dead_letters.depth(scratch.dlq) == 2

        shown = await dead_letters.show(scratch.dlq, str(poison.id))
        assert shown is not None and orjson.loads(shown.body) == orjson.loads(poison.model_dump_json())
        assert await dead_letters.show(scratch.dlq, str(uuid.uuid4())) is None

        # The handler is mended: the poison goes back to its queue, is applied, and the malformed one stays.
        scratch.failing.clear()
        result = await dead_letters.redrive(scratch.dlq, [str(poison.id)])
        assert result.target == scratch.queue and result.redriven == [str(poison.id)] and not result.missing
        expected = sorted([poison.data["person_id"], healthy.data["person_id"]])

        async def applied() -> bool:
            return await scratch.applied() == expected

        await eventually(applied, timeout=20, message="the redriven event is applied")
        assert await dead_letters.depth(scratch.dlq) == 1
        [report] = await dead_letters.list([scratch.dlq])
        assert [letter.message_id for letter in report.letters] == [malformed[1]]
        assert runner.stats.dead_lettered == 2

        # Redriving the malformed one parks it again, with its reason, and loses nothing.
        result = await dead_letters.redrive(scratch.dlq, None)
        assert result.redriven == [malformed[1]]
        await wait_for_depth(dead_letters, scratch.dlq, 1)
        [letter] = (await dead_letters.list([scratch.dlq]))[0].letters
        assert letter.message_id == malformed[1] and (letter.reason or "").startswith("malformed event")
        assert letter.headers["x-tillit-redrives"] == 1

    # The CLI shows the headers and the body as indented JSON.
    shown_cli = scratch.cli("show", CONSUMER, malformed[1])
    assert shown_cli.returncode == 0, shown_cli.stderr
    assert "x-tillit-reason: malformed event" in shown_cli.stdout
    assert '"not": "an envelope"' in shown_cli.stdout
    assert await scratch.applied() == expected


async def test_broker_dead_letters_show_their_first_death_and_the_cli_redrives_them(scratch: Scratch) -> None:
    await scratch.declare_queues()
    events = [person_updated(random_id("p")) for _ in range(2)]
    await publish(scratch, *(encoded(e) for e in events))
    channel = await scratch.connection.channel()
    queue = await channel.get_queue(scratch.queue, ensure=False)
    async with scratch.dead_letters() as dead_letters:
        await wait_for_depth(dead_letters, scratch.queue, 2)
        for _ in events:
            # Rejected without requeue: RabbitMQ dead-letters it itself, with x-death and no reason of ours.
            message = await queue.get(no_ack=False)
            await message.reject(requeue=False)
        await channel.close()
        await wait_for_depth(dead_letters, scratch.dlq, 2)

        [report] = await dead_letters.list([scratch.dlq], limit=1)
        assert report.count == 2 and len(report.letters) == 1
        death = report.letters[0].first_death
        assert death is not None
        assert (death.queue, death.reason, death.count) == (scratch.queue, "rejected", 1)
        assert death.time is not None

    listed = scratch.cli("list", "--queue", CONSUMER, "--limit", "5")
    assert listed.returncode == 0, listed.stderr
    assert f"{scratch.dlq}: 2 dead letter(s)" in listed.stdout
    assert f"first death: queue {scratch.queue}, reason rejected" in listed.stdout
    for event in events:
        assert str(event.id) in listed.stdout

    redriven = scratch.cli("redrive", CONSUMER, "--all")
    assert redriven.returncode == 0, redriven.stderr
    assert f"2 dead letter(s) sent back to {scratch.queue}" in redriven.stdout

    # Back in the consumer's queue, once each, without the marks of their death.
    channel = await scratch.connection.channel()
    queue = await channel.get_queue(scratch.queue, ensure=False)
    returned = []
    while (back := await queue.get(no_ack=False, fail=False)) is not None:
        returned.append(back)
    assert sorted(m.message_id or "" for m in returned) == sorted(str(e.id) for e in events)
    for back in returned:
        headers = back.headers or {}
        assert "x-death" not in headers and "x-first-death-queue" not in headers
        assert headers["x-tillit-redrives"] == 1
        assert back.type == "person.updated.v1"
        assert orjson.loads(back.body)["id"] == back.message_id
        await back.ack()
    await channel.close()


async def test_purge_refuses_without_confirmation_and_redrive_leaves_what_it_was_not_asked_for(
    scratch: Scratch,
) -> None:
    await scratch.declare_queues()
    events = [person_updated(random_id("p")) for _ in range(3)]
    await publish(scratch, *(encoded(e) for e in events), to_queue=scratch.dlq)
    async with scratch.dead_letters() as dead_letters:
        await wait_for_depth(dead_letters, scratch.dlq, 3)

        refused = scratch.cli("purge", CONSUMER)
        assert refused.returncode == 2
        assert "refusing" in refused.stderr and "--yes" in refused.stderr
        assert await dead_letters.depth(scratch.dlq) == 3

        # An id that is not there: nothing is redriven and nothing taken away.
        unknown = str(uuid.uuid4())
        result = await dead_letters.redrive(scratch.dlq, [unknown])
        assert result.redriven == [] and result.missing == [unknown]
        assert await dead_letters.depth(scratch.dlq) == 3
        assert await dead_letters.depth(scratch.queue) == 0

        assert await dead_letters.purge(scratch.dlq, [str(events[0].id)]) == 1
        assert await dead_letters.depth(scratch.dlq) == 2
        [report] = await dead_letters.list([scratch.dlq])
        assert sorted(letter.message_id or "" for letter in report.letters) == sorted(str(e.id) for e in events[1:])

        purged = scratch.cli("purge", CONSUMER, "--yes")
        assert purged.returncode == 0, purged.stderr
        assert f"purged 2 dead letter(s) from {scratch.dlq}" in purged.stdout
        assert await dead_letters.depth(scratch.dlq) == 0
        assert await dead_letters.depth(scratch.queue) == 0

        # A queue that does not exist is reported, not created.
        missing = dead_letter_queue("nobody.here", namespace=scratch.namespace)
        [report] = await dead_letters.list([missing])
        assert not report.exists
        assert await dead_letters.depth(missing) is None
