"""Security of the API (docs/reliability.md, "Security"):

- bad tokens (forged, expired, `alg: none`, wrong audience) on every route family, the stream included;
- one person acting on another's things on every route that acts on something: refused, and nothing changed;
- unsubscribe tokens change their owner's settings and no one else's, and a tampered one nothing;
- the per-person write limit (429 problem+json with Retry-After), on FastAPI's routes and the like fast path;
- security headers on every kind of answer;
- no secret in any service's log, at DEBUG.

test_contract_errors.py has the 401 basics for posts, likes and notifications and the 403 on deleting a post.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from services.gateway.main import create_app
from services.gateway.ratelimit import WriteLimiter
from shared.auth import Claims, mint_token
from shared.settings import DEVELOPMENT_JWT_SECRET, DEVELOPMENT_UNSUBSCRIBE_SECRET, Settings
from tests.harness import System, eventually, random_id
from tests.test_contract_errors import PROBLEM, assert_problem

ROLES = ["leaders", "moderators", "integrations"]
AUDIENCE = "tillit-api"
WRITES_PER_MINUTE, BURST = 12, 5


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


# 1. The write limit and the headers, in process ---------------------------------------------------------------


def test_the_write_limit_is_a_token_bucket_per_person() -> None:
    now = [1000.0]
    limiter = WriteLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    assert [limiter.take("ada") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("ada") == pytest.approx(1.0)  # one write a second: the next in a second
    assert limiter.take("kari") == 0.0, "each person has their own bucket"
    now[0] += 0.5
    assert limiter.take("ada") == pytest.approx(0.5), "a refused write takes nothing"
    now[0] += 0.5
    assert limiter.take("ada") == 0.0
    now[0] += 3600
    assert [limiter.take("ada") for _ in range(4)][-1] > 0, "refills to the burst, not beyond"


def test_the_write_limit_forgets_idle_people_and_never_grows_without_bound() -> None:
    now = [0.0]
    limiter = WriteLimiter(per_minute=60, burst=2, clock=lambda: now[0], max_buckets=100)
    for i in range(100):
        limiter.take(f"p{i}")
    now[0] += 10  # everyone's bucket is full again
    limiter.take("newcomer")
    assert len(limiter._buckets) == 1
    for i in range(250):
        limiter.take(f"busy{i}")
    assert len(limiter._buckets) <= 100


def _app_client(**settings: Any) -> httpx.AsyncClient:
    app = create_app(Settings(**settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


async def test_hsts_only_in_production_and_the_headers_of_each_kind_of_answer() -> None:
    production = {"TILLIT_ENV": "production", "jwt_secret": "s" * 40, "unsubscribe_secret": "u" * 40}
    async with _app_client(**production) as client:
        reply = await client.get("/api/health")
    assert reply.headers["strict-transport-security"].startswith("max-age=31536000")
    async with _app_client() as client:
        api = await client.get("/api/health")
        page = await client.get("/")
        docs = await client.get("/docs")
        unsubscribe = await client.get("/api/unsubscribe", params={"token": "x"})
        missing = await client.get("/api/no-such-route")
    assert "strict-transport-security" not in api.headers, "never over development's plain HTTP"
    for reply in (api, page, docs, unsubscribe, missing):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert "camera=()" in reply.headers["permissions-policy"]
        assert "frame-ancestors" in reply.headers["content-security-policy"]
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert missing.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert api.headers["x-frame-options"] == "DENY" and api.headers["referrer-policy"] == "no-referrer"
    # The web client keeps its own policy (web/__init__.py) and may frame itself.
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "SAMEORIGIN" and page.headers["referrer-policy"] == "same-origin"
    # Swagger UI loads its scripts from a CDN: only framing is restricted there.
    assert docs.headers["content-security-policy"] == "frame-ancestors 'none'"
    # The unsubscribe page has no script and keeps its own Referrer-Policy (its URL holds a token).
    assert "default-src 'none'" in unsubscribe.headers["content-security-policy"]
    assert "script-src" not in unsubscribe.headers["content-security-policy"]
    assert unsubscribe.headers["referrer-policy"] == "no-referrer"


async def test_security_headers_on_the_running_gateway_fast_path_included(system: System) -> None:
    token = system.token()
    async with system.client(token) as client:
        post = (await client.post("/api/posts", json={"body": "headers"})).json()
        replies = [
            await client.get("/api/me"),
            await client.put(f"/api/posts/{post['id']}/like"),  # the fast path
            await client.put(f"/api/posts/{uuid.uuid4()}/like"),  # the fast path's 404
            await client.get("/openapi.json"),
            await client.post("/api/posts", json={}),
        ]
    for reply in replies:
        assert reply.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'", reply.url
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in reply.headers


# 2. Bad tokens on every route family ----------------------------------------------------------------------


def _claims(**overrides: Any) -> dict[str, Any]:
    return {"sub": random_id(), "name": "N", "groups": ROLES, "exp": int(time.time()) + 600, **overrides}


def _forged_sub(token: str, sub: str) -> str:
    """The token with its payload's sub changed and the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = sub
    changed = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{changed}.{signature}"


