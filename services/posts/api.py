"""HTTP endpoints of the posts service (reached through the gateway)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from services.posts import comments, moderation, service
from services.posts.campaigns_api import router as campaigns_router
from shared.api import ChangeAudience, CreatePost, Post, PostPage
from shared.api_sharing import (
    AcceptAnswer,
    Comment,
    CommentPage,
    CreateComment,
    ModerationReportPage,
    Reason,
    Report,
)
from shared.auth import Claims, CurrentUser

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=100)]
PersonId = Annotated[str, Path(min_length=1, max_length=200)]


def _moderator(request: Request, user: Claims) -> bool:
    return service.is_moderator(user, request.app.state.settings.moderator_group)


@router.post("/posts", status_code=201)
async def create_post(request: Request, body: CreatePost, user: CurrentUser) -> Post:
    return await service.create_post(request.app.state.pool, author=user, request=body)


@router.get("/posts")
async def get_posts(
    request: Request, user: CurrentUser, ids: Annotated[list[uuid.UUID], Query(max_length=200)]
) -> list[Post]:
    return await service.get_posts(request.app.state.pool, ids, viewer=user, moderator=_moderator(request, user))


@router.get("/posts/{post_id}")
async def get_post(request: Request, post_id: uuid.UUID, user: CurrentUser) -> Post:
    return await service.get_post(request.app.state.pool, post_id, viewer=user, moderator=_moderator(request, user))


@router.delete("/posts/{post_id}", status_code=204)
async def delete_post(request: Request, post_id: uuid.UUID, user: CurrentUser) -> Response:
    await service.delete_post(request.app.state.pool, post_id=post_id, user=user)
    return Response(status_code=204)


@router.patch("/posts/{post_id}")
async def change_audience(request: Request, post_id: uuid.UUID, body: ChangeAudience, user: CurrentUser) -> Post:
    return await service.change_audience(request.app.state.pool, post_id=post_id, user=user, audience=body.audience)


@router.get("/people/{person_id}/praise")
async def praise_received(
    request: Request, person_id: PersonId, user: CurrentUser, cursor: str | None = None, limit: Limit = 20
) -> PostPage:
    return await service.praise_received(
        request.app.state.pool,
        person_id,
        viewer=user,
        moderator=_moderator(request, user),
        cursor=cursor,
        limit=limit,
    )


@router.post("/posts/{post_id}/comments", status_code=201)
async def create_comment(request: Request, post_id: uuid.UUID, body: CreateComment, user: CurrentUser) -> Comment:
    return await comments.create_comment(
        request.app.state.pool, author=user, moderator=_moderator(request, user), post_id=post_id, request=body
    )


@router.get("/posts/{post_id}/comments")
async def list_comments(
    request: Request, post_id: uuid.UUID, user: CurrentUser, cursor: str | None = None, limit: Limit = 20
) -> CommentPage:
    return await comments.list_comments(
        request.app.state.pool,
        viewer=user,
        moderator=_moderator(request, user),
        post_id=post_id,
        cursor=cursor,
        limit=limit,
    )


@router.delete("/comments/{comment_id}", status_code=204)
async def delete_comment(request: Request, comment_id: uuid.UUID, user: CurrentUser) -> Response:
    await comments.delete_comment(
        request.app.state.pool, user=user, moderator=_moderator(request, user), comment_id=comment_id
    )
    return Response(status_code=204)


@router.put("/posts/{post_id}/accepted-answer")
async def accept_answer(request: Request, post_id: uuid.UUID, body: AcceptAnswer, user: CurrentUser) -> Post:
    return await comments.accept_answer(
        request.app.state.pool,
        user=user,
        moderator=_moderator(request, user),
        post_id=post_id,
        comment_id=body.comment_id,
    )


@router.delete("/posts/{post_id}/accepted-answer")
async def withdraw_answer(request: Request, post_id: uuid.UUID, user: CurrentUser) -> Post:
    return await comments.withdraw_answer(
        request.app.state.pool, user=user, moderator=_moderator(request, user), post_id=post_id
    )


@router.post("/posts/{post_id}/reports", status_code=202)
async def report_post(request: Request, post_id: uuid.UUID, body: Reason, user: CurrentUser) -> Report:
    return await moderation.report(
        request.app.state.pool,
        reporter=user,
        moderator=_moderator(request, user),
        post_id=post_id,
        reason=body.reason,
    )


@router.post("/comments/{comment_id}/reports", status_code=202)
async def report_comment(request: Request, comment_id: uuid.UUID, body: Reason, user: CurrentUser) -> Report:
    return await moderation.report(
        request.app.state.pool,
        reporter=user,
        moderator=_moderator(request, user),
        comment_id=comment_id,
        reason=body.reason,
    )


@router.get("/moderation/reports")
async def list_reports(
    request: Request,
    user: CurrentUser,
    status: Literal["open", "closed"] = "open",
    cursor: str | None = None,
    limit: Limit = 20,
) -> ModerationReportPage:
    return await moderation.list_reports(
        request.app.state.pool, moderator=_moderator(request, user), status=status, cursor=cursor, limit=limit
    )


@router.post("/moderation/posts/{post_id}/{action}")
async def moderate_post(
    request: Request,
    post_id: uuid.UUID,
    action: Literal["hide", "restore"],
    user: CurrentUser,
    body: Reason | None = None,
) -> Post:
    if action == "hide" and body is None:
        raise service.invalid("body.reason", "hiding needs a reason, which the author will see", "missing")
    return await moderation.moderate_post(
        request.app.state.pool,
        user=user,
        moderator=_moderator(request, user),
        post_id=post_id,
        hide=action == "hide",
        reason=body.reason if body else None,
    )


@router.post("/moderation/comments/{comment_id}/{action}")
async def moderate_comment(
    request: Request,
    comment_id: uuid.UUID,
    action: Literal["hide", "restore"],
    user: CurrentUser,
    body: Reason | None = None,
) -> Comment:
    if action == "hide" and body is None:
        raise service.invalid("body.reason", "hiding needs a reason, which the author will see", "missing")
    return await moderation.moderate_comment(
        request.app.state.pool,
        user=user,
        moderator=_moderator(request, user),
        comment_id=comment_id,
        hide=action == "hide",
        reason=body.reason if body else None,
    )


router.include_router(campaigns_router)
