"""The change stream against a real database: numbers commit in order per recipient, and a reader too far
behind the pruned tombstones is told to reload rather than handed a partial replay."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest

from services.notifications import changes, repository
from shared import db as shared_db
from shared.db import Connection
from tests.harness import PG_ADMIN_URL, drop_database

MIGRATIONS = Path(changes.__file__).parent / "migrations"


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    database = f"tillit_test_nc{secrets.token_hex(4)}"
    dsn = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    await shared_db.migrate(dsn, schema="notifications", migrations=MIGRATIONS)
    created = await shared_db.create_pool(dsn, schema="notifications", size=3)
    try:
        yield created
    finally:
        await created.close()
        await drop_database(database)


async def _join(conn: Connection, recipient: str, actor: str) -> None:
    await repository.add_actor_to_group(
        conn,
        recipient_id=recipient,
        kind="person.followed",
        post_id=None,
        actor_id=actor,
        at=datetime.now(UTC),
        window=timedelta(hours=12),
    )


async def _published(conn: Connection) -> list[dict[str, object]]:
    rows = await conn.fetch("SELECT body FROM outbox WHERE routing_key = 'notification.changed.v1' ORDER BY id")
    return [orjson.loads(r["body"])["data"] for r in rows]


async def test_a_later_transaction_waits_so_numbers_commit_in_order(pool: asyncpg.Pool) -> None:
    first_in = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await _join(conn, "ada", "bo")
            await changes.publish_changes(conn)
            first_in.set()
            await release_first.wait()  # holds ada's stream row, as a slow transaction would

    async def second() -> None:
        await first_in.wait()
        async with pool.acquire() as conn, conn.transaction():
            await _join(conn, "ada", "cy")
            await changes.publish_changes(conn)

    running_first = asyncio.create_task(first())
    running_second = asyncio.create_task(second())
    await first_in.wait()
    await asyncio.sleep(0.3)
    async with pool.acquire() as conn:
        assert await _published(conn) == [], "nothing is visible before a commit"
    assert not running_second.done(), "the second change waits for the first's number to commit"
    release_first.set()
    await asyncio.gather(running_first, running_second)
    async with pool.acquire() as conn:
        published = await _published(conn)
    assert [(p["recipient_id"], p["seq"]) for p in published] == [("ada", 1), ("ada", 2)]
    assert [p["items"][0]["actor_count"] for p in published] == [1, 2]  # type: ignore[index]


async def test_a_reader_behind_pruned_removals_is_told_to_reload(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await _join(conn, "ada", "bo")
        await changes.publish_changes(conn)
    async with pool.acquire() as conn, conn.transaction():
        await repository.remove_actor_from_open_group(
            conn, recipient_id="ada", kind="person.followed", post_id=None, actor_id="bo"
        )
        await changes.publish_changes(conn)
    replay = await changes.changes_after(pool, recipient_id="ada", after=1, token_locale=None)
    assert replay.seq == 2 and len(replay.removed) == 1 and not replay.reset

    async with pool.acquire() as conn:
        await conn.execute("UPDATE notification_removals SET removed_at = now() - interval '8 days'")
        assert await repository.prune_removals(conn, older_than=changes.REPLAY_RETENTION) == 1
    behind = await changes.changes_after(pool, recipient_id="ada", after=1, token_locale=None)
    assert behind.reset is True
    current = await changes.changes_after(pool, recipient_id="ada", after=2, token_locale=None)
    assert current.reset is False and current.removed == [] and current.items == []


async def test_an_untouched_transaction_publishes_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await changes.publish_changes(conn)
        assert await _published(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM notification_streams") == 0
