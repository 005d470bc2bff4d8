"""apply_reactions applies a batch with a few set-based statements; it must leave the inbox exactly as
applying the same events one by one in batch order does. Random batches (seeded, so a failure can be
replayed) over few posts, actors and versions, with times around the grouping window, deleted posts,
read groups, stale events and unlikes, are applied both ways in two schemas and compared."""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from services.notifications import service
from shared import db as shared_db
from shared.db import Connection
from shared.events import (
    Envelope,
    Event,
    EventType,
    PersonRef,
    PostFavouritedV1,
    PostLikedV1,
    PostUnfavouritedV1,
    PostUnlikedV1,
)
from tests.harness import PG_ADMIN_URL, drop_database

MIGRATIONS = Path(service.__file__).parent / "migrations"
SCHEMAS = ("batched", "one_by_one")
MODELS = {
    ("post.liked", True): (EventType.POST_LIKED, PostLikedV1),
    ("post.liked", False): (EventType.POST_UNLIKED, PostUnlikedV1),
    ("post.favourited", True): (EventType.POST_FAVOURITED, PostFavouritedV1),
    ("post.favourited", False): (EventType.POST_UNFAVOURITED, PostUnfavouritedV1),
}


@pytest.fixture
async def pools() -> AsyncIterator[dict[str, asyncpg.Pool]]:
    database = f"tillit_test_nb{secrets.token_hex(4)}"
    dsn = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    pools: dict[str, asyncpg.Pool] = {}
    try:
        for schema in SCHEMAS:
            await shared_db.migrate(dsn, schema=schema, migrations=MIGRATIONS)
            pools[schema] = await shared_db.create_pool(dsn, schema=schema, size=2)
        yield pools
    finally:
        for pool in pools.values():
            await pool.close()
        await drop_database(database)


def random_batches(rng: random.Random, posts: list[uuid.UUID], authors: dict[uuid.UUID, str]) -> list[list[Event]]:
    # Authors react too: nobody is notified of their own reactions.
    actors = ["ada", "bo", "cy", "di", "ed", "flo", *authors.values()]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    offsets = [timedelta(0), timedelta(seconds=1), timedelta(hours=11, minutes=59), timedelta(hours=12, minutes=1)]
    versions: dict[tuple[uuid.UUID, str, str], int] = {}
    events = []
    for step in range(rng.randint(20, 60)):
        post, actor, kind = rng.choice(posts), rng.choice(actors), rng.choice(["post.liked", "post.favourited"])
        key = (post, actor, kind)
        versions[key] = versions.get(key, 0) + 1
        event_type, model = MODELS[(kind, rng.random() < 0.75)]
        at = start + timedelta(hours=step // 10 * 6) + rng.choice(offsets)
        data = model(
            post_id=post,
            post_author_id=authors[post],
            actor=PersonRef(id=actor, name=f"{actor} {rng.randint(1, 2)}"),
            like_count=1,
            favourite_count=0,
            version=versions[key],
            occurred_at=at,
        )
        envelope = Envelope(type=event_type, source="test", subject=str(post), data=data.model_dump(mode="json"))
        events.append(Event(envelope=envelope, data=data))
    # Mostly in order, with some events late (stale when they arrive) and some stale duplicates.
    for _ in range(len(events) // 5):
        i, j = rng.randrange(len(events)), rng.randrange(len(events))
        events[i], events[j] = events[j], events[i]
    events += rng.sample(events, len(events) // 10)
    batches, first = [], 0
    while first < len(events):
        size = rng.choice([1, 3, 8, 25])
        batches.append(events[first : first + size])
        first += size
    return batches


async def inbox_state(conn: Connection) -> dict[str, list[tuple[object, ...]]]:
    groups = await conn.fetch(
        """SELECT n.recipient_id, n.post_id, n.kind, n.is_open, n.read_at IS NOT NULL AS read, n.created_at,
                  n.updated_at, array_agg((a.actor_id, a.acted_at)::text ORDER BY a.actor_id) AS actors
           FROM notifications n LEFT JOIN notification_actors a ON a.notification_id = n.id
           GROUP BY n.id ORDER BY 1, 2, 3, 6, 7, 8"""
    )
    return {
        "groups": [tuple(r) for r in groups],
        "states": [tuple(r) for r in await conn.fetch("SELECT * FROM reaction_states ORDER BY 1, 2, 3")],
        "people": [tuple(r) for r in await conn.fetch("SELECT id, name FROM people_directory ORDER BY 1")],
        "emails": [
            tuple(r)
            for r in await conn.fetch(
                "SELECT dedupe_key, recipient_id, kind, post_id, actor_id, status FROM emails ORDER BY 1"
            )
        ],
    }


@pytest.mark.parametrize("seed", range(20))
async def test_a_batch_applies_as_its_events_one_by_one(pools: dict[str, asyncpg.Pool], seed: int) -> None:
    rng = random.Random(seed)
    posts = [uuid.uuid4() for _ in range(3)]
    authors = {post: f"author-{i % 2}" for i, post in enumerate(posts)}
    for pool in pools.values():
        async with pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO posts (id, author_id, excerpt, deleted, version) VALUES ($1, $2, 'x', $3, 1)",
                [(post, authors[post], i == 2) for i, post in enumerate(posts)],  # the third post is deleted
            )
    apply = {"batched": service.apply_reactions, "one_by_one": service.apply_reactions_one_by_one}
    for number, batch in enumerate(random_batches(rng, posts, authors)):
        for schema, pool in pools.items():
            async with pool.acquire() as conn, conn.transaction():
                await apply[schema](conn, batch)
                if number % 4 == 3:  # the author reads their inbox now and then, which closes the groups
                    await conn.execute("UPDATE notifications SET read_at = now(), is_open = false WHERE is_open")
        async with pools["batched"].acquire() as a, pools["one_by_one"].acquire() as b:
            batched, one_by_one = await inbox_state(a), await inbox_state(b)
        for table in batched:
            assert batched[table] == one_by_one[table], f"seed {seed}, batch {number}: {table} differ"