def _route_families(ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any] | None]]:
    post, comment = ids["post"], ids["comment"]
    return [
        ("GET", f"/api/posts/{post}/comments", None),
        ("POST", f"/api/posts/{post}/comments", {"body": "x"}),
        ("DELETE", f"/api/comments/{comment}", None),
        ("PUT", f"/api/posts/{post}/accepted-answer", {"comment_id": comment}),
        ("POST", f"/api/posts/{post}/reports", {"reason": "x"}),
        ("GET", "/api/moderation/reports", None),
        ("POST", f"/api/moderation/posts/{post}/hide", {"reason": "x"}),
        ("PUT", f"/api/comments/{comment}/like", None),
        ("GET", "/api/campaigns", None),
        ("POST", "/api/campaigns", {"title": "t", "question": "q", "closes_at": _in(600)}),
        ("PUT", f"/api/ideas/{post}/status", {"status": "adopted", "reason": "r"}),
        ("POST", "/api/qna", {"title": "t", "starts_at": _in(-60), "ends_at": _in(600)}),
        ("GET", "/api/leaderboards", None),
        ("GET", "/api/insight/participation?team=x", None),
        ("GET", "/api/webhooks", None),
        ("POST", "/api/webhooks", {"url": "https://example.org/hook", "event_types": ["*"]}),
        ("GET", "/api/me/notification-settings", None),
        ("PUT", "/api/me/notification-settings", {"digest": "weekly"}),
        ("PATCH", "/api/me", {"title": "x"}),
        ("PATCH", f"/api/posts/{post}", {"audience": {"type": "private"}}),
        ("PUT", f"/api/people/{random_id()}/follow", None),
        ("GET", "/api/feed", None),
        ("GET", "/api/search?q=x", None),
        ("GET", "/api/stream", None),
    ]


@pytest.fixture(scope="module")
async def things(system: System) -> dict[str, str]:
    """A question by one person with a comment by another, in the session's system."""
    async with system.client(system.token()) as author, system.client(system.token()) as commenter:
        post = (await author.post("/api/posts", json={"body": "Spørsmål?", "kind": "question"})).json()
        comment = (await commenter.post(f"/api/posts/{post['id']}/comments", json={"body": "Svar"})).json()
    return {"post": post["id"], "comment": comment["id"]}


