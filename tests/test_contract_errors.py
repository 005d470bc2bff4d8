"""Every error case of the public contract answers RFC 9457 problem+json, naming the field at fault."""

import time
import uuid

import httpx
import jwt
import pytest

from shared.settings import BACKEND_SERVICES, DEVELOPMENT_JWT_SECRET
from tests.harness import System, random_id

PROBLEM = "application/problem+json"


def assert_problem(reply: httpx.Response, status: int, *, field: str | None = None) -> dict:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM)
    body = reply.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert field in body["detail"], body
        assert field in [error["field"] for error in body["errors"]], body
    return body


def _token(payload: dict, *, key: str = DEVELOPMENT_JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def _claims(**overrides) -> dict:
    return {"sub": random_id(), "name": "N", "email": "n@example.org", "exp": int(time.time()) + 600, **overrides}


def _unsigned(payload: dict) -> str:
    return jwt.encode(payload, key=None, algorithm="none")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("authorization", "why"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "not a bearer token"),
        ("Bearer", "no token after the scheme"),
        ("Bearer not.a.jwt", "malformed"),
        (f"Bearer {_token(_claims(exp=int(time.time()) - 10))}", "expired"),
        (f"Bearer {_token(_claims(), key='another-secret-entirely-32-bytes!')}", "wrongly signed"),
        (f"Bearer {_unsigned(_claims())}", "alg none"),
        (f"Bearer {_token({'name': 'no sub', 'exp': int(time.time()) + 600})}", "no sub"),
        (f"Bearer {_token({'sub': 'no-exp'})}", "no expiry"),
    ],
)
async def test_401_for_every_bad_token(system: System, authorization: str | None, why: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(base_url=system.base_url, headers=headers) as client:
        for method, path in [
            ("GET", "/api/me"),
            ("POST", "/api/posts"),
            ("PUT", f"/api/posts/{uuid.uuid4()}/like"),
            ("GET", "/api/notifications"),
        ]:
            reply = await client.request(method, path, json={"body": "x"} if method == "POST" else None)
            assert_problem(reply, 401)
            assert reply.headers["www-authenticate"].startswith("Bearer"), why


async def test_health_and_ready_need_no_token(system: System) -> None:
    async with system.client() as client:
        assert (await client.get("/api/health")).json() == {"status": "ok"}
        ready = await client.get("/api/ready")
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) == set(BACKEND_SERVICES)


async def test_openapi_docs_are_served(system: System) -> None:
    async with system.client() as client:
        assert (await client.get("/docs")).status_code == 200
        spec = (await client.get("/openapi.json")).json()
    for path in ["/api/posts", "/api/posts/{post_id}/like", "/api/me/favourites", "/api/notifications/read"]:
        assert path in spec["paths"]


async def test_404_for_posts_that_do_not_exist(system: System) -> None:
    missing = uuid.uuid4()
    async with system.client(system.token()) as client:
        for method, path in [
            ("GET", f"/api/posts/{missing}"),
            ("DELETE", f"/api/posts/{missing}"),
            ("PUT", f"/api/posts/{missing}/like"),
            ("DELETE", f"/api/posts/{missing}/like"),
            ("PUT", f"/api/posts/{missing}/favourite"),
            ("GET", f"/api/posts/{missing}/likes"),
            ("GET", "/api/no-such-route"),
        ]:
            assert_problem(await client.request(method, path), 404)


async def test_403_when_deleting_someone_elses_post(system: System) -> None:
    async with system.client(system.token()) as author:
        post = (await author.post("/api/posts", json={"body": "mine"})).json()
    async with system.client(system.token()) as other:
        assert_problem(await other.delete(f"/api/posts/{post['id']}"), 403)
    async with system.client(system.token()) as reader:
        assert (await reader.get(f"/api/posts/{post['id']}")).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"body": ""}, "body.body"),
        ({"body": " \n\t "}, "body.body"),
        ({"body": "x" * 10_001}, "body.body"),
        ({"body": 42}, "body.body"),
        ({}, "body.body"),
        ({"body": "ok", "kind": "essay"}, "body.kind"),
        ({"body": "ok", "audience": {"type": "galaxy"}}, "body.audience"),
        ({"body": "ok", "audience": "everyone"}, "body.audience"),
        ({"body": "ok", "colour": "red"}, "body.colour"),
    ],
)
async def test_422_names_the_field_for_a_bad_post(system: System, body: dict, field: str) -> None:
    async with system.client(system.token()) as client:
        assert_problem(await client.post("/api/posts", json=body), 422, field=field)


async def test_body_limits_count_after_trimming(system: System) -> None:
    async with system.client(system.token()) as client:
        reply = await client.post("/api/posts", json={"body": "  " + "å" * 10_000 + "  "})
    assert reply.status_code == 201 and len(reply.json()["body"]) == 10_000


async def test_422_for_malformed_input(system: System) -> None:
    async with system.client(system.token()) as client:
        assert_problem(await client.get("/api/posts/not-a-uuid"), 422, field="path.post_id")
        assert_problem(await client.put("/api/posts/not-a-uuid/like"), 422, field="path.post_id")
        post = (await client.post("/api/posts", json={"body": "cursor test"})).json()
        assert_problem(
            await client.get(f"/api/posts/{post['id']}/likes", params={"cursor": "garbage!"}), 422, field="query.cursor"
        )
        assert_problem(await client.get("/api/notifications", params={"limit": 0}), 422, field="query.limit")
        assert_problem(await client.get("/api/me/favourites", params={"limit": 1000}), 422, field="query.limit")
        assert_problem(await client.post("/api/notifications/read", json={}), 422, field="body")
        assert_problem(await client.post("/api/notifications/read", json={"all": False}), 422, field="body")
        assert_problem(await client.post("/api/notifications/read", json={"ids": ["nope"]}), 422, field="body.ids.0")
        reply = await client.post("/api/posts", content=b"{not json", headers={"content-type": "application/json"})
        assert_problem(reply, 422)


async def test_413_for_an_oversized_body(system: System) -> None:
    async with system.client(system.token()) as client:
        reply = await client.post("/api/posts", json={"body": "x" * 300_000})
        assert_problem(reply, 413)

        # Streamed without a Content-Length, too.
        async def chunks():
            for _ in range(40):
                yield b"x" * 10_000

        reply = await client.post("/api/posts", content=chunks(), headers={"content-type": "application/json"})
        assert_problem(reply, 413)


async def test_marking_someone_elses_notification_read_changes_nothing(system: System) -> None:
    author_token = system.token()
    async with system.client(author_token) as author:
        post = (await author.post("/api/posts", json={"body": "read me"})).json()
    async with system.client(system.token()) as liker:
        await liker.put(f"/api/posts/{post['id']}/like")
    from tests.harness import eventually

    async def inbox() -> list:
        async with system.client(author_token) as author:
            return (await author.get("/api/notifications")).json()["items"]

    [notification] = await eventually(inbox)
    async with system.client(system.token()) as stranger:
        assert (await stranger.post("/api/notifications/read", json={"ids": [notification["id"]]})).status_code == 204
    assert (await inbox())[0]["read"] is False
