"""Observability over the real system: one like followed by its trace id through the logs of every service that
handled it and into the event published from it; /metrics of the gateway and the services moving under a few
likes. A system of this module's own, logging at INFO (the session's logs at WARNING)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import tracing
from shared.events import EventType, parse_event
from tests.harness import System, eventually, random_id
from tests.test_reliability import amqp_channel, create_post, wait_until_post_known
from tillit.catalog import all_consumers

LIKE_ROUTE = "/api/posts/{post_id}/like"


@pytest.fixture(scope="module")
async def info_system() -> AsyncIterator[System]:
    system = System(extra_env={"LOG_LEVEL": "INFO"})
    try:
        await system.start()
        yield system
    finally:
        await system.stop()


def log_lines(system: System, service: str) -> list[dict[str, Any]]:
    path = system.log_dir / f"{service}.log"
    lines = []
    for raw in path.read_bytes().splitlines() if path.exists() else []:
        if raw.startswith(b"{"):
            try:
                lines.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                continue
    return lines


def lines_of_trace(system: System, service: str, trace_id: str) -> list[dict[str, Any]]:
    return [
        line
        for line in log_lines(system, service)
        if line.get("trace_id") == trace_id or trace_id in (line.get("trace_ids") or [])
    ]


async def test_one_like_is_followed_by_its_trace_id_through_every_service(info_system: System) -> None:
    system = info_system
    author, liker = random_id("author"), random_id("liker")
    post_id = uuid.UUID((await create_post(system, system.token(author)))["id"])
    await wait_until_post_known(system, post_id)
    # Every service with a consumer of post.liked.v1 applies the like's event (posts, notifications, feeds ...).
    consumers_of_likes = sorted(
        service
        for service, consumers in all_consumers().items()
        for consumer in consumers
        if EventType.POST_LIKED in consumer.event_types
    )
    assert {"posts", "notifications", "feeds"} <= set(consumers_of_likes)

    async with amqp_channel() as channel:
        probe = await channel.declare_queue(exclusive=True)
        await probe.bind(f"{system.namespace}.events", routing_key=str(EventType.NOTIFICATION_CHANGED))
        trace_id = secrets.token_hex(16)
        async with system.client(system.token(liker)) as client:
            reply = await client.put(
                f"/api/posts/{post_id}/like", headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
            )
        assert reply.status_code == 200, reply.text

        # The notification.changed.v1 the notifications service published for the author, from the like.
        found: list[tuple[Any, Any]] = []

        async def published() -> bool:
            while (message := await probe.get(no_ack=True, fail=False)) is not None:
                event = parse_event(message.body)
                if event.data.recipient_id == author:  # type: ignore[attr-defined]
                    found.append(((message.headers or {}).get("traceparent"), event.envelope.traceparent))
            return bool(found)

        await eventually(published, timeout=20, interval=0.1, message="notification.changed.v1 for the author")
    header, attribute = found[0]
    assert tracing.trace_id_of(header) == trace_id, found
    assert tracing.trace_id_of(attribute) == trace_id, found

    services = ["gateway", "reactions", *consumers_of_likes]
    seen: dict[str, list[dict[str, Any]]] = {}

    async def in_every_log() -> bool:
        for service in services:
            seen[service] = lines_of_trace(system, service, trace_id)
        return all(seen.values())

    try:
        await eventually(in_every_log, timeout=15, interval=0.2)
    except AssertionError:
        missing = [service for service in services if not seen.get(service)]
        raise AssertionError(f"trace {trace_id} not in the logs of {missing}") from None
    gateway_request = next(line for line in seen["gateway"] if line.get("message") == "request")
    assert gateway_request["route"] == LIKE_ROUTE and gateway_request["status"] == 200
    assert any(line.get("route") == "/posts/{post_id}/like" for line in seen["reactions"]), seen["reactions"]
    for service in consumers_of_likes:
        applied = [line for line in seen[service] if line.get("message") == "batch applied"]
        assert applied, f"{service}: {seen[service]}"
        assert all(line["service"] == service for line in applied)
        assert any(line.get("event_ids") for line in applied)


async def test_a_request_without_traceparent_starts_a_trace_and_a_bad_one_is_replaced(info_system: System) -> None:
    system = info_system
    post_id = uuid.UUID((await create_post(system, system.token(random_id("author"))))["id"])
    await wait_until_post_known(system, post_id)
    async with system.client(system.token(random_id("liker"))) as client:
        reply = await client.put(f"/api/posts/{post_id}/like", headers={"traceparent": "00-not-a-trace-01"})
    assert reply.status_code == 200

    async def logged() -> list[dict[str, Any]]:
        return [
            line
            for line in log_lines(system, "gateway")
            if line.get("message") == "request" and line.get("path") == f"/api/posts/{post_id}/like"
        ]

    lines = await eventually(logged, timeout=10)
    assert len(lines[0]["trace_id"]) == 32 and lines[0]["trace_id"] != "0" * 32


@pytest.mark.parametrize(
    ("header", "valid"),
    [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", True),
        ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-later-fields", True),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", False),
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", False),
        ("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", False),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", False),
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", False),
        ("00-not-a-trace-01", False),
        ("", False),
    ],
)
def test_traceparent_is_continued_only_when_valid(header: str, valid: bool) -> None:
    span = tracing.continue_from(header)
    assert len(span.trace_id) == 32 and len(span.span_id) == 16
    assert (span.trace_id == "0af7651916cd43dd8448eb211c80319c") is valid
    assert span.span_id != "b7ad6b7169203331"
    assert tracing.parse_traceparent(span.traceparent) == span


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    parsed: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return parsed


def value(parsed: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return parsed.get((name, frozenset(labels.items())), 0.0)


def names(parsed: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> set[str]:
    return {name for name, _ in parsed}


async def scrape(system: System, service: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    port = system.ports[service]
    async with httpx.AsyncClient(timeout=5) as client:
        reply = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    return samples(reply.text)


async def test_metrics_of_the_gateway_and_services_move_under_a_few_likes(info_system: System) -> None:
    system = info_system
    author = random_id("author")
    post_id = uuid.UUID((await create_post(system, system.token(author)))["id"])
    await wait_until_post_known(system, post_id)
    services = ("gateway", "reactions", "notifications")
    before = {service: await scrape(system, service) for service in services}

    likes = 5
    async with httpx.AsyncClient(base_url=system.base_url, timeout=15) as client:
        for _ in range(likes):
            token = system.token(random_id("liker"))
            reply = await client.put(f"/api/posts/{post_id}/like", headers={"Authorization": f"Bearer {token}"})
            assert reply.status_code == 200, reply.text
        # An unmatched path is counted under one label, not its own.
        assert (await client.get(f"/api/no-such-thing/{uuid.uuid4()}")).status_code == 404

    http = "tillit_http_request_duration_seconds_count"
    consumed = "tillit_events_consumed_total"
    last: dict[str, float] = {}

    async def moved() -> dict[str, Any] | None:
        after = {service: await scrape(system, service) for service in services}

        def delta(service: str, name: str, **labels: str) -> float:
            return value(after[service], name, **labels) - value(before[service], name, **labels)

        deltas = {
            "gateway like requests": delta("gateway", http, method="PUT", route=LIKE_ROUTE, status="200"),
            "reactions like requests": delta(
                "reactions", http, method="PUT", route="/posts/{post_id}/like", status="200"
            ),
            "post.liked published": delta("reactions", "tillit_outbox_published_total", type="post.liked.v1"),
            "post.liked applied": delta(
                "notifications", consumed, consumer="notifications.reactions", type="post.liked.v1", outcome="applied"
            ),
            "notification batches timed": delta(
                "notifications", "tillit_event_handler_duration_seconds_count", consumer="notifications.reactions"
            ),
            "notification.changed published": delta(
                "notifications", "tillit_outbox_published_total", type="notification.changed.v1"
            ),
        }
        # The notifications service publishes one change per recipient and batch: likes close together share one.
        wanted = {key: likes for key in deltas} | {"notification batches timed": 1, "notification.changed published": 1}
        last.update(deltas)
        if all(deltas[key] >= wanted[key] for key in deltas):
            return {"after": after, "deltas": deltas}
        return None

    try:
        result = await eventually(moved, timeout=40, interval=0.3)
    except AssertionError:
        raise AssertionError(f"metrics did not move as the likes should have: {last}") from None
    after = result["after"]
    # Exactly the likes sent, never more: a like is one request on each hop and one event.
    assert result["deltas"]["gateway like requests"] == likes
    assert result["deltas"]["post.liked published"] == likes
    assert value(after["gateway"], http, method="GET", route="unmatched", status="404") >= 1
    assert not any("no-such-thing" in dict(labels).get("route", "") for _, labels in after["gateway"])
    for service in ("reactions", "notifications"):
        present = names(after[service])
        for name in (
            "tillit_http_request_duration_seconds_bucket",
            "tillit_events_consumed_total",
            "tillit_event_handler_duration_seconds_bucket",
            "tillit_outbox_backlog",
            "tillit_outbox_lag_seconds",
            "tillit_outbox_published_total",
            "tillit_dead_letters_total",
        ):
            assert name in present, f"{service} lacks {name}"
        assert value(after[service], "tillit_outbox_lag_seconds") >= 0
    assert (
        "tillit_dead_letters_total",
        frozenset({("consumer", "notifications.reactions"), ("cause", "malformed")}),
    ) in after["notifications"]
    # The mailer's counters, read from its stats by a collector.
    assert {"tillit_smtp_sends_total", "tillit_worker_operations_total"} <= names(after["notifications"])
    assert "tillit_smtp_sends_total" not in names(after["reactions"])
    # No per-user or per-post label anywhere.
    for parsed in after.values():
        for _, labels in parsed:
            assert not any(str(post_id) in v or v.startswith("liker-") for _, v in labels), labels


async def test_the_smtp_counters_follow_the_mailer(info_system: System) -> None:
    """A favourite sends its email at once (no window): the mailer's sent count shows in the metrics."""
    system = info_system
    author = random_id("author")
    post_id = uuid.UUID((await create_post(system, system.token(author)))["id"])
    await wait_until_post_known(system, post_id)
    before = value(await scrape(system, "notifications"), "tillit_smtp_sends_total", outcome="sent")
    async with system.client(system.token(random_id("fan"))) as client:
        assert (await client.put(f"/api/posts/{post_id}/favourite")).status_code == 200

    async def sent() -> bool:
        now = value(await scrape(system, "notifications"), "tillit_smtp_sends_total", outcome="sent")
        return now > before

    await eventually(sent, timeout=20, interval=0.3, message="an email counted as sent")
    await asyncio.sleep(0)


async def test_the_gateway_keeps_its_counters_from_visitors_through_the_ingress(info_system: System) -> None:
    async with httpx.AsyncClient(base_url=info_system.base_url, timeout=15) as client:
        scraped = await client.get("/metrics")
        visited = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert scraped.status_code == 200 and "tillit_http_request" in scraped.text
    assert visited.status_code == 404
    assert visited.headers["content-type"].startswith("application/problem+json")
