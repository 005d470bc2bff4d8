"""Moderation after the fact: anyone who may read a post or comment reports it; moderators (a group in the
token) list reports, hide content with a reason its author sees, and restore it. Nothing is held back before."""

from __future__ import annotations

import uuid

import asyncpg

from services.posts import repository
from services.posts.comments import comment_from_row, comment_not_found
from services.posts.service import SOURCE, cursor_position, post_from_row, post_not_found
from shared.api import Person, Post, decode_cursor, encode_cursor
from shared.api_sharing import Comment, ModerationReport, ModerationReportPage, Report, ReportedContent
from shared.auth import Claims
from shared.db import Connection
from shared.directory import remember_person
from shared.events import ContentModeratedV1, EventType, new_envelope
from shared.http import ProblemError
from shared.outbox import add_to_outbox

RESTORED = "restored by a moderator"


def require_moderator(moderator: bool) -> None:
    if not moderator:
        raise ProblemError(403, "Forbidden", "only moderators may do this")


async def report(
    pool: asyncpg.Pool,
    *,
    reporter: Claims,
    moderator: bool,
    post_id: uuid.UUID | None = None,
    comment_id: uuid.UUID | None = None,
    reason: str,
) -> Report:
    """Report a post or a comment one may read; a second report while the first is open is the first."""
    async with pool.acquire() as conn, conn.transaction():
        if comment_id is not None:
            comment = await repository.fetch_comment(conn, comment_id, viewer_id=reporter.sub, moderator=moderator)
            if comment is None:
                raise comment_not_found(comment_id)
            post_id = comment["post_id"]
        else:
            assert post_id is not None
            if await repository.fetch_post(conn, post_id, viewer_id=reporter.sub, moderator=moderator) is None:
                raise post_not_found(post_id)
        assert post_id is not None
        await remember_person(conn, person_id=reporter.sub, name=reporter.name)
        row = await repository.insert_report(
            conn,
            report_id=uuid.uuid4(),
            post_id=post_id,
            comment_id=comment_id,
            reporter_id=reporter.sub,
            reason=reason,
        )
    return Report(**dict(row))


async def list_reports(
    pool: asyncpg.Pool, *, moderator: bool, status: str, cursor: str | None, limit: int
) -> ModerationReportPage:
    require_moderator(moderator)
    after = cursor_position(decode_cursor(cursor, arity=2))
    async with pool.acquire() as conn:
        rows = await repository.list_reports(conn, status=status, after=after, limit=limit + 1)
    items = [
        ModerationReport(
            id=row["id"],
            post_id=row["post_id"],
            comment_id=row["comment_id"],
            reason=row["reason"],
            status=row["status"],
            created_at=row["created_at"],
            reporter=Person(id=row["reporter_id"], name=row["reporter_name"]),
            content=ReportedContent(
                author=Person(id=row["content_author_id"], name=row["content_author_name"]),
                body=row["content_body"],
                hidden_reason=row["content_hidden_reason"],
                deleted=row["content_deleted"],
            ),
            closed_at=row["closed_at"],
            closed_by=row["closed_by"],
            resolution=row["resolution"],
        )
        for row in rows[:limit]
    ]
    next_cursor = encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    return ModerationReportPage(items=items, next_cursor=next_cursor)


async def _publish(
    conn: Connection,
    *,
    post_id: uuid.UUID,
    comment_id: uuid.UUID | None,
    author_id: str,
    hidden: bool,
    reason: str,
    version: int,
) -> None:
    event = ContentModeratedV1(
        post_id=post_id, comment_id=comment_id, author_id=author_id, hidden=hidden, reason=reason, version=version
    )
    subject = str(comment_id or post_id)
    await add_to_outbox(conn, new_envelope(EventType.CONTENT_MODERATED, source=SOURCE, subject=subject, data=event))


async def moderate_post(
    pool: asyncpg.Pool, *, user: Claims, moderator: bool, post_id: uuid.UUID, hide: bool, reason: str | None
) -> Post:
    """Hide a post with a reason, or restore it. Restoring a post that is not hidden keeps it and closes its
    reports. Moderators act on any post that exists, whatever its audience: it was reported to them."""
    require_moderator(moderator)
    async with pool.acquire() as conn, conn.transaction():
        post = await repository.lock_post_as_moderator(conn, post_id)
        if post is None:
            raise post_not_found(post_id)
        if hide or post["hidden_at"] is not None:
            said = (reason or "") if hide else (reason or RESTORED)
            version = await repository.set_post_hidden(conn, post_id, reason=said if hide else None)
            await _publish(
                conn,
                post_id=post_id,
                comment_id=None,
                author_id=post["author_id"],
                hidden=hide,
                reason=said,
                version=version,
            )
        await repository.close_reports(
            conn, post_id=post_id, comment_id=None, moderator_id=user.sub, resolution="hidden" if hide else "kept"
        )
        row = await repository.fetch_post_as_moderator(conn, post_id)
    assert row is not None
    return post_from_row(row)


async def moderate_comment(
    pool: asyncpg.Pool, *, user: Claims, moderator: bool, comment_id: uuid.UUID, hide: bool, reason: str | None
) -> Comment:
    """Hide a comment (its replies go with it from view) or restore it; as moderate_post."""
    require_moderator(moderator)
    async with pool.acquire() as conn, conn.transaction():
        found = await repository.fetch_comment_as_moderator(conn, comment_id)
        if found is None:
            raise comment_not_found(comment_id)
        # Post first, then comment: the order every use case locks in.
        await repository.lock_post_as_moderator(conn, found["post_id"])
        comment = await repository.lock_comment_as_moderator(conn, comment_id)
        if comment is None:
            raise comment_not_found(comment_id)
        if hide or comment["hidden_at"] is not None:
            said = (reason or "") if hide else (reason or RESTORED)
            version = await repository.set_comment_hidden(conn, comment_id, reason=said if hide else None)
            await _publish(
                conn,
                post_id=comment["post_id"],
                comment_id=comment_id,
                author_id=comment["author_id"],
                hidden=hide,
                reason=said,
                version=version,
            )
        await repository.close_reports(
            conn,
            post_id=comment["post_id"],
            comment_id=comment_id,
            moderator_id=user.sub,
            resolution="hidden" if hide else "kept",
        )
        row = await repository.fetch_comment_as_moderator(conn, comment_id)
    assert row is not None
    return comment_from_row(row)
