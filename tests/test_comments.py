"""Comments and mentions over the real services (issue 5, parts 1 and 2): replies one level deep, comments following
the post's audience, mentions only of people the audience includes, and comment like counts by version."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika

from shared.events import CommentLikedV1, CommentUnlikedV1, EventType, PersonRef, new_envelope
from tests.harness import System, eventually, random_id
from tests.test_reliability import publish


async def signed_in(system: System, person: str | None = None, **claims: Any) -> tuple[str, str]:
    """A person who has used the API once, and whom the posts service knows (name, teams): (id, token)."""
    person = person or random_id()
    token = system.token(person, name=f"Name {person}", **claims)
    async with system.client(token) as client:
        assert (await client.get("/api/me")).status_code == 200
    teams = sorted(set(claims.get("groups", [])))
    conn = await system.db("posts")
    try:

        async def known() -> bool:
            named = await conn.fetchval("SELECT version > 0 FROM people_directory WHERE id = $1", person)
            in_teams = await conn.fetchval("SELECT teams FROM team_members WHERE person_id = $1", person)
            return bool(named) and (not teams or sorted(in_teams or []) == teams)

        await eventually(known, message=f"the posts service knows {person}")
    finally:
        await conn.close()
    return person, token


async def ok(system: System, token: str, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
    async with system.client(token) as client:
        reply = await client.request(method, path, **kwargs)
    assert reply.status_code == status, f"{method} {path}: {reply.status_code} {reply.text}"
    return reply.json() if reply.content else None


async def problem(system: System, token: str, method: str, path: str, status: int, **kwargs: Any) -> dict[str, Any]:
    async with system.client(token) as client:
        reply = await client.request(method, path, **kwargs)
    assert reply.status_code == status, f"{method} {path}: {reply.status_code} {reply.text}"
    assert reply.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = reply.json()
    return body


def fields(problem_body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in problem_body.get("errors", [])]


class Events:
    """Every event of some types published from now on, as envelopes (a queue bound to `<namespace>.events`)."""

    def __init__(self, system: System, *routing_keys: str) -> None:
        self.system = system
        self.routing_keys = routing_keys
        self.received: list[dict[str, Any]] = []

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[Events]:
        connection = await aio_pika.connect(self.system.rabbitmq_url)
        try:
            channel = await connection.channel()
            exchange = await channel.get_exchange(f"{self.system.namespace}.events")
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            for key in self.routing_keys:
                await queue.bind(exchange, routing_key=key)

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                async with message.process():
                    self.received.append(json.loads(message.body))

            await queue.consume(on_message)
            yield self
        finally:
            await connection.close()

    async def one(self, event_type: str, subject: str) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            matches = [e for e in self.received if e["type"] == event_type and e["subject"] == subject]
            return matches[-1] if matches else None

        envelope: dict[str, Any] = await eventually(found, message=f"{event_type} about {subject}")
        return envelope


async def test_comment_reply_and_list(system: System) -> None:
    _, author_token = await signed_in(system)
    _, commenter_token = await signed_in(system)
    replier, replier_token = await signed_in(system)
    post = await ok(system, author_token, "POST", "/api/posts", 201, json={"body": "Hvem kan hjelpe med budsjettet?"})
    top = await ok(
        system, commenter_token, "POST", f"/api/posts/{post['id']}/comments", 201, json={"body": "  Jeg kan!  "}
    )
    assert top["body"] == "Jeg kan!" and top["parent_id"] is None and top["post_id"] == post["id"]
    assert top["like_count"] == 0 and top["accepted"] is False and top["hidden_reason"] is None
    reply = await ok(
        system,
        replier_token,
        "POST",
        f"/api/posts/{post['id']}/comments",
        201,
        json={"body": "Jeg også", "parent_id": top["id"]},
    )
    assert reply["parent_id"] == top["id"] and reply["author"]["id"] == replier
    second = await ok(system, author_token, "POST", f"/api/posts/{post['id']}/comments", 201, json={"body": "Takk"})

    too_deep = await problem(
        system,
        author_token,
        "POST",
        f"/api/posts/{post['id']}/comments",
        422,
        json={"body": "Dypt", "parent_id": reply["id"]},
    )
    assert fields(too_deep) == ["body.parent_id"]
    empty = await problem(system, author_token, "POST", f"/api/posts/{post['id']}/comments", 422, json={"body": "  "})
    assert fields(empty) == ["body.body"]
    long = await problem(
        system, author_token, "POST", f"/api/posts/{post['id']}/comments", 422, json={"body": "x" * 5001}
    )
    assert fields(long) == ["body.body"]

    page = await ok(system, author_token, "GET", f"/api/posts/{post['id']}/comments")
    assert [c["id"] for c in page["items"]] == [top["id"], second["id"]] and page["next_cursor"] is None
    assert [r["id"] for r in page["items"][0]["replies"]] == [reply["id"]]
    first_page = await ok(system, author_token, "GET", f"/api/posts/{post['id']}/comments", params={"limit": 1})
    assert [c["id"] for c in first_page["items"]] == [top["id"]]
    rest = await ok(
        system,
        author_token,
        "GET",
        f"/api/posts/{post['id']}/comments",
        params={"limit": 1, "cursor": first_page["next_cursor"]},
    )
    assert [c["id"] for c in rest["items"]] == [second["id"]] and rest["next_cursor"] is None
    assert (await ok(system, author_token, "GET", f"/api/posts/{post['id']}"))["comment_count"] == 3

    await problem(system, replier_token, "DELETE", f"/api/comments/{top['id']}", 403)
    await ok(system, commenter_token, "DELETE", f"/api/comments/{top['id']}", 204)
    page = await ok(system, author_token, "GET", f"/api/posts/{post['id']}/comments")
    assert [c["id"] for c in page["items"]] == [second["id"]], "the reply went with its comment"
    assert (await ok(system, author_token, "GET", f"/api/posts/{post['id']}"))["comment_count"] == 1
    await problem(system, replier_token, "DELETE", f"/api/comments/{reply['id']}", 404)


async def test_comments_of_a_post_outside_the_audience_are_404_everywhere(system: System) -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    author, author_token = await signed_in(system, groups=[team])
    member, member_token = await signed_in(system, groups=[team])
    _, outsider_token = await signed_in(system)
    post = await ok(
        system,
        author_token,
        "POST",
        "/api/posts",
        201,
        json={"body": "Bare for teamet", "kind": "question", "audience": {"type": "team", "team": team}},
    )
    comment = await ok(system, member_token, "POST", f"/api/posts/{post['id']}/comments", 201, json={"body": "Svar"})
    never = str(uuid.uuid4())
    for method, path, body in (
        ("GET", "/api/posts/{post}/comments", None),
        ("POST", "/api/posts/{post}/comments", {"body": "Hei"}),
        ("POST", "/api/posts/{post}/comments", {"body": "Hei", "parent_id": comment["id"]}),
        ("DELETE", "/api/comments/{comment}", None),
        ("POST", "/api/comments/{comment}/reports", {"reason": "Spam"}),
        ("POST", "/api/posts/{post}/reports", {"reason": "Spam"}),
        ("PUT", "/api/posts/{post}/accepted-answer", {"comment_id": comment["id"]}),
    ):
        hidden = await problem(
            system,
            outsider_token,
            method,
            path.format(post=post["id"], comment=comment["id"]),
            404,
            **({"json": body} if body else {}),
        )
        missing = await problem(
            system,
            outsider_token,
            method,
            path.format(post=never, comment=never),
            404,
            **({"json": body} if body else {}),
        )
        assert hidden["detail"].replace(post["id"], never).replace(comment["id"], never) == missing["detail"]
        assert (
            author not in json.dumps(hidden) and "teamet" not in json.dumps(hidden) and team not in json.dumps(hidden)
        )
    # A block hides the post and its comments as well.
    await ok(system, author_token, "PUT", f"/api/people/{member}/block")

    async def blocked() -> bool:
        async with system.client(member_token) as client:
            return (await client.get(f"/api/posts/{post['id']}/comments")).status_code == 404

    await eventually(blocked, message="the block reached the posts service")


async def test_a_mention_outside_the_audience_is_neither_published_nor_shown(system: System) -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    author, author_token = await signed_in(system, groups=[team])
    member, member_token = await signed_in(system, groups=[team])
    outsider, _ = await signed_in(system)
    unknown = random_id("nobody")
    async with Events(system, "post.created.v1", "comment.created.v1").listening() as events:
        await asyncio.sleep(0.2)
        post = await ok(
            system,
            author_token,
            "POST",
            "/api/posts",
            201,
            json={
                "body": f"Til @{member} og @{outsider}, og @{unknown}. Skriv til a@{member} her.",
                "audience": {"type": "team", "team": team},
            },
        )
        assert [p["id"] for p in post["mentions"]] == [member]
        comment = await ok(
            system,
            member_token,
            "POST",
            f"/api/posts/{post['id']}/comments",
            201,
            json={"body": f"@{author}: enig! Spør @{outsider}?"},
        )
        assert comment["mentions"] == [{"id": author, "name": f"Name {author}"}]
        created = await events.one("post.created.v1", post["id"])
        commented = await events.one("comment.created.v1", comment["id"])
    assert created["data"]["mentions"] == [member]
    assert commented["data"]["mentions"] == [author]
    for envelope in (created, commented):
        assert outsider not in envelope["data"]["mentions"] and unknown not in envelope["data"]["mentions"]
    assert commented["data"]["post_author_id"] == author and commented["data"]["post_kind"] == "post"
    listed = await ok(system, author_token, "GET", f"/api/posts/{post['id']}/comments")
    assert listed["items"][0]["mentions"] == [{"id": author, "name": f"Name {author}"}]
    # The text stays as it was written.
    assert f"@{outsider}" in listed["items"][0]["body"]


async def test_a_comment_names_the_earlier_commenters_who_may_still_see_the_post(system: System) -> None:
    author, author_token = await signed_in(system)
    first, first_token = await signed_in(system)
    second, second_token = await signed_in(system)
    post = await ok(system, author_token, "POST", "/api/posts", 201, json={"body": "Innspill?"})
    async with Events(system, "comment.created.v1").listening() as events:
        await asyncio.sleep(0.2)
        await ok(system, first_token, "POST", f"/api/posts/{post['id']}/comments", 201, json={"body": "En"})
        await ok(system, author_token, "POST", f"/api/posts/{post['id']}/comments", 201, json={"body": "To"})
        third = await ok(system, second_token, "POST", f"/api/posts/{post['id']}/comments", 201, json={"body": "Tre"})
        envelope = await events.one("comment.created.v1", third["id"])
    assert envelope["data"]["earlier_commenter_ids"] == [first, author]
    assert envelope["data"]["author"]["id"] == second


async def test_comment_like_counts_take_the_newest_version_whatever_the_order(system: System) -> None:
    _, author_token = await signed_in(system)
    post = await ok(system, author_token, "POST", "/api/posts", 201, json={"body": "Liker du kommentaren?"})
    comment = await ok(system, author_token, "POST", f"/api/posts/{post['id']}/comments", 201, json={"body": "Ja"})
    envelopes = []
    for version, count in enumerate([1, 2, 3, 2, 4, 3], start=1):
        liked = version in (1, 2, 3, 5)
        model, event_type = (
            (CommentLikedV1, EventType.COMMENT_LIKED) if liked else (CommentUnlikedV1, EventType.COMMENT_UNLIKED)
        )
        data = model(
            comment_id=uuid.UUID(comment["id"]),
            post_id=uuid.UUID(post["id"]),
            comment_author_id=comment["author"]["id"],
            actor=PersonRef(id=random_id(), name="Liker"),
            like_count=count,
            version=version,
            occurred_at=datetime.now(UTC),
        )
        envelopes.append(new_envelope(event_type, source="reactions", subject=comment["id"], data=data))
    shuffled = envelopes + envelopes[:3]
    random.shuffle(shuffled)
    await publish(system.namespace, shuffled)

    async def counted() -> bool:
        async with system.client(author_token) as client:
            page = (await client.get(f"/api/posts/{post['id']}/comments")).json()
        return bool(page["items"]) and page["items"][0]["like_count"] == 3

    await eventually(counted, message="the newest version's count (3)")
    await asyncio.sleep(0.5)
    assert await counted(), "a stale event changed the count"