@pytest.mark.parametrize(
    ("why", "token"),
    [
        ("forged: signed with another key", jwt.encode(_claims(), "another-secret-entirely-32-bytes!!", "HS256")),
        ("expired", jwt.encode(_claims(exp=int(time.time()) - 5), DEVELOPMENT_JWT_SECRET, "HS256")),
        ("alg none", jwt.encode(_claims(), None, algorithm="none")),  # type: ignore[arg-type]
        ("alg none, signature kept", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + "x.y"),
        ("a sub changed after signing", _forged_sub(jwt.encode(_claims(), DEVELOPMENT_JWT_SECRET, "HS256"), "boss")),
        ("an unsubscribe token", jwt.encode(_claims(aud="tillit-unsubscribe"), DEVELOPMENT_UNSUBSCRIBE_SECRET)),
    ],
)
async def test_401_for_bad_tokens_on_every_route_family(
    system: System, things: dict[str, str], why: str, token: str
) -> None:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=15) as client:
        for method, path, body in _route_families(things):
            headers = {"Authorization": f"Bearer {token}"}
            reply = await client.request(method, path, json=body, headers=headers)
            assert_problem(reply, 401)
            assert reply.headers["www-authenticate"].startswith("Bearer"), (why, path)
        # The stream's query token, for EventSource, is held to the same checks.
        assert_problem(await client.get("/api/stream", params={"access_token": token}), 401)


# 3. One person on another's things -------------------------------------------------------------------------


class Person:
    def __init__(self, system: System, *, groups: list[str] | None = None) -> None:
        self.id = random_id("p")
        self.token = system.token(self.id, groups=groups or [])
        self.client = system.client(self.token)

    async def call(self, method: str, path: str, json: Any = None, status: int | None = None) -> Any:
        reply = await self.client.request(method, path, json=json)
        if status is not None:
            assert reply.status_code == status, f"{method} {path}: {reply.status_code} {reply.text}"
        return reply.json() if reply.content and reply.headers["content-type"].endswith("json") else None


@pytest.fixture
async def people(system: System) -> AsyncIterator[dict[str, Person]]:
    cast = {
        "owner": Person(system, groups=["leaders"]),
        "other": Person(system, groups=["leaders"]),  # a leader too, but not the owner
        "plain": Person(system),
        "admin": Person(system, groups=["integrations"]),
    }
    try:
        yield cast
    finally:
        for person in cast.values():
            await person.client.aclose()


def _refused(reply: httpx.Response) -> None:
    assert reply.status_code in (403, 404), f"{reply.request.method} {reply.request.url}: {reply.text}"
    assert reply.headers["content-type"].startswith(PROBLEM)


