"""Likes on comments end to end: idempotent through the gateway, counted exactly, published as
comment.liked/unliked, and refused (404) for a comment outside the viewer's audience, deleted or hidden.

Comments reach the reactions service as comment.created.v1 from the posts service; these tests publish those
events straight to the exchange, as the posts service's outbox would, so they test this side alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from shared.events import (
    CommentCreatedV1,
    CommentDeletedV1,
    ContentModeratedV1,
    Envelope,
    EventType,
    PersonRef,
    PostKind,
    new_envelope,
)
from tests.harness import System, eventually, random_id
from tests.test_reliability import db, publish


def comment_created(
    *,
    post_id: uuid.UUID,
    post_author_id: str,
    author_id: str,
    post_kind: PostKind = "post",
    comment_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
) -> Envelope:
    comment_id = comment_id or uuid.uuid4()
    data = CommentCreatedV1(
        comment_id=comment_id,
        post_id=post_id,
        post_author_id=post_author_id,
        post_kind=post_kind,
        author=PersonRef(id=author_id, name=f"Name of {author_id}"),
        body="Godt innspill!",
        created_at=created_at or datetime.now(UTC),
        version=1,
    )
    return new_envelope(EventType.COMMENT_CREATED, source="posts", subject=str(comment_id), data=data)


def comment_deleted(*, comment_id: uuid.UUID, post_id: uuid.UUID, author_id: str, version: int = 2) -> Envelope:
    data = CommentDeletedV1(comment_id=comment_id, post_id=post_id, author_id=author_id, version=version)
    return new_envelope(EventType.COMMENT_DELETED, source="posts", subject=str(comment_id), data=data)


def moderated(
    *, post_id: uuid.UUID, author_id: str, hidden: bool, version: int, comment_id: uuid.UUID | None = None
) -> Envelope:
    data = ContentModeratedV1(
        post_id=post_id, comment_id=comment_id, author_id=author_id, hidden=hidden, reason="test", version=version
    )
    return new_envelope(EventType.CONTENT_MODERATED, source="posts", subject=str(comment_id or post_id), data=data)


async def create_post(
    system: System, token: str, *, kind: str = "post", audience: dict[str, Any] | None = None
) -> dict[str, Any]:
    async with system.client(token) as client:
        reply = await client.post(
            "/api/posts",
            json={"body": f"Et {kind} til test", "kind": kind, "audience": audience or {"type": "everyone"}},
        )
    assert reply.status_code == 201, reply.text
    return reply.json()


async def wait_for_comments(system: System, comment_ids: list[uuid.UUID]) -> None:
    async with db(system, "reactions") as conn:

        async def known() -> bool:
            count = await conn.fetchval(
                "SELECT count(*) FROM contents c JOIN posts p ON p.id = c.post_id"
                " WHERE c.id = ANY($1::uuid[]) AND c.created_at IS NOT NULL",
                comment_ids,
            )
            return bool(count == len(comment_ids))

        await eventually(known, timeout=30, interval=0.1, message="comments reach the reactions service")


async def add_comment(
    system: System, post: dict[str, Any], *, author_id: str, created_at: datetime | None = None
) -> uuid.UUID:
    """A comment as the posts service announces it, once the reactions service knows it."""
    envelope = comment_created(
        post_id=uuid.UUID(post["id"]),
        post_author_id=post["author"]["id"],
        post_kind=post["kind"],
        author_id=author_id,
        created_at=created_at,
    )
    await publish(system.namespace, [envelope])
    comment_id = uuid.UUID(envelope.data["comment_id"])
    await wait_for_comments(system, [comment_id])
    return comment_id


async def test_a_comment_like_is_idempotent_counted_exactly_and_published(system: System) -> None:
    author, commenter, kari, ola = (random_id(p) for p in ("author", "commenter", "kari", "ola"))
    post = await create_post(system, system.token(author))
    comment_id = await add_comment(system, post, author_id=commenter)
    path = f"/api/comments/{comment_id}/like"

    async with system.client(system.token(kari, name="Kari")) as client:
        first, again = await client.put(path), await client.put(path)
    assert first.status_code == 200, first.text
    assert first.json() == {"liked": True, "like_count": 1}
    assert again.json() == {"liked": True, "like_count": 1}, "liking twice is one like"
    async with system.client(system.token(ola, name="Ola")) as client:
        assert (await client.put(path)).json() == {"liked": True, "like_count": 2}
        assert (await client.delete(path)).json() == {"liked": False, "like_count": 1}
        assert (await client.delete(path)).json() == {"liked": False, "like_count": 1}, "unliking twice is one"

    async with db(system, "reactions") as conn:
        counter = await conn.fetchrow(
            "SELECT like_count, version FROM comment_counters WHERE comment_id = $1", comment_id
        )
        assert counter is not None
        assert (counter["like_count"], counter["version"]) == (1, 3), "one version per change, none per repeat"

        # The reactions service takes its own comment.liked/unliked events in as facts for the scores: they
        # were published, with the newest version winning.
        async def published() -> dict[str, tuple[bool, int]] | None:
            rows = await conn.fetch(
                "SELECT actor_id, active, version FROM like_states WHERE target_id = $1", comment_id
            )
            states = {r["actor_id"]: (r["active"], r["version"]) for r in rows}
            return states if states == {kari: (True, 1), ola: (False, 3)} else None

        await eventually(published, timeout=20, message="comment.liked/unliked published and consumed")


async def test_a_comment_outside_the_audience_deleted_or_hidden_cannot_be_liked(system: System) -> None:
    author, outsider, commenter = random_id("author"), random_id("outsider"), random_id("commenter")
    private = await create_post(system, system.token(author), audience={"type": "private"})
    open_post = await create_post(system, system.token(author))
    hidden_comment = await add_comment(system, open_post, author_id=commenter)
    deleted_comment = await add_comment(system, open_post, author_id=commenter)
    private_comment = await add_comment(system, private, author_id=author)

    async with system.client(system.token(outsider)) as client:
        reply = await client.put(f"/api/comments/{private_comment}/like")
        assert reply.status_code == 404, reply.text
        assert reply.headers["content-type"].startswith("application/problem+json")
        assert (await client.put(f"/api/comments/{uuid.uuid4()}/like")).status_code == 404
        assert (await client.put(f"/api/comments/{hidden_comment}/like")).json()["like_count"] == 1
    async with system.client(system.token(author)) as client:
        assert (await client.put(f"/api/comments/{private_comment}/like")).status_code == 200, "the author may"

    post_id = uuid.UUID(open_post["id"])
    await publish(
        system.namespace,
        [
            moderated(post_id=post_id, comment_id=hidden_comment, author_id=commenter, hidden=True, version=2),
            comment_deleted(comment_id=deleted_comment, post_id=post_id, author_id=commenter),
        ],
    )

    async def refused() -> bool:
        async with system.client(system.token(outsider)) as client:
            statuses = [
                (await client.put(f"/api/comments/{comment}/like")).status_code
                for comment in (hidden_comment, deleted_comment)
            ]
        return statuses == [404, 404]

    await eventually(refused, timeout=20, message="a hidden or deleted comment is no longer there to like")


async def test_comment_like_routes_validate_their_input(system: System) -> None:
    async with system.client(system.token()) as client:
        reply = await client.put("/api/comments/not-a-uuid/like")
    assert reply.status_code == 422
    async with system.client() as client:
        assert (await client.put(f"/api/comments/{uuid.uuid4()}/like")).status_code == 401
