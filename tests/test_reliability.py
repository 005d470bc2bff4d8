"""Reliability of the event pipeline against the real RabbitMQ and PostgreSQL: duplicates, shuffled and
concurrent reactions, malformed events and a handler that always fails. Nothing may be lost, nothing
counted twice. The fault-injection tests (database and broker cut, kill -9) are in test_reliability_faults.py;
the helpers here serve both.

How "applied once" is measured: every consumer writes an inbox row (consumer, event id) in the transaction
of its effect, so the number of new inbox rows of a consumer is the number of events it applied. Tests
read those counts straight from PostgreSQL (exact, unlike the /stats endpoint, which is updated a moment
after the commit), and use /stats only for the duplicates a consumer dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage

from shared import broker
from shared import db as shared_db
from shared.broker import Topology
from shared.consumer import ConsumerRunner, EventConsumer
from shared.db import Connection
from shared.events import (
    Envelope,
    Event,
    EventType,
    EveryoneAudience,
    PersonRef,
    PersonUpdatedV1,
    PostCreatedV1,
    PostLikedV1,
    PostUnlikedV1,
    new_envelope,
)
from shared.settings import Settings
from tests.harness import AMQP_URL, PG_ADMIN_URL, System, drop_database, drop_namespace, eventually, random_id
from tillit.catalog import all_consumers

# Helpers -------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def db(system: System, schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to one service's schema (never through a test's proxy)."""
    conn = await system.db(schema)
    try:
        yield conn
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def amqp_channel() -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A channel straight to the shared broker (never through a test's proxy), with publisher confirms."""
    connection = await aio_pika.connect(AMQP_URL)
    try:
        yield await connection.channel(publisher_confirms=True)
    finally:
        await connection.close()


async def publish_raw(namespace: str, messages: Iterable[tuple[str, bytes, str]]) -> None:
    """Publish (routing key, body, message id) in order, persistent, to `<ns>.events` as a relay would."""
    async with amqp_channel() as channel:
        exchange = await channel.get_exchange(f"{namespace}.events", ensure=False)
        for routing_key, body, message_id in messages:
            message = aio_pika.Message(
                body=body,
                message_id=message_id,
                type=routing_key,
                app_id="tests",
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(message, routing_key=routing_key)


async def publish(namespace: str, envelopes: Sequence[Envelope]) -> None:
    """Publish envelopes in the given order; the same envelope twice is the same event delivered twice."""
    await publish_raw(namespace, [(str(e.type), e.model_dump_json().encode(), str(e.id)) for e in envelopes])


def reaction_envelope(
    *, post_id: uuid.UUID, author_id: str, actor_id: str, liked: bool, like_count: int, version: int
) -> Envelope:
    """A post.liked or post.unliked event as the reactions service stamps it."""
    model, event_type = (PostLikedV1, EventType.POST_LIKED) if liked else (PostUnlikedV1, EventType.POST_UNLIKED)
    data = model(
        post_id=post_id,
        post_author_id=author_id,
        actor=PersonRef(id=actor_id, name=f"Name of {actor_id}"),
        like_count=like_count,
        favourite_count=0,
        version=version,
        occurred_at=datetime.now(UTC),
    )
    return new_envelope(event_type, source="reactions", subject=str(post_id), data=data)


def post_created_envelope(*, post_id: uuid.UUID, author_id: str, body: str = "Et innlegg") -> Envelope:
    data = PostCreatedV1.model_construct(
        post_id=post_id,
        author=PersonRef(id=author_id, name=f"Name of {author_id}"),
        kind="post",
        body=body,
        audience=EveryoneAudience(type="everyone"),
        created_at=datetime.now(UTC),
        version=1,
    )
    # model_construct skips validation, so a test can build a body the contract refuses.
    return Envelope(
        type=EventType.POST_CREATED, source="posts", subject=str(post_id), data=data.model_dump(mode="json")
    )


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    headers: dict[str, Any]
    body: bytes


async def take_dead_letters(namespace: str, consumer: str, message_ids: set[str]) -> list[DeadLetter]:
    """Remove and return the dead letters with these message ids from `<ns>.<consumer>.dlq`; leave the rest."""
    taken: list[DeadLetter] = []
    async with amqp_channel() as channel:
        queue = await channel.get_queue(f"{namespace}.{consumer}.dlq", ensure=False)
        held: list[AbstractIncomingMessage] = []
        # Unacked messages are not handed out again on this channel, so the loop ends at the queue's end.
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            held.append(message)
        for message in held:
            if message.message_id in message_ids:
                taken.append(DeadLetter(message.message_id, dict(message.headers), message.body))
                await message.ack()
            else:
                await message.reject(requeue=True)
    return taken


async def wait_for_dead_letters(
    namespace: str, consumer: str, message_ids: set[str], *, timeout: float = 15
) -> dict[str, DeadLetter]:
    found: dict[str, DeadLetter] = {}

    async def all_there() -> bool:
        for letter in await take_dead_letters(namespace, consumer, message_ids - set(found)):
            assert letter.message_id is not None
            assert letter.message_id not in found, f"{letter.message_id} dead-lettered twice in {consumer}"
            found[letter.message_id] = letter
        return set(found) == message_ids

    await eventually(all_there, timeout=timeout, interval=0.1, message=f"dead letters in {consumer}.dlq")
    return found


async def queue_depths(names: Iterable[str]) -> dict[str, int]:
    """Messages ready in each queue (a passive declare does not count unacked ones)."""
    depths = {}
    async with amqp_channel() as channel:
        for name in names:
            declared = await channel.declare_queue(name, passive=True)
            depths[name] = declared.declaration_result.message_count or 0
    return depths


async def assert_no_dead_letters(system: System) -> None:
    depths = await queue_depths(name for name in system.queue_names() if name.endswith(".dlq"))
    assert not any(depths.values()), f"dead letters: {depths}"


async def inbox_count(system: System, schema: str, consumer: str) -> int:
    """How many events the consumer has applied: one inbox row each, written with the effect."""
    async with db(system, schema) as conn:
        return int(await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", consumer))


async def wait_for_inbox(system: System, schema: str, consumer: str, count: int, *, timeout: float = 30) -> None:
    async def reached() -> int | None:
        seen = await inbox_count(system, schema, consumer)
        assert seen <= count, f"{consumer} applied {seen} events, more than the {count} sent"
        return seen if seen == count else None

    await eventually(reached, timeout=timeout, interval=0.1, message=f"{consumer} applies {count} events")


async def consumer_stats(system: System, service: str, consumer: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        reply = await client.get(f"http://127.0.0.1:{system.ports[service]}/stats")
    reply.raise_for_status()
    return reply.json()["consumers"][consumer]


async def create_post(system: System, token: str, body: str = "Et halvferdig forslag") -> dict[str, Any]:
    async with system.client(token) as client:
        reply = await client.post("/api/posts", json={"body": body, "kind": "idea", "audience": {"type": "everyone"}})
    assert reply.status_code == 201, reply.text
    return reply.json()


async def wait_until_post_known(system: System, post_id: uuid.UUID, *, timeout: float = 30) -> None:
    """The reactions and notifications services keep replicas of posts from post.created events."""
    async with db(system, "reactions") as reactions, db(system, "notifications") as notifications:

        async def known() -> bool:
            return bool(
                await reactions.fetchval("SELECT count(*) FROM posts WHERE id = $1", post_id)
                and await notifications.fetchval("SELECT count(*) FROM posts WHERE id = $1", post_id)
            )

        await eventually(known, timeout=timeout, interval=0.1, message=f"post {post_id} reaches its replicas")


@dataclass(frozen=True)
class LikeProjections:
    """Every place that knows who liked one post, read straight from each service's tables."""

    likers: frozenset[str]  # reactions.likes: the source of truth
    counter: tuple[int, int] | None  # reactions.post_counters (like_count, version)
    counted: tuple[int, int] | None  # posts.post_counts (like_count, version)
    states: dict[str, tuple[bool, int]]  # notifications.reaction_states of likes: actor -> (active, version)
    groups: dict[uuid.UUID, list[str]]  # notifications: like group -> its actors (a list, so a duplicate shows)

    @property
    def active_likers(self) -> frozenset[str]:
        return frozenset(actor for actor, (active, _) in self.states.items() if active)

    @property
    def group_actors(self) -> list[str]:
        return sorted(actor for actors in self.groups.values() for actor in actors)


async def like_projections(system: System, post_id: uuid.UUID) -> LikeProjections:
    async with db(system, "reactions") as reactions, db(system, "posts") as posts, db(system, "notifications") as notes:
        likers = await reactions.fetch("SELECT user_id FROM likes WHERE post_id = $1", post_id)
        counter = await reactions.fetchrow("SELECT like_count, version FROM post_counters WHERE post_id = $1", post_id)
        counted = await posts.fetchrow("SELECT like_count, version FROM post_counts WHERE post_id = $1", post_id)
        states = await notes.fetch(
            "SELECT actor_id, active, version FROM reaction_states WHERE post_id = $1 AND kind = 'post.liked'", post_id
        )
        rows = await notes.fetch(
            """SELECT n.id, a.actor_id FROM notifications n LEFT JOIN notification_actors a ON a.notification_id = n.id
               WHERE n.post_id = $1 AND n.kind = 'post.liked'""",
            post_id,
        )
    groups: dict[uuid.UUID, list[str]] = {}
    for row in rows:
        groups.setdefault(row["id"], [])
        if row["actor_id"] is not None:
            groups[row["id"]].append(row["actor_id"])
    return LikeProjections(
        likers=frozenset(r["user_id"] for r in likers),
        counter=(counter["like_count"], counter["version"]) if counter else None,
        counted=(counted["like_count"], counted["version"]) if counted else None,
        states={r["actor_id"]: (r["active"], r["version"]) for r in states},
        groups=groups,
    )


def assert_projections_agree(seen: LikeProjections, *, author_id: str, expected: set[str]) -> None:
    """The reactions service holds exactly `expected`, counts each once, and posts and notifications agree."""
    assert seen.likers == expected, f"likers {sorted(seen.likers)} != expected {sorted(expected)}"
    assert seen.counter is not None and seen.counter[0] == len(expected), f"counter {seen.counter} for {len(expected)}"
    assert seen.counted == seen.counter, f"posts projects {seen.counted}, reactions counts {seen.counter}"
    notified = expected - {author_id}
    assert seen.active_likers == notified, f"reaction states {seen.states} != likers {sorted(notified)}"
    assert seen.group_actors == sorted(notified), f"groups {seen.groups} != likers {sorted(notified)}"
    assert len(seen.groups) == (1 if notified else 0), f"one open group per post, got {seen.groups}"


async def wait_for_likes_settled(
    system: System, post_id: uuid.UUID, *, author_id: str, expected: set[str], timeout: float = 30
) -> LikeProjections:
    """Wait until the reactions service holds `expected` and both projections have applied its newest version,
    then check everything agrees. Used where the number of events is not known (faults, HTTP load)."""

    async def settled() -> LikeProjections | None:
        seen = await like_projections(system, post_id)
        notified = expected - {author_id}
        done = (
            seen.likers == expected
            and seen.counter is not None
            and seen.counted == seen.counter
            and seen.active_likers == notified
            and seen.group_actors == sorted(notified)
        )
        return seen if done else None

    try:
        seen = await eventually(settled, timeout=timeout, interval=0.2)
    except AssertionError:
        seen = await like_projections(system, post_id)
        assert_projections_agree(seen, author_id=author_id, expected=expected)  # raises, saying what differs
        raise
    assert_projections_agree(seen, author_id=author_id, expected=expected)
    return seen


# The system for the tests in this module -------------------------------------------------------------------


@pytest.fixture(scope="module")
async def quiet_system() -> AsyncIterator[System]:
    """A system of this module's own: its consumers see no other test's events, so counts are exact."""
    running = System()
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


REACTION_CONSUMERS = (("posts", "posts.reaction-counts"), ("notifications", "notifications.reactions"))
POST_CONSUMERS = (("reactions", "reactions.posts"), ("notifications", "notifications.posts"))


# 1. The same event twice -------------------------------------------------------------------------------------


async def test_the_same_event_delivered_twice_is_applied_once(quiet_system: System) -> None:
    system = quiet_system
    author = random_id("author")
    post = await create_post(system, system.token(author))
    post_id = uuid.UUID(post["id"])
    await wait_until_post_known(system, post_id)

    liker = random_id("liker")
    like = reaction_envelope(post_id=post_id, author_id=author, actor_id=liker, liked=True, like_count=1, version=1)
    other_post_id = uuid.uuid4()
    created = post_created_envelope(post_id=other_post_id, author_id=author)
    consumers = REACTION_CONSUMERS + POST_CONSUMERS
    applied_before = {c: await inbox_count(system, schema, c) for schema, c in consumers}
    duplicates_before = {c: (await consumer_stats(system, service, c))["duplicates"] for service, c in consumers}

    # Twice back to back (likely one batch), and once more after it was applied (another batch).
    await publish(system.namespace, [like, like, created])
    for schema, consumer in REACTION_CONSUMERS:
        await wait_for_inbox(system, schema, consumer, applied_before[consumer] + 1)
    for schema, consumer in POST_CONSUMERS:
        await wait_for_inbox(system, schema, consumer, applied_before[consumer] + 1)
    await publish(system.namespace, [like, created])

    expected_duplicates = {"posts.reaction-counts": 2, "notifications.reactions": 2}
    expected_duplicates |= {"reactions.posts": 1, "notifications.posts": 1}
    for service, consumer in consumers:

        async def dropped(service: str = service, consumer: str = consumer) -> bool:
            stats = await consumer_stats(system, service, consumer)
            return bool(stats["duplicates"] - duplicates_before[consumer] == expected_duplicates[consumer])

        await eventually(dropped, message=f"{consumer} drops the duplicates")
        # Exactly one new inbox row per consumer: the repeated deliveries applied nothing.
        assert await inbox_count(system, service, consumer) == applied_before[consumer] + 1

    for schema, consumer, event_id in (
        ("posts", "posts.reaction-counts", like.id),
        ("notifications", "notifications.reactions", like.id),
        ("reactions", "reactions.posts", created.id),
        ("notifications", "notifications.posts", created.id),
    ):
        async with db(system, schema) as conn:
            rows = await conn.fetchval(
                "SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = $2", consumer, event_id
            )
        assert rows == 1, f"{consumer} has {rows} inbox rows for {event_id}"

    seen = await like_projections(system, post_id)
    assert seen.counted == (1, 1)
    assert seen.states == {liker: (True, 1)}
    assert seen.group_actors == [liker] and len(seen.groups) == 1
    for schema in ("reactions", "notifications"):
        async with db(system, schema) as conn:
            assert await conn.fetchval("SELECT count(*) FROM posts WHERE id = $1", other_post_id) == 1
    await assert_no_dead_letters(system)


# 2. Likes and unlikes: concurrent, shuffled, duplicated ------------------------------------------------------


async def test_concurrent_likes_and_unlikes_through_the_gateway_count_exactly(quiet_system: System) -> None:
    system = quiet_system
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    author = random_id("author")
    post = await create_post(system, system.token(author))
    post_id = uuid.UUID(post["id"])
    await wait_until_post_known(system, post_id)

    # The author is among the users: their like counts, but nobody is notified of their own like.
    users = [author] + [random_id("user") for _ in range(23)]
    # Each user's actions run in order (so their last action is known); users run concurrently, and an
    # action is sometimes sent twice at once, as a double click or a client retry would.
    scripts = {user: [rng.choice((True, False)) for _ in range(rng.randint(3, 7))] for user in users}
    doubled = {user: [rng.random() < 0.3 for _ in script] for user, script in scripts.items()}
    applied_before = {c: await inbox_count(system, schema, c) for schema, c in REACTION_CONSUMERS}
    tokens = {user: system.token(user, name=f"Name of {user}") for user in users}
    path = f"/api/posts/{post_id}/like"

    async def act(client: httpx.AsyncClient, user: str) -> None:
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        for like, twice in zip(scripts[user], doubled[user], strict=True):
            method = "PUT" if like else "DELETE"
            replies = await asyncio.gather(
                *(client.request(method, path, headers=headers) for _ in range(2 if twice else 1))
            )
            for reply in replies:
                assert reply.status_code == 200, f"seed {seed}: {method} by {user}: {reply.text}"
                state = reply.json()
                assert state["liked"] is like and 0 <= state["like_count"] <= len(users), f"seed {seed}: {state}"

    async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as client:
        await asyncio.gather(*(act(client, user) for user in users))

    expected = {user for user, script in scripts.items() if script[-1]}
    async with db(system, "reactions") as conn:
        # Every change bumps the post's version by one, and publishes one event.
        events = int(await conn.fetchval("SELECT version FROM post_counters WHERE post_id = $1", post_id))
    for schema, consumer in REACTION_CONSUMERS:
        await wait_for_inbox(system, schema, consumer, applied_before[consumer] + events)
    seen = await like_projections(system, post_id)
    assert_projections_agree(seen, author_id=author, expected=expected)
    assert seen.counter is not None and seen.counter[1] == events
    await assert_no_dead_letters(system)


async def test_shuffled_duplicated_reaction_events_converge_on_the_newest_version(quiet_system: System) -> None:
    system = quiet_system
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    author = random_id("author")
    post = await create_post(system, system.token(author))
    post_id = uuid.UUID(post["id"])
    await wait_until_post_known(system, post_id)

    # A history as the reactions service would write it: each step toggles one actor's like, and stamps the
    # post's next version and its resulting count.
    actors = [random_id("actor") for _ in range(6)]
    liked: set[str] = set()
    history: list[Envelope] = []
    last_version: dict[str, tuple[bool, int]] = {}
    for version in range(1, 61):
        actor = rng.choice(actors)
        now_liked = actor not in liked
        (liked.add if now_liked else liked.discard)(actor)
        history.append(
            reaction_envelope(
                post_id=post_id,
                author_id=author,
                actor_id=actor,
                liked=now_liked,
                like_count=len(liked),
                version=version,
            )
        )
        last_version[actor] = (now_liked, version)
    # Delivered shuffled, a third of them twice, and the newest first: applying in arrival order would end
    # on some older state.
    copies = history + rng.sample(history, len(history) // 3)
    deliveries = shuffled(copies, rng)
    deliveries.remove(history[-1])
    deliveries.insert(0, history[-1])

    applied_before = {c: await inbox_count(system, schema, c) for schema, c in REACTION_CONSUMERS}
    duplicates_before = {
        c: (await consumer_stats(system, service, c))["duplicates"] for service, c in REACTION_CONSUMERS
    }
    await publish(system.namespace, deliveries)
    for schema, consumer in REACTION_CONSUMERS:
        await wait_for_inbox(system, schema, consumer, applied_before[consumer] + len(history))

        async def dropped(service: str = schema, consumer: str = consumer) -> bool:
            duplicates = (await consumer_stats(system, service, consumer))["duplicates"] - duplicates_before[consumer]
            return bool(duplicates == len(copies) - len(history))

        await eventually(dropped, message=f"seed {seed}: {consumer} drops every duplicate")

    seen = await like_projections(system, post_id)
    assert seen.counted == (len(liked), len(history)), f"seed {seed}: posts kept {seen.counted}"
    assert seen.states == last_version, f"seed {seed}: reaction states follow each actor's newest event"
    assert seen.group_actors == sorted(liked), f"seed {seed}: group {seen.groups} != {sorted(liked)}"
    assert len(seen.groups) == (1 if liked else 0)
    await assert_no_dead_letters(system)


def shuffled(items: Sequence[Any], rng: random.Random) -> list[Any]:
    copy = list(items)
    rng.shuffle(copy)
    return copy


# 3. Malformed events -------------------------------------------------------------------------------------------


async def test_malformed_events_are_dead_lettered_at_once_and_their_neighbours_applied(quiet_system: System) -> None:
    system = quiet_system
    author = random_id("author")
    post = await create_post(system, system.token(author))
    post_id = uuid.UUID(post["id"])
    await wait_until_post_known(system, post_id)
    first, second = random_id("first"), random_id("second")
    good = [
        reaction_envelope(post_id=post_id, author_id=author, actor_id=first, liked=True, like_count=1, version=1),
        reaction_envelope(post_id=post_id, author_id=author, actor_id=second, liked=True, like_count=2, version=2),
    ]
    # Valid JSON that breaks the contract: a negative count.
    negative = reaction_envelope(post_id=post_id, author_id=author, actor_id=first, liked=True, like_count=0, version=3)
    broken_data = orjson.loads(negative.model_dump_json())
    broken_data["data"]["like_count"] = -1
    # A post.created whose body is longer than the contract allows.
    new_post_id = uuid.uuid4()
    too_long = post_created_envelope(post_id=uuid.uuid4(), author_id=author, body="x" * 10_001)
    fine_post = post_created_envelope(post_id=new_post_id, author_id=author)
    # A valid post.created sent with the routing key of post.liked: its producer's key and type disagree.
    wrong_type = post_created_envelope(post_id=uuid.uuid4(), author_id=author)
    bad_json, bad_contract, not_an_envelope = str(uuid.uuid4()), str(negative.id), str(uuid.uuid4())
    liked_key, created_key = str(EventType.POST_LIKED), str(EventType.POST_CREATED)

    def encoded(envelope: Envelope) -> tuple[str, bytes, str]:
        return str(envelope.type), envelope.model_dump_json().encode(), str(envelope.id)

    bad_on_liked_key = {bad_json, bad_contract, not_an_envelope}
    # Every consumer bound to a key gets the bad messages sent with it, so each must park them.
    expected: dict[str, tuple[str, set[str]]] = {}
    for service, consumers in all_consumers().items():
        for consumer in consumers:
            ids = set()
            if EventType.POST_LIKED in consumer.event_types:
                ids |= bad_on_liked_key
                if EventType.POST_CREATED not in consumer.event_types:
                    ids.add(str(wrong_type.id))  # a type it does not take: malformed for this consumer
            if EventType.POST_CREATED in consumer.event_types:
                ids.add(str(too_long.id))
            if ids:
                expected[consumer.name] = (service, ids)
    assert {"posts.reaction-counts", "notifications.reactions", "reactions.posts", "notifications.posts"} <= set(
        expected
    )
    dead_before = {
        c: (await consumer_stats(system, service, c))["dead_lettered"] for c, (service, _) in expected.items()
    }
    sent_with = {message_id: liked_key for message_id in [*bad_on_liked_key, str(wrong_type.id)]}
    sent_with[str(too_long.id)] = created_key

    await publish_raw(
        system.namespace,
        [
            encoded(good[0]),
            (liked_key, b'{"specversion": "1.0", "id": ', bad_json),
            (liked_key, orjson.dumps(broken_data), bad_contract),
            (liked_key, b"[1, 2, 3]", not_an_envelope),
            (liked_key, wrong_type.model_dump_json().encode(), str(wrong_type.id)),
            encoded(good[1]),
            encoded(too_long),
            encoded(fine_post),
        ],
    )

    for consumer_name, (service, ids) in expected.items():
        letters = await wait_for_dead_letters(system.namespace, consumer_name, ids)
        for message_id, letter in letters.items():
            reason = letter.headers.get("x-tillit-reason", "")
            # "malformed event" is the reason given on the first delivery (how many deliveries that takes is
            # counted in-process below: a dead-letter queue rewrites x-delivery-count as its own).
            assert reason.startswith("malformed event"), f"{consumer_name} {message_id}: reason {reason!r}"
            assert letter.headers.get("x-tillit-consumer") == consumer_name
            assert letter.headers.get("x-tillit-routing-key") == sent_with[message_id]
        # The reason names what is wrong, so an operator can tell a bug from a bad producer.
        if bad_contract in letters:
            assert "like_count" in letters[bad_contract].headers["x-tillit-reason"]
            assert "json" in letters[bad_json].headers["x-tillit-reason"].lower()
        if str(wrong_type.id) in letters:
            assert "post.created.v1" in letters[str(wrong_type.id)].headers["x-tillit-reason"]
        if str(too_long.id) in letters:
            assert "body" in letters[str(too_long.id)].headers["x-tillit-reason"]
        stats = await consumer_stats(system, service, consumer_name)
        assert stats["dead_lettered"] - dead_before[consumer_name] == len(ids), f"{consumer}: each dead-lettered once"

    # The valid neighbours were applied.
    seen = await eventually(
        lambda: _settled_projection(system, post_id, (2, 2)), message="neighbours of the malformed events applied"
    )
    assert seen.group_actors == sorted([first, second])
    await wait_until_post_known(system, new_post_id)
    await assert_no_dead_letters(system)


async def _settled_projection(system: System, post_id: uuid.UUID, counted: tuple[int, int]) -> LikeProjections | None:
    seen = await like_projections(system, post_id)
    return seen if seen.counted == counted and len(seen.group_actors) == counted[0] else None


# 3b and 4. One consumer in this process, against the real broker and a scratch database ------------------------


class CountingRunner(ConsumerRunner):
    """Counts every delivery the broker makes, by message id, before the runner sees it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deliveries: Counter[str] = Counter()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.deliveries[message.message_id or ""] += 1
        await super()._on_message(message)


@dataclass
class Scratch:
    """A fresh database (schema `scratch`, table `applied`) and broker namespace for consumers run in-process."""

    namespace: str
    topology: Topology
    pool: asyncpg.Pool
    connection: aio_pika.abc.AbstractRobustConnection
    runners: list[CountingRunner]

    async def run(self, consumer: EventConsumer) -> CountingRunner:
        runner = CountingRunner(
            consumer,
            pool=self.pool,
            connection=self.connection,
            topology=self.topology,
            prefetch=20,
            batch_size=20,
            batch_wait_ms=20,
        )
        self.runners.append(runner)
        await runner.start()
        return runner

    async def applied(self) -> list[str]:
        async with self.pool.acquire() as conn:
            return [r["person_id"] for r in await conn.fetch("SELECT person_id FROM applied ORDER BY person_id")]


@pytest.fixture
async def scratch(tmp_path: Path) -> AsyncIterator[Scratch]:
    name = f"rel{secrets.token_hex(4)}"
    namespace, database = f"test_{name}", f"tillit_test_{name}"
    dsn = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_applied.sql").write_text(
        "CREATE TABLE applied (event_id uuid PRIMARY KEY, person_id text NOT NULL);\n"
    )
    topology = Topology(namespace, delivery_limit=Settings().delivery_limit)
    runners: list[CountingRunner] = []
    pool: asyncpg.Pool | None = None
    connection: aio_pika.abc.AbstractRobustConnection | None = None
    try:
        await shared_db.migrate(dsn, schema="scratch", migrations=migrations)
        pool = await shared_db.create_pool(dsn, schema="scratch", size=4)
        connection = await broker.connect(AMQP_URL, name="tillit-test-reliability")
        yield Scratch(namespace, topology, pool, connection, runners)
    finally:
        for runner in runners:
            await runner.stop()
        if connection is not None:
            await connection.close()
        if pool is not None:
            await pool.close()
        queues = [q for r in runners for q in (r.queue_name, topology.dead_letter_queue_name(r.consumer.name))]
        await drop_namespace(namespace, [*queues, topology.unrouted_exchange])
        await drop_database(database)


def person_updated(person_id: str) -> Envelope:
    data = PersonUpdatedV1(person_id=person_id, name=f"Name of {person_id}", version=1)
    return new_envelope(EventType.PERSON_UPDATED, source="people", subject=person_id, data=data)


def recording_consumer(*, fails_for: str | None = None) -> EventConsumer:
    """Records each person.updated in `applied`; raises for `fails_for`, every time."""

    async def handle(conn: Connection, events: Sequence[Event]) -> None:
        for event in events:
            assert isinstance(event.data, PersonUpdatedV1)
            if event.data.person_id == fails_for:
                raise RuntimeError("this handler cannot take that person")
            await conn.execute("INSERT INTO applied VALUES ($1, $2)", event.id, event.data.person_id)

    return EventConsumer(name="scratch.people", event_types=[EventType.PERSON_UPDATED], handle=handle)


async def test_malformed_events_are_dead_lettered_on_their_first_delivery(scratch: Scratch) -> None:
    runner = await scratch.run(recording_consumer())
    key = str(EventType.PERSON_UPDATED)
    healthy = [person_updated(f"p{i}-{random_id()}") for i in range(3)]
    invalid_contract = orjson.loads(person_updated("x").model_dump_json())
    invalid_contract["data"]["version"] = 0  # versions start at 1
    wrong_type = post_created_envelope(post_id=uuid.uuid4(), author_id="someone")  # valid, but not person.updated
    bad = {
        "invalid json": (key, b"\xff{not json", str(uuid.uuid4())),
        "contract": (key, orjson.dumps(invalid_contract), str(uuid.uuid4())),
        "wrong type": (key, wrong_type.model_dump_json().encode(), str(wrong_type.id)),
    }

    def encoded(envelope: Envelope) -> tuple[str, bytes, str]:
        return key, envelope.model_dump_json().encode(), str(envelope.id)

    await publish_raw(
        scratch.namespace,
        [
            encoded(healthy[0]),
            bad["invalid json"],
            bad["contract"],
            encoded(healthy[1]),
            bad["wrong type"],
            encoded(healthy[2]),
        ],
    )
    letters = await wait_for_dead_letters(scratch.namespace, runner.consumer.name, {m[2] for m in bad.values()})
    expected = sorted(e.data["person_id"] for e in healthy)
    await eventually(lambda: _equal(scratch.applied(), expected), message="the healthy neighbours are applied")

    for what, (_, _, message_id) in bad.items():
        reason = letters[message_id].headers["x-tillit-reason"]
        assert reason.startswith("malformed event"), f"{what}: {reason}"
        assert letters[message_id].headers["x-tillit-consumer"] == runner.consumer.name
        assert runner.deliveries[message_id] == 1, f"{what} was delivered {runner.deliveries[message_id]} times"
    assert "version" in letters[bad["contract"][2]].headers["x-tillit-reason"]
    assert "post.created.v1" in letters[bad["wrong type"][2]].headers["x-tillit-reason"]
    assert all(runner.deliveries[str(e.id)] == 1 for e in healthy)
    assert runner.stats.dead_lettered == len(bad)
    await asyncio.sleep(0.5)  # nothing comes back
    assert sum(runner.deliveries.values()) == len(bad) + len(healthy)


async def test_a_handler_that_always_fails_is_dead_lettered_after_the_delivery_limit(scratch: Scratch) -> None:
    poison_person = random_id("poison")
    runner = await scratch.run(recording_consumer(fails_for=poison_person))
    poison = person_updated(poison_person)
    before, after, later = (person_updated(f"{i}-{random_id()}") for i in range(3))

    # The poison shares a batch with healthy events: they must not pay for it.
    await publish(scratch.namespace, [before, poison, after])
    [letter] = (await wait_for_dead_letters(scratch.namespace, runner.consumer.name, {str(poison.id)})).values()
    # The queue still flows after the poison is parked.
    await publish(scratch.namespace, [later])
    expected = sorted(e.data["person_id"] for e in (before, after, later))
    await eventually(lambda: _equal(scratch.applied(), expected), message="healthy events applied")

    limit = scratch.topology.delivery_limit
    assert limit == Settings().delivery_limit == 5
    reason = letter.headers["x-tillit-reason"]
    assert reason == f"handler failed {limit} times: RuntimeError: this handler cannot take that person"
    assert letter.headers["x-tillit-consumer"] == runner.consumer.name
    assert letter.headers["x-tillit-queue"] == runner.queue_name
    assert orjson.loads(letter.body)["id"] == str(poison.id), "the dead letter is the message as it came"
    # Delivered exactly `delivery_limit` times, no more after it was parked; nothing left in the queues.
    await asyncio.sleep(1)
    assert runner.deliveries[str(poison.id)] == limit
    assert all(runner.deliveries[str(e.id)] == 1 for e in (before, after, later)), runner.deliveries
    assert runner.stats.dead_lettered == 1
    dlq = scratch.topology.dead_letter_queue_name(runner.consumer.name)
    assert await queue_depths([runner.queue_name, dlq]) == {runner.queue_name: 0, dlq: 0}


async def _equal(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