async def test_nobody_acts_on_another_persons_things(system: System, people: dict[str, Person]) -> None:
    owner, other, plain, admin = people["owner"], people["other"], people["plain"], people["admin"]
    question = await owner.call("POST", "/api/posts", {"body": "Hvem vet?", "kind": "question"}, 201)
    answer = await plain.call("POST", f"/api/posts/{question['id']}/comments", {"body": "Jeg"}, 201)
    campaign = await owner.call(
        "POST", "/api/campaigns", {"title": "Møter", "question": "Hvordan?", "closes_at": _in(3600)}, 201
    )
    idea = await plain.call("POST", f"/api/campaigns/{campaign['id']}/ideas", {"body": "Kortere"}, 201)
    session = await owner.call("POST", "/api/qna", {"title": "Spør", "starts_at": _in(-60), "ends_at": _in(3600)}, 201)
    asked = await plain.call("POST", f"/api/qna/{session['id']}/questions", {"body": "Når?"}, 201)
    webhook = await admin.call("POST", "/api/webhooks", {"url": "https://example.org/h", "event_types": ["*"]}, 201)
    settings_before = await owner.call("GET", "/api/me/notification-settings", status=200)

    attempts = [
        (other, "DELETE", f"/api/posts/{question['id']}", None),
        (other, "PATCH", f"/api/posts/{question['id']}", {"audience": {"type": "private"}}),
        (other, "DELETE", f"/api/comments/{answer['id']}", None),
        (other, "PUT", f"/api/posts/{question['id']}/accepted-answer", {"comment_id": answer["id"]}),
        (other, "DELETE", f"/api/posts/{question['id']}/accepted-answer", None),
        (other, "PUT", f"/api/ideas/{idea['id']}/status", {"status": "adopted", "reason": "Ja"}),
        (other, "POST", f"/api/campaigns/{campaign['id']}/close", None),
        (other, "POST", f"/api/qna/{session['id']}/questions/{asked['id']}/answer", {"answer": "Snart"}),
        (plain, "POST", f"/api/moderation/posts/{question['id']}/hide", {"reason": "nei"}),
        (plain, "POST", f"/api/moderation/comments/{answer['id']}/hide", {"reason": "nei"}),
        (plain, "GET", "/api/moderation/reports", None),
        (plain, "GET", "/api/insight/participation?team=engineering", None),
        (plain, "POST", "/api/campaigns", {"title": "t", "question": "q", "closes_at": _in(600)}),
        (plain, "POST", "/api/qna", {"title": "t", "starts_at": _in(-60), "ends_at": _in(600)}),
        (plain, "GET", "/api/webhooks", None),
        (plain, "POST", "/api/webhooks", {"url": "https://example.org/x", "event_types": ["*"]}),
        (plain, "GET", f"/api/webhooks/{webhook['id']}", None),
        (plain, "DELETE", f"/api/webhooks/{webhook['id']}", None),
        (plain, "POST", f"/api/webhooks/{webhook['id']}/enable", None),
        (plain, "POST", f"/api/webhooks/{webhook['id']}/secret", None),
        (plain, "GET", f"/api/webhooks/{webhook['id']}/deliveries", None),
    ]
    for actor, method, path, body in attempts:
        _refused(await actor.client.request(method, path, json=body))

    # Settings and profiles are one's own by construction: a body naming someone else changes nobody else.
    reply = await other.client.put("/api/me/notification-settings", json={"digest": "off", "recipient_id": owner.id})
    assert reply.status_code in (200, 422), reply.text
    reply = await other.client.patch("/api/me", json={"title": "Sjef", "id": owner.id})
    assert reply.status_code in (200, 422), reply.text

    # Nothing changed.
    seen = await owner.call("GET", f"/api/posts/{question['id']}", status=200)
    assert seen["audience"] == {"type": "everyone"} and seen["accepted_comment_id"] is None, seen
    comments = await owner.call("GET", f"/api/posts/{question['id']}/comments", status=200)
    assert [c["id"] for c in comments["items"]] == [answer["id"]]
    assert (await owner.call("GET", f"/api/campaigns/{campaign['id']}", status=200))["closed_at"] is None
    ideas = await owner.call("GET", f"/api/campaigns/{campaign['id']}/ideas", status=200)
    assert [item["status"] for item in ideas["items"]] == ["new"]
    questions = await owner.call("GET", f"/api/qna/{session['id']}/questions", status=200)
    assert [q["answer"] for q in questions["items"]] == [None]
    assert await owner.call("GET", "/api/me/notification-settings", status=200) == settings_before
    assert (await owner.call("GET", "/api/me", status=200)).get("title") is None
    assert (await admin.call("GET", f"/api/webhooks/{webhook['id']}", status=200))["id"] == webhook["id"]


# 4. Unsubscribe tokens ------------------------------------------------------------------------------------


def _unsubscribe_token(recipient: str, *, kind: str = "favourite", secret: str = DEVELOPMENT_UNSUBSCRIBE_SECRET) -> str:
    now = int(time.time())
    claims = {"sub": recipient, "kind": kind, "aud": "tillit-unsubscribe", "iat": now, "exp": now + 3600}
    return jwt.encode(claims, secret, algorithm="HS256")


async def test_an_unsubscribe_token_changes_its_owner_only_and_a_tampered_one_nothing(system: System) -> None:
    ada, kari = Person(system), Person(system)
    try:
        before = {p.id: await p.call("GET", "/api/me/notification-settings", status=200) for p in (ada, kari)}
        tampered = _forged_sub(_unsubscribe_token(ada.id), kari.id)
        async with httpx.AsyncClient(base_url=system.base_url, timeout=15) as anonymous:
            for bad in (
                tampered,
                _unsubscribe_token(kari.id, secret="not-the-unsubscribe-secret-at-all"),
                jwt.encode({"sub": kari.id, "kind": "favourite", "exp": int(time.time()) + 60}, None, "none"),  # type: ignore[arg-type]
                kari.token,  # an access token is no unsubscribe token
            ):
                reply = await anonymous.post("/api/unsubscribe", json={"token": bad})
                assert reply.status_code in (400, 422) and reply.headers["content-type"].startswith(PROBLEM), reply
            for p in (ada, kari):
                assert await p.call("GET", "/api/me/notification-settings", status=200) == before[p.id]

            reply = await anonymous.post("/api/unsubscribe", json={"token": _unsubscribe_token(ada.id)})
            assert reply.status_code == 200, reply.text
        after = await ada.call("GET", "/api/me/notification-settings", status=200)
        assert after["channels"]["favourite"] != before[ada.id]["channels"]["favourite"]
        assert await kari.call("GET", "/api/me/notification-settings", status=200) == before[kari.id]
    finally:
        await ada.client.aclose()
        await kari.client.aclose()


