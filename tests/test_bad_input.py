"""Bad HTTP input at the gateway: oversized bodies, deep JSON, invalid UTF-8, huge headers and wrong content
types, on every route family. Each is a 4xx problem+json, answered at once, and the system goes on serving
(docs/reliability.md, "Bad input"). test_contract_errors.py has the 413 and 422 basics for posts."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from tests.harness import System
from tests.test_contract_errors import PROBLEM, assert_problem

# One write route of each family, with a body its route takes.
WRITES = [
    ("POST", "/api/posts"),
    ("PATCH", f"/api/posts/{uuid.uuid4()}"),
    ("POST", f"/api/posts/{uuid.uuid4()}/comments"),
    ("POST", "/api/notifications/read"),
    ("PUT", "/api/me/notification-settings"),
    ("PATCH", "/api/me"),
    ("POST", "/api/campaigns"),
    ("POST", "/api/qna"),
    ("POST", "/api/webhooks"),
    ("POST", "/api/unsubscribe"),
    ("POST", f"/api/posts/{uuid.uuid4()}/reports"),
]
ROLES = ["leaders", "moderators", "integrations"]


def deep(levels: int, opening: bytes = b"[", closing: bytes = b"]") -> bytes:
    return opening * levels + closing * levels


def assert_client_error(reply: httpx.Response, *allowed: int) -> dict:
    assert reply.status_code in allowed, f"{reply.request.method} {reply.request.url}: {reply.status_code} {reply.text}"
    assert reply.headers["content-type"].startswith(PROBLEM), reply.headers
    body = reply.json()
    assert body["status"] == reply.status_code and body["title"] and body["detail"], body
    return body


@pytest.fixture
async def client(system: System):
    async with system.client(system.token(groups=ROLES)) as client:
        yield client


async def raw(system: System, request: bytes) -> bytes:
    """The status line of the answer to bytes sent as they are."""
    port = int(system.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def test_oversized_bodies_are_413_on_every_route_family(system: System, client: httpx.AsyncClient) -> None:
    big = b'{"body": "' + b"x" * 200_000 + b'"}'
    for method, path in WRITES:
        reply = await client.request(method, path, content=big, headers={"content-type": "application/json"})
        assert_problem(reply, 413)
    # The fast path takes no body: a like with one goes to FastAPI's stack, and its limit.
    reply = await client.put(f"/api/posts/{uuid.uuid4()}/like", content=big)
    assert_problem(reply, 413)
    # A length over the limit is refused before a byte of the body is read.
    status_line = await raw(system, b"POST /api/posts HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{}")
    assert status_line.startswith(b"HTTP/1.1 413"), status_line


@pytest.mark.parametrize(
    ("what", "body"),
    [
        ("10,000 nested arrays", deep(10_000)),
        ("10,000 nested objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
        ("60,000 nested arrays (just under the body limit)", deep(60_000)),
        ("10,000 arrays inside a valid field", b'{"body": ' + deep(10_000) + b"}"),
    ],
)
async def test_deep_json_is_a_client_error_at_once(client: httpx.AsyncClient, what: str, body: bytes) -> None:
    for method, path in WRITES:
        started = time.monotonic()
        reply = await client.request(method, path, content=body, headers={"content-type": "application/json"})
        assert_client_error(reply, 400, 404, 422)
        assert time.monotonic() - started < 10, f"{what} on {path} took {time.monotonic() - started:.1f} s"


@pytest.mark.parametrize(
    "body",
    [
        b'{"body": "\xff\xfe"}',
        b'{"body": "caf\xe9"}',  # Latin-1, not UTF-8
        b'{"body": "\xed\xa0\x80"}',  # an encoded surrogate
        b'{"body": "\\ud800"}',  # an escaped lone surrogate: valid JSON, not a Unicode string
        b'{"body": "trailing"} garbage',
    ],
)
async def test_invalid_utf8_and_malformed_json_are_client_errors(client: httpx.AsyncClient, body: bytes) -> None:
    for method, path in WRITES:
        reply = await client.request(method, path, content=body, headers={"content-type": "application/json"})
        assert_client_error(reply, 400, 404, 422)


async def test_nul_characters_are_a_422_not_a_500(client: httpx.AsyncClient) -> None:
    # PostgreSQL cannot store U+0000; shared/http.py answers it for every service.
    reply = await client.post("/api/posts", json={"body": "hei\u0000du"})
    assert_client_error(reply, 422)
    reply = await client.get("/api/search", params={"q": "a\u0000b"})
    assert_client_error(reply, 422)
    reply = await client.get("/api/insight/participation", params={"team": "a\u0000b"})
    assert_client_error(reply, 422)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", None],
)
async def test_wrong_content_types_are_422_naming_the_body(client: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    reply = await client.post("/api/posts", content=b'{"body": "hei"}', headers=headers)
    body = assert_client_error(reply, 422)
    assert body["errors"][0]["field"] == "body"


async def test_huge_headers_are_431_and_the_gateway_goes_on(system: System, client: httpx.AsyncClient) -> None:
    # uvicorn (httptools) reads headers of any size; the gateway refuses more than 32 KB of them.
    reply = await client.get("/api/me", headers={"x-padding": "a" * 40_000})
    assert_problem(reply, 431)
    many = {f"x-h{i}": "v" * 10 for i in range(3000)}
    assert_problem(await client.get("/api/me", headers=many), 431)
    # A token that size is refused before it is verified or forwarded.
    reply = await client.put(f"/api/posts/{uuid.uuid4()}/like", headers={"authorization": "Bearer " + "a" * 40_000})
    assert_problem(reply, 431)
    # Up to the limit is fine: a large identity-provider token with many groups fits.
    assert (await client.get("/api/me", headers={"x-padding": "a" * 16_000})).status_code == 200

    # Below the app: a request line over uvicorn's limit or a broken header line is uvicorn's own plain 400.
    for request in (
        b"GET /api/health?" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nNot a header\r\n\r\n",
    ):
        status_line = await raw(system, request)
        assert status_line.startswith(b"HTTP/1.1 400"), status_line
    assert (await client.get("/api/me")).status_code == 200
