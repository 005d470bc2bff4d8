"""Signatures, patterns and backoff in isolation; queueing and the delivery worker against a real database and a
receiver on this machine, with the worker's clock in the test's hands."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from pydantic import ValidationError

from services.webhooks import delivery, repository
from services.webhooks.delivery import DeliveryWorker, retry_delay, signature, signature_header
from shared import db as shared_db
from shared.api_webhooks import WEBHOOK_EVENT_TYPES, CreateWebhook, pattern_matches
from shared.db import Connection
from shared.events import EventType
from shared.settings import Settings
from tests.harness import PG_ADMIN_URL, drop_database, free_port

MIGRATIONS = Path(delivery.__file__).parent / "migrations"


def test_the_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    body = b'{"id":"x"}'
    expected = hmac.new(b"whsec_a", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_a", timestamp=1700000000, body=body) == f"sha256={expected}"
    both = signature_header(["whsec_new", "whsec_old"], timestamp=1, body=body)
    assert both == f"{signature('whsec_new', timestamp=1, body=body)}, {signature('whsec_old', timestamp=1, body=body)}"


def test_patterns() -> None:
    assert pattern_matches("post.liked.v1", "post.liked.v1")
    assert not pattern_matches("post.liked.v1", "post.unliked.v1")
    assert pattern_matches("post.*", "post.liked.v1") and pattern_matches("post.*", "post.liked.v2")
    assert not pattern_matches("post.*", "person.followed.v1")
    assert pattern_matches("*", "comment.created.v1")
    assert EventType.NOTIFICATION_CHANGED not in WEBHOOK_EVENT_TYPES


@pytest.mark.parametrize(
    ("url", "event_types", "field"),
    [
        ("http://hooks.example.com", ["*"], "url"),
        ("https://hooks.example.com", ["notification.*"], "event_types"),
        ("https://hooks.example.com", ["post.liked"], "event_types"),
    ],
)
def test_what_cannot_be_subscribed(url: str, event_types: list[str], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        CreateWebhook(url=url, event_types=event_types)
    assert raised.value.errors()[0]["loc"][0] == field


def test_local_receivers_may_use_http() -> None:
    for url in ("http://localhost:9000/x", "http://127.0.0.1:9000/x", "http://[::1]:9000/x"):
        assert CreateWebhook(url=url, event_types=["*"]).url == url


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for attempts, ceiling in ((1, 10), (2, 20), (3, 40), (12, 3600), (40, 3600)):
        for _ in range(50):
            delay = retry_delay(attempts, base=10, cap=3600).total_seconds()
            assert ceiling / 2 <= delay <= ceiling


@pytest.fixture
async def pool() -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    database = f"tillit_test_wh{secrets.token_hex(4)}"
    dsn = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    await shared_db.migrate(dsn, schema="webhooks", migrations=MIGRATIONS)
    created = await shared_db.create_pool(dsn, schema="webhooks", size=3)
    try:
        yield created, dsn
    finally:
        await created.close()
        await drop_database(database)


async def _subscribe(conn: Connection, url: str, event_types: list[str]) -> uuid.UUID:
    row = await repository.insert_subscription(
        conn,
        subscription_id=uuid.uuid4(),
        url=url,
        event_types=event_types,
        description="",
        secret="whsec_test",
        created_by="admin",
    )
    subscription_id: uuid.UUID = row["id"]
    return subscription_id


async def test_queueing_matches_as_the_patterns_say_and_once_per_event(pool: tuple[asyncpg.Pool, str]) -> None:
    patterns = ["post.liked.v1", "post.*", "*", "comment.*"]
    async with pool[0].acquire() as conn:
        subscriptions = {p: await _subscribe(conn, "https://x.example.com", [p]) for p in patterns}
        disabled = await _subscribe(conn, "https://x.example.com", ["*"])
        await repository.disable(conn, disabled, reason="test", at=datetime.now(UTC))
        events = {uuid.uuid4(): str(t) for t in WEBHOOK_EVENT_TYPES}
        for _ in range(2):
            await repository.enqueue(
                conn, event_ids=list(events), event_types=list(events.values()), bodies=[b"{}"] * len(events)
            )
        rows = await conn.fetch("SELECT subscription_id, event_id FROM deliveries")
    queued = {(row["subscription_id"], row["event_id"]) for row in rows}
    expected = {
        (subscriptions[p], event_id) for p in patterns for event_id, t in events.items() if pattern_matches(p, t)
    }
    assert queued == expected and len(rows) == len(expected)


async def test_the_worker_retries_then_gives_up_and_settles_the_subscription(pool: tuple[asyncpg.Pool, str]) -> None:
    statuses = [503, 404, 200]
    answered: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        status = statuses[len(answered)] if len(answered) < len(statuses) else 200
        answered.append(status)
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    # A second ahead of the database's clock, which stamps when a delivery is first due.
    now = datetime.now(UTC) + timedelta(seconds=1)
    settings = Settings(
        database_url=pool[1],
        webhook_max_attempts=2,
        webhook_disable_after_failures=100,
        webhook_retry_base_seconds=10,
    )
    worker = DeliveryWorker(pool=pool[0], settings=settings, schema="webhooks", clock=lambda: now)
    worker.open()
    try:
        async with pool[0].acquire() as conn:
            subscription_id = await _subscribe(conn, f"http://127.0.0.1:{port}/", ["*"])
            given_up, later = uuid.uuid4(), uuid.uuid4()
            await repository.enqueue(conn, event_ids=[given_up], event_types=["post.liked.v1"], bodies=[b'{"n":1}'])
        assert await worker.deliver_due() == 1
        assert await worker.deliver_due() == 0  # not due for 5-10 s
        now += timedelta(seconds=10)
        assert await worker.deliver_due() == 1
        async with pool[0].acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM deliveries WHERE event_id = $1", given_up)
            assert row is not None
            assert row["status"] == "failed" and row["attempts"] == 2 and row["last_status_code"] == 404
            assert row["last_error"] == "gave up after 2 attempts: HTTP 404"
            state = await repository.subscription(conn, subscription_id)
            assert state is not None and state["consecutive_failures"] == 2 and state["active"]
            await repository.enqueue(conn, event_ids=[later], event_types=["post.liked.v1"], bodies=[b'{"n":2}'])
        now += timedelta(hours=1)
        assert await worker.deliver_due() == 1
        assert answered == [503, 404, 200]
        async with pool[0].acquire() as conn:
            state = await repository.subscription(conn, subscription_id)
            assert state is not None and state["consecutive_failures"] == 0
            assert await conn.fetchval("SELECT status FROM deliveries WHERE event_id = $1", later) == "delivered"
            attempts = await conn.fetchval("SELECT count(*) FROM delivery_attempts")
            assert attempts == 3
    finally:
        await worker.stop()
        await runner.cleanup()