# 5. A system with an audience, a tight write limit, real secrets and DEBUG logs ---------------------------


@pytest.fixture(scope="module")
async def hardened() -> AsyncIterator[System]:
    running = System(
        log_level="DEBUG",
        extra_env={
            "JWT_SECRET": secrets.token_urlsafe(32),
            "UNSUBSCRIBE_SECRET": secrets.token_urlsafe(32),
            "JWT_AUDIENCE": AUDIENCE,
            "RATE_LIMIT_WRITES_PER_MINUTE": str(WRITES_PER_MINUTE),
            "RATE_LIMIT_WRITE_BURST": str(BURST),
        },
    )
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


def _settings(system: System) -> Settings:
    return Settings(jwt_secret=system.extra_env["JWT_SECRET"], jwt_audience=AUDIENCE)


def _token(system: System, sub: str | None = None, **claims: Any) -> str:
    sub = sub or random_id()
    return mint_token(_settings(system), Claims(sub=sub, name=f"N {sub}", email=f"{sub}@tillit.test", **claims))


async def test_a_token_for_another_audience_is_refused_everywhere(hardened: System) -> None:
    system = hardened
    secret = system.extra_env["JWT_SECRET"]
    wrong = jwt.encode(_claims(aud="another-api"), secret, "HS256")
    none = jwt.encode(_claims(), secret, "HS256")  # no audience at all
    async with httpx.AsyncClient(base_url=system.base_url, timeout=15) as client:
        ids = {"post": str(uuid.uuid4()), "comment": str(uuid.uuid4())}
        for token in (wrong, none):
            for method, path, body in _route_families(ids):
                reply = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
                assert_problem(reply, 401)
        good = await client.get("/api/me", headers={"Authorization": f"Bearer {_token(system)}"})
    assert good.status_code == 200, good.text


async def test_writes_over_the_limit_are_429_with_retry_after_fast_path_included(hardened: System) -> None:
    system = hardened
    author, writer, liker = _token(system), _token(system), _token(system)
    async with system.client(author) as client:
        post = (await client.post("/api/posts", json={"body": "Lik meg"})).json()

    async with system.client(writer) as client:
        statuses = [(await client.post("/api/posts", json={"body": f"nr {i}"})).status_code for i in range(BURST + 1)]
        assert statuses == [201] * BURST + [429], statuses
        refused = await client.post("/api/posts", json={"body": "en til"})
        body = assert_problem(refused, 429)
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 60 / WRITES_PER_MINUTE and body["retry_after"] == retry_after
        assert (await client.get("/api/me")).status_code == 200, "reads are not limited"
        async with system.client(_token(system)) as someone_else:
            assert (await someone_else.post("/api/posts", json={"body": "meg"})).status_code == 201
        # A bad token is a 401 however often it comes, and takes nothing from anyone's bucket.
        for _ in range(BURST + 2):
            reply = await client.post("/api/posts", json={"body": "x"}, headers={"Authorization": "Bearer bad"})
            assert reply.status_code == 401

    async with system.client(_token(system)) as prober:
        await eventually(lambda: _likes(prober, post["id"]), timeout=20, message="the post reaches reactions")
    async with system.client(liker) as client:
        states = []
        for i in range(BURST + 1):
            reply = await client.request("PUT" if i % 2 == 0 else "DELETE", f"/api/posts/{post['id']}/like")
            states.append(reply.status_code)
        assert states[-1] == 429 and 200 in states, states
        assert_problem(reply, 429)
        assert int(reply.headers["retry-after"]) >= 1
        # The refused unlike had no effect: the like of the last accepted request stands.
        liked = (await client.get(f"/api/posts/{post['id']}")).json()["liked_by_me"]
        assert liked == (BURST % 2 == 1), states
    async with system.client(writer) as client:
        await eventually(
            lambda: _accepted(client), timeout=retry_after + 10, interval=0.5, message="the bucket refills"
        )


