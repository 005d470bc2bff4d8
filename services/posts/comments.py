"""Use cases of comments (one level of replies) and of questions' accepted answers."""

from __future__ import annotations

import uuid
from collections import defaultdict

import asyncpg

from services.posts import repository
from services.posts.service import (
    SOURCE,
    cursor_position,
    invalid,
    post_from_row,
    post_not_found,
    resolve_mentions,
)
from shared.api import Person, Post, decode_cursor, encode_cursor
from shared.api_sharing import Comment, CommentPage, CommentThread, CreateComment
from shared.auth import Claims
from shared.db import Connection
from shared.directory import remember_person
from shared.events import (
    AnswerAcceptedV1,
    CommentCreatedV1,
    CommentDeletedV1,
    EventType,
    PersonRef,
    new_envelope,
)
from shared.http import ProblemError
from shared.outbox import add_to_outbox


def comment_from_row(row: asyncpg.Record, cls: type[Comment] = Comment) -> Comment:
    return cls(
        id=row["id"],
        post_id=row["post_id"],
        parent_id=row["parent_id"],
        author=Person(id=row["author_id"], name=row["author_name"]),
        body=row["body"],
        created_at=row["created_at"],
        like_count=row["like_count"],
        accepted=row["accepted"],
        mentions=[Person(id=p["id"], name=p["name"]) for p in row["mentions"] or []],
        # Only its author and moderators read a hidden comment at all.
        hidden_reason=row["hidden_reason"],
    )


