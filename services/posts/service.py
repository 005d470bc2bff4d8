"""Use cases of the posts service: posts, praise, mentions and the projections it keeps from events.
Comments and questions are in comments.py, reports and moderation in moderation.py."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.posts import repository
from shared.api import CreatePost, Person, Post, PostPage, decode_cursor, encode_cursor
from shared.auth import Claims
from shared.db import Connection
from shared.directory import remember_person
from shared.events import (
    Audience,
    CommentReactionChangedV1,
    Event,
    EventType,
    PersonRef,
    PostAudienceChangedV1,
    PostCreatedV1,
    PostDeletedV1,
    ReactionChangedV1,
    TeamAudience,
    new_envelope,
    newest_by_version,
)
from shared.http import ProblemError
from shared.outbox import add_to_outbox

SOURCE = "posts"

# `@` then a person's id (the token's `sub`), not preceded by a word character or another `@` (so e-mail
# addresses are no mentions). A trailing dot or dash ends a sentence rather than the id.
MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9._-]{1,200})")
MAX_MENTIONS = 50


def mentioned_ids(body: str, *, author_id: str) -> list[str]:
    """The ids @mentioned in a body, in order, once each, leaving out the author."""
    found: dict[str, None] = {}
    for match in MENTION.finditer(body):
        person_id = match.group(1).rstrip(".-")
        if person_id and person_id != author_id:
            found[person_id] = None
    return list(found)[:MAX_MENTIONS]


async def resolve_mentions(
    conn: Connection, body: str, *, writer_id: str, post_author_id: str, audience: dict[str, Any]
) -> list[str]:
    """The mentioned people who exist and may see the post; every other @token stays plain text."""
    candidates = mentioned_ids(body, author_id=writer_id)
    if not candidates:
        return []
    rows = await repository.people_and_audience(conn, candidates, author_id=post_author_id, audience=audience)
    allowed = {row["id"] for row in rows if row["may_see"]}
    return [person_id for person_id in candidates if person_id in allowed]


def is_moderator(user: Claims, moderator_group: str) -> bool:
    return moderator_group in user.groups


def invalid(field: str, message: str, kind: str) -> ProblemError:
    return ProblemError(
        422,
        "Unprocessable Content",
        f"invalid input in {field}: {message}",
        errors=[{"field": field, "message": message, "type": kind}],
    )


def _people(value: Any) -> list[Person]:
    return [Person(id=p["id"], name=p["name"]) for p in value or []]


def post_from_row(row: asyncpg.Record) -> Post:
    return Post(
        id=row["id"],
        author=Person(id=row["author_id"], name=row["author_name"]),
        kind=row["kind"],
        body=row["body"],
        audience=row["audience"],
        created_at=row["created_at"],
        like_count=row["like_count"],
        favourite_count=row["favourite_count"],
        comment_count=row["comment_count"],
        recipients=_people(row["recipients"]),
        mentions=_people(row["mentions"]),
        accepted_comment_id=row["accepted_comment_id"],
        # Only its author and moderators read a hidden post at all.
        hidden_reason=row["hidden_reason"],
    )


def post_not_found(post_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not Found", f"post {post_id} does not exist")


def _check_author_may_address(author: Claims, audience: Audience) -> None:
    # The token's groups are the identity provider's word on membership at this moment.
    if isinstance(audience, TeamAudience) and audience.team not in author.groups:
        raise ProblemError(
            422,
            "Unprocessable Content",
            "invalid input in body.audience.team: you can only post to a team you belong to",
            errors=[{"field": "body.audience.team", "message": "you are not a member of this team", "type": "team"}],
        )


async def _check_recipients(
    conn: Connection, *, author: Claims, request: CreatePost, audience: dict[str, Any]
) -> list[PersonRef]:
    """Praise names 1-20 known people other than its author, each of whom the audience includes."""
    recipients = list(dict.fromkeys(request.recipients or []))
    if request.kind != "praise":
        if recipients:
            raise invalid("body.recipients", "only praise names recipients", "recipients")
        return []
    if not recipients:
        raise invalid("body.recipients", "praise names at least one recipient", "missing")
    if author.sub in recipients:
        raise invalid("body.recipients", "you cannot praise yourself", "recipients")
    rows = {
        row["id"]: row
        for row in await repository.people_and_audience(conn, recipients, author_id=author.sub, audience=audience)
    }
    if unknown := [person_id for person_id in recipients if person_id not in rows]:
        raise invalid("body.recipients", f"no such person: {', '.join(unknown)}", "recipients")
    if outside := [person_id for person_id in recipients if not rows[person_id]["may_see"]]:
        raise invalid("body.recipients", f"{', '.join(outside)} would not see this praise", "audience")
    return [PersonRef(id=person_id, name=rows[person_id]["name"]) for person_id in recipients]


async def create_post(pool: asyncpg.Pool, *, author: Claims, request: CreatePost) -> Post:
    _check_author_may_address(author, request.audience)
    post_id = uuid.uuid4()
    audience: dict[str, Any] = request.audience.model_dump()
    async with pool.acquire() as conn, conn.transaction():
        await remember_person(conn, person_id=author.sub, name=author.name)
        recipients = await _check_recipients(conn, author=author, request=request, audience=audience)
        mentions = await resolve_mentions(
            conn, request.body, writer_id=author.sub, post_author_id=author.sub, audience=audience
        )
        row = await repository.insert_post(
            conn,
            post_id=post_id,
            author_id=author.sub,
            kind=request.kind,
            body=request.body,
            audience=audience,
            mentions=mentions,
        )
        if recipients:
            await repository.insert_recipients(conn, post_id, [r.id for r in recipients])
        event = PostCreatedV1(
            post_id=post_id,
            author=PersonRef(id=author.sub, name=author.name),
            kind=request.kind,
            body=request.body,
            audience=request.audience,
            created_at=row["created_at"],
            version=row["version"],
            recipients=recipients,
            mentions=mentions,
        )
        await add_to_outbox(conn, new_envelope(EventType.POST_CREATED, source=SOURCE, subject=str(post_id), data=event))
        stored = await repository.fetch_post(conn, post_id, viewer_id=author.sub)
    assert stored is not None
    return post_from_row(stored)


async def get_post(pool: asyncpg.Pool, post_id: uuid.UUID, *, viewer: Claims, moderator: bool = False) -> Post:
    async with pool.acquire() as conn:
        row = await repository.fetch_post(conn, post_id, viewer_id=viewer.sub, moderator=moderator)
    if row is None:
        raise post_not_found(post_id)
    return post_from_row(row)


async def get_posts(
    pool: asyncpg.Pool, post_ids: Sequence[uuid.UUID], *, viewer: Claims, moderator: bool = False
) -> list[Post]:
    """The posts that exist and the viewer may see, in the order asked for."""
    async with pool.acquire() as conn:
        rows = {
            row["id"]: row
            for row in await repository.fetch_posts(conn, post_ids, viewer_id=viewer.sub, moderator=moderator)
        }
    return [post_from_row(rows[post_id]) for post_id in post_ids if post_id in rows]


async def praise_received(
    pool: asyncpg.Pool, person_id: str, *, viewer: Claims, moderator: bool, cursor: str | None, limit: int
) -> PostPage:
    """The praise a person received that the viewer may read, newest first."""
    parts = decode_cursor(cursor, arity=2)
    before = cursor_position(parts)
    async with pool.acquire() as conn:
        rows = await repository.praise_received(
            conn, person_id, viewer_id=viewer.sub, moderator=moderator, before=before, limit=limit + 1
        )
    items = [post_from_row(row) for row in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    return PostPage(items=items, next_cursor=next_cursor)


def cursor_position(parts: list[Any] | None) -> tuple[datetime, uuid.UUID] | None:
    """(created_at, id) from a cursor's parts; a cursor whose parts do not parse is not ours."""
    if parts is None or parts[0] is None:
        return None
    try:
        return (datetime.fromisoformat(str(parts[0])), uuid.UUID(str(parts[1])))
    except ValueError as exc:
        raise invalid("query.cursor", "not a cursor returned by this API", "cursor") from exc