async def _likes(client: httpx.AsyncClient, post_id: str) -> bool:
    return (await client.put(f"/api/posts/{post_id}/like")).status_code == 200


async def _accepted(client: httpx.AsyncClient) -> bool:
    return (await client.post("/api/posts", json={"body": "igjen"})).status_code == 201


async def test_no_secret_in_any_log_at_debug(hardened: System) -> None:
    system = hardened
    used: dict[str, str] = {
        "JWT_SECRET": system.extra_env["JWT_SECRET"],
        "UNSUBSCRIBE_SECRET": system.extra_env["UNSUBSCRIBE_SECRET"],
    }
    async with httpx.AsyncClient(base_url=system.base_url, timeout=15) as anonymous:
        signed_in = (await anonymous.post("/api/dev/sign-in", json={"user_id": "demo-ada"})).json()
        used["dev sign-in token"] = signed_in["access_token"]
        author = random_id("author")
        used["author token"] = author_token = _token(system, author)
        used["admin token"] = admin_token = _token(system, groups=["integrations"])
        async with system.client(author_token) as client:
            post = (await client.post("/api/posts", json={"body": "Hemmelig?"})).json()
        async with system.client(signed_in["access_token"]) as ada:
            await eventually(lambda: _reacted(ada, post["id"]), timeout=20, message="Ada likes and favourites the post")
        async with system.client(admin_token) as admin:
            hook = (
                await admin.post("/api/webhooks", json={"url": "https://example.org/h", "event_types": ["*"]})
            ).json()
            used["webhook secret"] = hook["secret"]
            rotated = (await admin.post(f"/api/webhooks/{hook['id']}/secret")).json()
            used["rotated webhook secret"] = rotated["secret"]
        # The favourite's email carries an unsubscribe link; following it must not log its token either.
        message = await eventually(lambda: _email_to(system, author), timeout=30, message="the favourite's email")
        link = str(message["List-Unsubscribe"])
        token = re.search(r"token=([^>&\s]+)", link)
        assert token, link
        used["unsubscribe token"] = token[1]
        reply = await anonymous.post("/api/unsubscribe", params={"token": token[1]})
        assert reply.status_code == 200, reply.text
        # Refused tokens are not logged either.
        used["refused token"] = bad = jwt.encode(_claims(), "a-guess-at-the-secret-32-bytes!!", "HS256")
        assert (await anonymous.get("/api/me", headers={"Authorization": f"Bearer {bad}"})).status_code == 401

    logs = {service: (system.log_dir / f"{service}.log").read_text(errors="replace") for service in system.processes}
    assert sum(len(text) for text in logs.values()) > 10_000, "DEBUG logs were written"
    for what, value in used.items():
        # A JWT's signature alone would give it away as well as the whole token.
        needles = {value, value.rsplit(".", 1)[-1]} if value.count(".") == 2 else {value}
        for service, text in logs.items():
            for needle in needles:
                assert needle not in text, f"{what} appears in {service}'s log"


async def _reacted(client: httpx.AsyncClient, post_id: str) -> bool:
    liked = await client.put(f"/api/posts/{post_id}/like")
    favourited = await client.put(f"/api/posts/{post_id}/favourite")
    return liked.status_code == 200 and favourited.status_code == 200


async def _email_to(system: System, person: str) -> Any:
    for message in system.smtp.messages:
        if person in str(message["To"]) and message["List-Unsubscribe"]:
            return message
    return None