def comment_not_found(comment_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not Found", f"comment {comment_id} does not exist")


async def create_comment(
    pool: asyncpg.Pool, *, author: Claims, moderator: bool, post_id: uuid.UUID, request: CreateComment
) -> Comment:
    comment_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        # The post's lock orders comments and acceptances of one post (always post first, then comment).
        post = await repository.lock_post(conn, post_id, viewer_id=author.sub, moderator=moderator)
        if post is None:
            raise post_not_found(post_id)
        await remember_person(conn, person_id=author.sub, name=author.name)
        if request.parent_id is not None:
            parent = await repository.lock_comment(conn, request.parent_id, viewer_id=author.sub, moderator=moderator)
            if parent is None or parent["post_id"] != post_id:
                raise invalid("body.parent_id", "no such comment on this post", "parent")
            if parent["parent_id"] is not None:
                raise invalid(
                    "body.parent_id", "replies go one level deep: reply to the top-level comment instead", "parent"
                )
        mentions = await resolve_mentions(
            conn, request.body, writer_id=author.sub, post_author_id=post["author_id"], audience=post["audience"]
        )
        earlier = await repository.earlier_commenters(
            conn, post_id, except_id=author.sub, author_id=post["author_id"], audience=post["audience"]
        )
        row = await repository.insert_comment(
            conn,
            comment_id=comment_id,
            post_id=post_id,
            parent_id=request.parent_id,
            author_id=author.sub,
            body=request.body,
            mentions=mentions,
        )
        event = CommentCreatedV1(
            comment_id=comment_id,
            post_id=post_id,
            post_author_id=post["author_id"],
            post_kind=post["kind"],
            parent_id=request.parent_id,
            author=PersonRef(id=author.sub, name=author.name),
            body=request.body,
            mentions=mentions,
            earlier_commenter_ids=earlier,
            created_at=row["created_at"],
            version=row["version"],
        )
        envelope = new_envelope(EventType.COMMENT_CREATED, source=SOURCE, subject=str(comment_id), data=event)
        await add_to_outbox(conn, envelope)
        stored = await repository.fetch_comment(conn, comment_id, viewer_id=author.sub, moderator=moderator)
    assert stored is not None
    return comment_from_row(stored)


async def list_comments(
    pool: asyncpg.Pool, *, viewer: Claims, moderator: bool, post_id: uuid.UUID, cursor: str | None, limit: int
) -> CommentPage:
    """Top-level comments oldest first, each with its replies; a question's accepted answer leads."""
    parts = decode_cursor(cursor, arity=2)
    after = cursor_position(parts)
    async with pool.acquire() as conn:
        post = await repository.fetch_post(conn, post_id, viewer_id=viewer.sub, moderator=moderator)
        if post is None:
            raise post_not_found(post_id)
        first = post["accepted_comment_id"] if post["kind"] == "question" else None
        rows = await repository.top_level_comments(
            conn,
            post_id,
            viewer_id=viewer.sub,
            moderator=moderator,
            after=after,
            first_page=parts is None,
            first=first,
            limit=limit + 1,
        )
        page = rows[:limit]
        reply_rows = await repository.replies(
            conn, [row["id"] for row in page], viewer_id=viewer.sub, moderator=moderator
        )
    replies: dict[uuid.UUID, list[Comment]] = defaultdict(list)
    for row in reply_rows:
        replies[row["parent_id"]].append(comment_from_row(row))
    items = []
    for row in page:
        thread = comment_from_row(row, CommentThread)
        assert isinstance(thread, CommentThread)
        thread.replies = replies[row["id"]]
        items.append(thread)
    next_cursor = None
    if len(rows) > limit:
        # The accepted answer stands outside the order: the next page continues after the last other comment.
        ordered = [row for row in page if parts is not None or row["id"] != first]
        next_cursor = (
            encode_cursor(ordered[-1]["created_at"], ordered[-1]["id"]) if ordered else encode_cursor(None, None)
        )
    return CommentPage(items=items, next_cursor=next_cursor)


async def _withdraw_acceptance(conn: Connection, *, post_id: uuid.UUID, question_author_id: str, by: str) -> None:
    changed = await repository.set_accepted_answer(conn, post_id, None)
    event = AnswerAcceptedV1(
        post_id=post_id,
        question_author_id=question_author_id,
        comment_id=None,
        answerer_id=None,
        accepted_by=by,
        accepted_at=changed["at"],
        version=changed["version"],
    )
    await add_to_outbox(conn, new_envelope(EventType.ANSWER_ACCEPTED, source=SOURCE, subject=str(post_id), data=event))


async def delete_comment(pool: asyncpg.Pool, *, user: Claims, moderator: bool, comment_id: uuid.UUID) -> None:
    """Its author or a moderator deletes a comment, and with it its replies."""
    async with pool.acquire() as conn, conn.transaction():
        found = await repository.fetch_comment(conn, comment_id, viewer_id=user.sub, moderator=moderator)
        if found is None:
            raise comment_not_found(comment_id)
        post = await repository.lock_post(conn, found["post_id"], viewer_id=user.sub, moderator=moderator)
        comment = await repository.lock_comment(conn, comment_id, viewer_id=user.sub, moderator=moderator)
        if post is None or comment is None:
            raise comment_not_found(comment_id)
        if comment["author_id"] != user.sub and not moderator:
            raise ProblemError(403, "Forbidden", "only its author or a moderator can delete a comment")
        deleted = await repository.mark_comments_deleted(conn, comment_id)
        for row in deleted:
            event = CommentDeletedV1(
                comment_id=row["id"], post_id=row["post_id"], author_id=row["author_id"], version=row["version"]
            )
            envelope = new_envelope(EventType.COMMENT_DELETED, source=SOURCE, subject=str(row["id"]), data=event)
            await add_to_outbox(conn, envelope)
        if post["accepted_comment_id"] in {row["id"] for row in deleted}:
            await _withdraw_acceptance(conn, post_id=post["id"], question_author_id=post["author_id"], by=user.sub)


async def _lock_question(conn: Connection, *, user: Claims, moderator: bool, post_id: uuid.UUID) -> asyncpg.Record:
    post = await repository.lock_post(conn, post_id, viewer_id=user.sub, moderator=moderator)
    if post is None:
        raise post_not_found(post_id)
    if post["author_id"] != user.sub and not moderator:
        raise ProblemError(403, "Forbidden", "only the question's author or a moderator can accept an answer")
    if post["kind"] != "question":
        raise ProblemError(409, "Conflict", f"post {post_id} is a {post['kind']}: only a question has an answer")
    return post


async def _question(conn: Connection, post_id: uuid.UUID, *, viewer: Claims, moderator: bool) -> Post:
    row = await repository.fetch_post(conn, post_id, viewer_id=viewer.sub, moderator=moderator)
    assert row is not None
    return post_from_row(row)


async def accept_answer(
    pool: asyncpg.Pool, *, user: Claims, moderator: bool, post_id: uuid.UUID, comment_id: uuid.UUID
) -> Post:
    """The question's author (or a moderator) marks a top-level comment by someone else as the answer."""
    async with pool.acquire() as conn, conn.transaction():
        post = await _lock_question(conn, user=user, moderator=moderator, post_id=post_id)
        comment = await repository.lock_comment(conn, comment_id, viewer_id=user.sub, moderator=moderator)
        if comment is None or comment["post_id"] != post_id:
            raise invalid("body.comment_id", "no such comment on this question", "comment")
        if comment["parent_id"] is not None:
            raise invalid("body.comment_id", "a reply cannot be the answer: accept a top-level comment", "comment")
        if comment["author_id"] == post["author_id"]:
            raise invalid("body.comment_id", "the question's author cannot answer their own question", "comment")
        if comment["hidden_at"] is not None:
            raise invalid("body.comment_id", "a hidden comment cannot be the answer", "comment")
        if post["accepted_comment_id"] != comment_id:
            changed = await repository.set_accepted_answer(conn, post_id, comment_id)
            event = AnswerAcceptedV1(
                post_id=post_id,
                question_author_id=post["author_id"],
                comment_id=comment_id,
                answerer_id=comment["author_id"],
                accepted_by=user.sub,
                accepted_at=changed["at"],
                version=changed["version"],
            )
            envelope = new_envelope(EventType.ANSWER_ACCEPTED, source=SOURCE, subject=str(post_id), data=event)
            await add_to_outbox(conn, envelope)
        return await _question(conn, post_id, viewer=user, moderator=moderator)


async def withdraw_answer(pool: asyncpg.Pool, *, user: Claims, moderator: bool, post_id: uuid.UUID) -> Post:
    async with pool.acquire() as conn, conn.transaction():
        post = await _lock_question(conn, user=user, moderator=moderator, post_id=post_id)
        if post["accepted_comment_id"] is not None:
            await _withdraw_acceptance(conn, post_id=post_id, question_author_id=post["author_id"], by=user.sub)
        return await _question(conn, post_id, viewer=user, moderator=moderator)