async def delete_post(pool: asyncpg.Pool, *, post_id: uuid.UUID, user: Claims) -> None:
    async with pool.acquire() as conn, conn.transaction():
        post = await repository.lock_post(conn, post_id, viewer_id=user.sub)
        if post is None:
            raise post_not_found(post_id)
        if post["author_id"] != user.sub:
            raise ProblemError(403, "Forbidden", "only the author can delete a post")
        version = await repository.mark_deleted(conn, post_id)
        event = PostDeletedV1(post_id=post_id, author_id=post["author_id"], version=version)
        await add_to_outbox(conn, new_envelope(EventType.POST_DELETED, source=SOURCE, subject=str(post_id), data=event))


async def change_audience(pool: asyncpg.Pool, *, post_id: uuid.UUID, user: Claims, audience: Audience) -> Post:
    """The author widens or narrows who may see the post; every service follows by event. Praise keeps
    its recipients in the audience."""
    _check_author_may_address(user, audience)
    async with pool.acquire() as conn, conn.transaction():
        post = await repository.lock_post(conn, post_id, viewer_id=user.sub)
        if post is None:
            raise post_not_found(post_id)
        if post["author_id"] != user.sub:
            raise ProblemError(403, "Forbidden", "only the author can change who sees a post")
        if post["kind"] == "praise" and (
            outside := await repository.recipients_outside(conn, post_id, audience=audience.model_dump())
        ):
            raise invalid("body.audience", f"{', '.join(outside)} would not see this praise", "audience")
        version = await repository.change_audience(conn, post_id, audience.model_dump())
        event = PostAudienceChangedV1(post_id=post_id, author_id=user.sub, audience=audience, version=version)
        envelope = new_envelope(EventType.POST_AUDIENCE_CHANGED, source=SOURCE, subject=str(post_id), data=event)
        await add_to_outbox(conn, envelope)
        stored = await repository.fetch_post(conn, post_id, viewer_id=user.sub)
    assert stored is not None
    return post_from_row(stored)


async def apply_reaction_counts(conn: Connection, events: Sequence[Event]) -> None:
    changes = [event.data for event in events if isinstance(event.data, ReactionChangedV1)]
    newest = newest_by_version(changes, key=lambda c: c.post_id, version=lambda c: c.version)
    await repository.apply_count_versions(
        conn, [(c.post_id, c.like_count, c.favourite_count, c.version) for c in newest.values()]
    )


async def apply_comment_reaction_counts(conn: Connection, events: Sequence[Event]) -> None:
    changes = [event.data for event in events if isinstance(event.data, CommentReactionChangedV1)]
    newest = newest_by_version(changes, key=lambda c: c.comment_id, version=lambda c: c.version)
    await repository.apply_comment_count_versions(
        conn, [(c.comment_id, c.like_count, c.version) for c in newest.values()]
    )
