"""Live Q&A with a leader: in a window people ask (optionally anonymously), others upvote, the host answers.

An anonymous question's asker is stored, because moderators must be able to stop abuse, but it is shown to
nobody else (the host included) and never published."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import asyncpg

from services.posts import campaigns_repository as repository
from services.posts.campaigns import check_in_future, check_may_address, require_leader
from shared.api import Person, decode_cursor, encode_cursor
from shared.api_campaigns import (
    AnswerQuestion,
    AskQuestion,
    CreateQnaSession,
    QnaQuestion,
    QnaQuestionPage,
    QnaSession,
    UpvoteState,
)
from shared.auth import Claims
from shared.db import Connection
from shared.directory import remember_person
from shared.events import EventType, PersonRef, QnaQuestionAnsweredV1, new_envelope
from shared.http import ProblemError
from shared.outbox import add_to_outbox

SOURCE = "posts"


def session_not_found(session_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not Found", f"Q&A session {session_id} does not exist")


def question_not_found(question_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not Found", f"question {question_id} does not exist")


def _session(row: asyncpg.Record) -> QnaSession:
    return QnaSession(
        id=row["id"],
        title=row["title"],
        host=Person(id=row["host_id"], name=row["host_name"]),
        audience=row["audience"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        created_at=row["created_at"],
        state=row["state"],
        question_count=row["question_count"],
        answered_count=row["answered_count"],
    )


def _question(row: asyncpg.Record, *, viewer: Claims, moderator: bool) -> QnaQuestion:
    asker = Person(id=row["asker_id"], name=row["asker_name"])
    shown = not row["anonymous"] or moderator
    return QnaQuestion(
        id=row["id"],
        session_id=row["session_id"],
        body=row["body"],
        anonymous=row["anonymous"],
        asker=asker if shown else None,
        asker_moderator_only=row["anonymous"] and moderator,
        mine=row["asker_id"] == viewer.sub,
        upvotes=row["upvotes"],
        upvoted_by_me=row["upvoted_by_me"],
        answer=row["answer"],
        answered_at=row["answered_at"],
        created_at=row["created_at"],
    )


async def _visible_session(conn: Connection, session_id: uuid.UUID, *, viewer: Claims) -> asyncpg.Record:
    row = await repository.fetch_session(conn, session_id, viewer_id=viewer.sub)
    if row is None:
        raise session_not_found(session_id)
    return row


async def open_session(pool: asyncpg.Pool, *, host: Claims, request: CreateQnaSession, leader_group: str) -> QnaSession:
    require_leader(host, leader_group=leader_group, what="host a live Q&A")
    check_may_address(host, request.audience)
    check_in_future(request.ends_at, field="body.ends_at")
    session_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await remember_person(conn, person_id=host.sub, name=host.name)
        await repository.insert_session(
            conn,
            session_id=session_id,
            host_id=host.sub,
            title=request.title,
            audience=request.audience.model_dump(),
            starts_at=request.starts_at,
            ends_at=request.ends_at,
        )
        stored = await repository.fetch_session(conn, session_id, viewer_id=host.sub)
    assert stored is not None
    return _session(stored)


async def get_session(pool: asyncpg.Pool, session_id: uuid.UUID, *, viewer: Claims) -> QnaSession:
    async with pool.acquire() as conn:
        return _session(await _visible_session(conn, session_id, viewer=viewer))


async def ask(
    pool: asyncpg.Pool, session_id: uuid.UUID, *, asker: Claims, request: AskQuestion, moderator: bool
) -> QnaQuestion:
    async with pool.acquire() as conn, conn.transaction():
        session = await _visible_session(conn, session_id, viewer=asker)
        if session["state"] != "open":
            window = f"{session['starts_at'].isoformat()} to {session['ends_at'].isoformat()}"
            raise ProblemError(409, "Conflict", f"the Q&A takes questions from {window} only")
        question_id = uuid.uuid4()
        await remember_person(conn, person_id=asker.sub, name=asker.name)
        await repository.insert_question(
            conn,
            question_id=question_id,
            session_id=session_id,
            asker_id=asker.sub,
            anonymous=request.anonymous,
            body=request.body,
        )
        stored = await repository.fetch_question(conn, question_id, viewer_id=asker.sub)
    assert stored is not None
    return _question(stored, viewer=asker, moderator=moderator)


async def list_questions(
    pool: asyncpg.Pool,
    session_id: uuid.UUID,
    *,
    viewer: Claims,
    moderator: bool,
    state: Literal["open", "answered"] | None,
    cursor: str | None,
    limit: int,
) -> QnaQuestionPage:
    """Unanswered first, most upvoted first, ties the older first; then the answered. Upvotes move questions
    between pages while one reads; a keyset cursor then skips or repeats at most the questions that moved."""
    after = decode_cursor(cursor, arity=4)
    async with pool.acquire() as conn:
        await _visible_session(conn, session_id, viewer=viewer)
        rows = await repository.list_questions(
            conn,
            session_id,
            viewer_id=viewer.sub,
            state=state,
            after=(int(after[0]), int(after[1]), datetime.fromisoformat(after[2]), uuid.UUID(after[3]))
            if after
            else None,
            limit=limit + 1,
        )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["answered"], last["upvotes"], last["created_at"].isoformat(), str(last["id"]))
    items = [_question(row, viewer=viewer, moderator=moderator) for row in rows[:limit]]
    return QnaQuestionPage(items=items, next_cursor=next_cursor)


async def upvote(
    pool: asyncpg.Pool, session_id: uuid.UUID, question_id: uuid.UUID, *, user: Claims, on: bool
) -> UpvoteState:
    """Idempotent: one upvote per person. Nobody upvotes their own question, and upvoting ends with the window
    (taking one back does not)."""
    async with pool.acquire() as conn, conn.transaction():
        session = await _visible_session(conn, session_id, viewer=user)
        question = await repository.lock_question(conn, session_id, question_id)
        if question is None:
            raise question_not_found(question_id)
        if on:
            if question["asker_id"] == user.sub:
                raise ProblemError(403, "Forbidden", "you cannot upvote your own question")
            if session["state"] != "open":
                raise ProblemError(409, "Conflict", "the Q&A has ended; upvotes are closed")
            upvotes = await repository.add_upvote(conn, question_id, person_id=user.sub)
        else:
            upvotes = await repository.remove_upvote(conn, question_id, person_id=user.sub)
    return UpvoteState(upvoted=on, upvotes=upvotes)


async def answer(
    pool: asyncpg.Pool,
    session_id: uuid.UUID,
    question_id: uuid.UUID,
    *,
    host: Claims,
    request: AnswerQuestion,
    moderator: bool,
) -> QnaQuestion:
    """The host answers a question once; the asker is told unless they asked anonymously."""
    async with pool.acquire() as conn, conn.transaction():
        session = await _visible_session(conn, session_id, viewer=host)
        if session["host_id"] != host.sub:
            raise ProblemError(403, "Forbidden", "only the host answers questions")
        question = await repository.lock_question(conn, session_id, question_id)
        if question is None:
            raise question_not_found(question_id)
        if question["answered_at"] is not None:
            raise ProblemError(409, "Conflict", f"question {question_id} was answered already")
        answered_at = await repository.answer_question(conn, question_id, answer=request.answer)
        event = QnaQuestionAnsweredV1(
            session_id=session_id,
            question_id=question_id,
            # An anonymous asker is never published, not even to the notifications service.
            asker_id=None if question["anonymous"] else question["asker_id"],
            host=PersonRef(id=host.sub, name=host.name),
            answered_at=answered_at,
        )
        envelope = new_envelope(EventType.QNA_QUESTION_ANSWERED, source=SOURCE, subject=str(question_id), data=event)
        await add_to_outbox(conn, envelope)
        stored = await repository.fetch_question(conn, question_id, viewer_id=host.sub)
    assert stored is not None
    return _question(stored, viewer=host, moderator=moderator)
