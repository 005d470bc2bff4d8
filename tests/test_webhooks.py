"""Signed webhooks end to end: a receiver the test runs gets a like made through the gateway and checks its
signature as docs/webhooks.md tells integrators to; failing receivers are retried and, if they keep failing,
their subscription is disabled; only webhook admins manage subscriptions."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from shared.events import EventType
from tests.harness import System, eventually, free_port, random_id
from tests.test_comment_likes import create_post
from tests.test_reliability import publish, reaction_envelope

REPLAY_WINDOW_SECONDS = 300


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """An HTTP endpoint of another system: answers `failures` 500s per event id, then 200s."""

    failures: int = 0
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/tillit"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event_id = request.headers.get("X-Tillit-Event-Id", "")
        earlier = sum(1 for r in self.received if r.headers.get("X-Tillit-Event-Id") == event_id)
        status = 500 if earlier < self.failures else 200
        self.received.append(Received(dict(request.headers), body, status))
        return web.Response(status=status, text="ok" if status == 200 else "not now")

    def of(self, event_id: str) -> list[Received]:
        return [r for r in self.received if r.headers.get("X-Tillit-Event-Id") == event_id]

    def of_post(self, post_id: str) -> list[Received]:
        return [r for r in self.received if r.event["data"].get("post_id") == post_id]


async def start_receiver(receiver: Receiver) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/hooks/tillit", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
    return runner


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    running = Receiver()
    runner = await start_receiver(running)
    try:
        yield running
    finally:
        await runner.cleanup()


def verify(secret: str, headers: dict[str, str], body: bytes, *, now: float | None = None) -> bool:
    """What a receiver does (docs/webhooks.md), written here independently of the service's code."""
    timestamp = headers["X-Tillit-Timestamp"]
    if abs((now or time.time()) - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    offered = [part.strip() for part in headers["X-Tillit-Signature"].split(",")]
    return any(hmac.compare_digest(expected, signature) for signature in offered)


def admin(system: System) -> str:
    return system.token(random_id("integrator"), groups=["integrations"])


async def subscribe(system: System, url: str, event_types: list[str]) -> dict[str, Any]:
    async with system.client(admin(system)) as client:
        reply = await client.post(
            "/api/webhooks", json={"url": url, "event_types": event_types, "description": "a test receiver"}
        )
    assert reply.status_code == 201, reply.text
    created: dict[str, Any] = reply.json()
    return created


async def unsubscribe(system: System, webhook_id: str) -> None:
    async with system.client(admin(system)) as client:
        assert (await client.delete(f"/api/webhooks/{webhook_id}")).status_code == 204


async def deliveries(system: System, webhook_id: str) -> list[dict[str, Any]]:
    async with system.client(admin(system)) as client:
        reply = await client.get(f"/api/webhooks/{webhook_id}/deliveries", params={"limit": 100})
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


async def like_a_new_post(system: System) -> str:
    post = await create_post(system, system.token(random_id("author")))
    async with system.client(system.token(random_id("liker"))) as client:
        assert (await client.put(f"/api/posts/{post['id']}/like")).status_code == 200
    post_id: str = post["id"]
    return post_id


async def test_a_like_through_the_gateway_arrives_signed(system: System, receiver: Receiver) -> None:
    webhook = await subscribe(system, receiver.url, ["post.liked.v1"])
    assert webhook["secret"].startswith("whsec_") and webhook["active"] is True
    assert webhook["event_types"] == ["post.liked.v1"]
    try:
        post_id = await like_a_new_post(system)

        async def arrived() -> list[Received]:
            return receiver.of_post(post_id)

        (delivery,) = await eventually(arrived, timeout=20, message="the like at the receiver")
        assert delivery.headers["Content-Type"] == "application/json"
        assert delivery.headers["X-Tillit-Event-Type"] == "post.liked.v1"
        event = delivery.event
        assert event["type"] == "post.liked.v1" and event["specversion"] == "1.0"
        assert event["id"] == delivery.headers["X-Tillit-Event-Id"]
        assert event["data"]["like_count"] == 1
        assert verify(webhook["secret"], delivery.headers, delivery.body)
        # Not with another secret, not with a touched body, not outside the replay window.
        assert not verify("whsec_other", delivery.headers, delivery.body)
        assert not verify(webhook["secret"], delivery.headers, delivery.body.replace(b"1", b"2"))
        assert not verify(webhook["secret"], delivery.headers, delivery.body, now=time.time() + 3600)
        # Only what it subscribed to: the post's creation never came.
        assert {r.headers["X-Tillit-Event-Type"] for r in receiver.received} == {"post.liked.v1"}

        async def logged() -> list[dict[str, Any]]:
            return [d for d in await deliveries(system, webhook["id"]) if d["status"] == "delivered"]

        (logged_delivery,) = await eventually(logged, message="the delivery in the log")
        assert logged_delivery["event_id"] == event["id"] and logged_delivery["attempts"] == 1
        assert logged_delivery["last_status_code"] == 200 and logged_delivery["next_attempt_at"] is None
        assert [a["status_code"] for a in logged_delivery["history"]] == [200]
        async with system.client(admin(system)) as client:
            shown = (await client.get(f"/api/webhooks/{webhook['id']}")).json()
        assert "secret" not in shown and shown["consecutive_failures"] == 0
    finally:
        await unsubscribe(system, webhook["id"])


async def test_an_event_delivered_twice_by_the_broker_is_sent_once(system: System, receiver: Receiver) -> None:
    webhook = await subscribe(system, receiver.url, ["post.*"])
    try:
        envelope = reaction_envelope(
            post_id=uuid.uuid4(), author_id=random_id(), actor_id=random_id(), liked=True, like_count=1, version=1
        )
        await publish(system.namespace, [envelope, envelope])

        async def arrived() -> list[Received]:
            return receiver.of(str(envelope.id))

        await eventually(arrived, timeout=20, message="the event at the receiver")
        # Let a second copy, if any, come too.
        await eventually(lambda: _settled(system, webhook["id"]), message="the log settled")
        assert len(receiver.of(str(envelope.id))) == 1
        assert len(await deliveries(system, webhook["id"])) == 1
    finally:
        await unsubscribe(system, webhook["id"])


async def _settled(system: System, webhook_id: str) -> bool:
    return all(d["status"] == "delivered" for d in await deliveries(system, webhook_id))


async def test_a_receiver_that_fails_three_times_gets_one_delivery_in_four_attempts(system: System) -> None:
    receiver = Receiver(failures=3)
    runner = await start_receiver(receiver)
    webhook = await subscribe(system, receiver.url, ["post.liked.v1"])
    try:
        post_id = await like_a_new_post(system)

        async def delivered() -> list[dict[str, Any]]:
            return [d for d in await deliveries(system, webhook["id"]) if d["status"] == "delivered"]

        (delivery,) = await eventually(delivered, timeout=30, message="delivered after three failures")
        assert delivery["attempts"] == 4
        assert [a["status_code"] for a in delivery["history"]] == [500, 500, 500, 200]
        assert [a["error"] for a in delivery["history"]] == ["HTTP 500"] * 3 + [None]
        attempts = receiver.of_post(post_id)
        assert [r.status for r in attempts] == [500, 500, 500, 200]
        assert len({r.headers["X-Tillit-Event-Id"] for r in attempts}) == 1
        # Every attempt is signed afresh, with its own timestamp.
        assert all(verify(webhook["secret"], r.headers, r.body) for r in attempts)
        async with system.client(admin(system)) as client:
            shown = (await client.get(f"/api/webhooks/{webhook['id']}")).json()
        assert shown["active"] is True and shown["consecutive_failures"] == 0
    finally:
        await unsubscribe(system, webhook["id"])
        await runner.cleanup()


async def test_a_receiver_that_always_fails_is_disabled_and_resumed_when_enabled(system: System) -> None:
    receiver = Receiver(failures=1_000_000)
    runner = await start_receiver(receiver)
    webhook = await subscribe(system, receiver.url, ["post.liked.v1"])
    try:
        post_id = await like_a_new_post(system)

        async def disabled() -> dict[str, Any] | None:
            async with system.client(admin(system)) as client:
                shown: dict[str, Any] = (await client.get(f"/api/webhooks/{webhook['id']}")).json()
            return shown if not shown["active"] else None

        shown = await eventually(disabled, timeout=30, message="the subscription disabled")
        assert shown["disabled_reason"].startswith("disabled after 5 consecutive failed attempts")
        assert "HTTP 500" in shown["disabled_reason"] and shown["disabled_at"]
        (delivery,) = await deliveries(system, webhook["id"])
        assert delivery["status"] == "suspended" and delivery["attempts"] == 5
        assert delivery["next_attempt_at"] is None and delivery["last_status_code"] == 500
        # No more attempts, and nothing queued for it while disabled: a witness subscribed to the same events,
        # queued in the same transaction, shows when the webhooks service has taken the next like.
        witness = Receiver()
        witness_runner = await start_receiver(witness)
        watching = await subscribe(system, witness.url, ["post.liked.v1"])
        try:
            while_disabled = await like_a_new_post(system)

            async def witnessed() -> list[Received]:
                return witness.of_post(while_disabled)

            await eventually(witnessed, timeout=20, message="the next like at the witness")
        finally:
            await unsubscribe(system, watching["id"])
            await witness_runner.cleanup()
        assert len(receiver.of_post(post_id)) == 5

        # The receiver is fixed; an admin enables the subscription and the suspended delivery goes out.
        receiver.failures = 0
        async with system.client(admin(system)) as client:
            enabled = (await client.post(f"/api/webhooks/{webhook['id']}/enable")).json()
        assert enabled["active"] is True and enabled["disabled_reason"] is None

        async def delivered() -> list[dict[str, Any]]:
            return [d for d in await deliveries(system, webhook["id"]) if d["status"] == "delivered"]

        (done,) = await eventually(delivered, timeout=20, message="delivered once enabled")
        assert len(await deliveries(system, webhook["id"])) == 1
        assert receiver.of_post(while_disabled) == []
        assert done["event_id"] == delivery["event_id"] and done["attempts"] == 6
        assert [r.status for r in receiver.of_post(post_id)] == [500] * 5 + [200]
    finally:
        await unsubscribe(system, webhook["id"])
        await runner.cleanup()


async def test_a_rotated_secret_signs_beside_the_old_one(system: System, receiver: Receiver) -> None:
    webhook = await subscribe(system, receiver.url, ["post.liked.v1"])
    try:
        async with system.client(admin(system)) as client:
            rotated = (await client.post(f"/api/webhooks/{webhook['id']}/secret")).json()
        assert rotated["secret"] != webhook["secret"] and rotated["id"] == webhook["id"]
        post_id = await like_a_new_post(system)

        async def arrived() -> list[Received]:
            return receiver.of_post(post_id)

        (delivery,) = await eventually(arrived, timeout=20, message="the like at the receiver")
        assert len(delivery.headers["X-Tillit-Signature"].split(",")) == 2
        assert verify(rotated["secret"], delivery.headers, delivery.body)
        assert verify(webhook["secret"], delivery.headers, delivery.body)
    finally:
        await unsubscribe(system, webhook["id"])


async def test_only_webhook_admins_manage_webhooks(system: System) -> None:
    webhook = await subscribe(system, "https://hooks.example.com/tillit", ["*"])
    try:
        someone = system.token(random_id("someone"), groups=["leaders", "moderators"])
        base = f"/api/webhooks/{webhook['id']}"
        async with system.client(someone) as client:
            replies = [
                await client.post("/api/webhooks", json={"url": "https://x.example.com", "event_types": ["*"]}),
                await client.get("/api/webhooks"),
                await client.get(base),
                await client.delete(base),
                await client.post(f"{base}/enable"),
                await client.post(f"{base}/secret"),
                await client.get(f"{base}/deliveries"),
            ]
        for reply in replies:
            assert reply.status_code == 403, (reply.request.url, reply.text)
            assert reply.headers["content-type"].startswith("application/problem+json")
            assert "integrations" in reply.json()["detail"]
        async with system.client() as anonymous:
            assert (await anonymous.get("/api/webhooks")).status_code == 401
        async with system.client(admin(system)) as client:
            listed = (await client.get("/api/webhooks")).json()["items"]
            assert webhook["id"] in {w["id"] for w in listed}
            assert all("secret" not in w for w in listed)
            missing = await client.get(f"/api/webhooks/{uuid.uuid4()}")
            assert missing.status_code == 404
    finally:
        await unsubscribe(system, webhook["id"])
    async with system.client(admin(system)) as client:
        assert (await client.get(f"/api/webhooks/{webhook['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://hooks.example.com/x", "event_types": ["post.liked.v1"]}, "body.url"),
        ({"url": "http://hooks.example.com/x", "event_types": ["post.liked.v1"]}, "body.url"),
        ({"url": "https://user:pw@hooks.example.com/x", "event_types": ["post.liked.v1"]}, "body.url"),
        ({"url": "not a url", "event_types": ["post.liked.v1"]}, "body.url"),
        ({"url": "https://hooks.example.com/x", "event_types": ["post.exploded.v1"]}, "body.event_types.0"),
        ({"url": "https://hooks.example.com/x", "event_types": ["post.liked.v1", "poll.*"]}, "body.event_types.1"),
        (
            {"url": "https://hooks.example.com/x", "event_types": [str(EventType.NOTIFICATION_CHANGED)]},
            "body.event_types.0",
        ),
        ({"url": "https://hooks.example.com/x", "event_types": []}, "body.event_types"),
    ],
)
async def test_a_bad_url_or_event_type_is_a_422_naming_the_field(
    system: System, body: dict[str, Any], field: str
) -> None:
    async with system.client(admin(system)) as client:
        reply = await client.post("/api/webhooks", json=body)
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert field in {error["field"] for error in reply.json()["errors"]}
