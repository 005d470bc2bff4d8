"""Comments, mentions, praise, questions and moderation: the posts service's sharing features (docs/sharing.md).

Comments do not carry `liked_by_me` yet (always false): the gateway composes it for posts only, for now."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel

from services.gateway import service
from services.gateway.api import ERRORS, PROBLEM, PageLimit, User, _page_params, upstreams
from shared.api import Post, PostPage
from shared.api_sharing import (
    AcceptAnswer,
    Comment,
    CommentPage,
    CreateComment,
    ModerationReportPage,
    Reason,
    Report,
)

router = APIRouter(prefix="/api")

SEEN = {**ERRORS, 404: PROBLEM}
GUARDED = {**ERRORS, 403: PROBLEM, 404: PROBLEM}
MODERATORS = {**ERRORS, 403: PROBLEM}
PersonId = Annotated[str, Path(min_length=1, max_length=200, description="the person's id (the token's sub)")]


def _body(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


@router.post("/posts/{post_id}/comments", status_code=201, response_model=Comment, responses=SEEN, tags=["comments"])
async def create_comment(request: Request, post_id: uuid.UUID, body: CreateComment, user: User) -> Response:
    """Comment on a post you may see, or reply (`parent_id`) to one of its top-level comments: replies go one
    level deep, and a reply to a reply is a 422 naming `body.parent_id`. `@person-id` mentions someone; only
    people who may see the post become mentions, the rest stays text."""
    reply = await upstreams(request).call(
        "posts", "POST", f"/posts/{post_id}/comments", token=user.token, body=_body(body)
    )
    return reply.to_response()


@router.get("/posts/{post_id}/comments", response_model=CommentPage, responses=SEEN, tags=["comments"])
async def comments(
    request: Request, post_id: uuid.UUID, user: User, cursor: str | None = None, limit: PageLimit = 20
) -> Response:
    """Top-level comments oldest first, each with its replies; a question's accepted answer comes first. A post
    you may not see has no comments: 404."""
    reply = await upstreams(request).call(
        "posts", "GET", f"/posts/{post_id}/comments", token=user.token, params=_page_params(cursor, limit)
    )
    return reply.to_response()


@router.delete("/comments/{comment_id}", status_code=204, responses=GUARDED, tags=["comments"])
async def delete_comment(request: Request, comment_id: uuid.UUID, user: User) -> Response:
    """Its author or a moderator deletes a comment, and with it its replies."""
    reply = await upstreams(request).call("posts", "DELETE", f"/comments/{comment_id}", token=user.token)
    return reply.to_response() if reply.status != 204 else Response(status_code=204)


async def _question_reply(
    request: Request, method: str, post_id: uuid.UUID, user: User, body: bytes | None
) -> Response:
    reply = await upstreams(request).call(
        "posts", method, f"/posts/{post_id}/accepted-answer", token=user.token, body=body
    )
    if reply.status != 200:
        return reply.to_response()
    return await service.post_for_viewer(upstreams(request), post_id=str(post_id), token=user.token)


@router.put(
    "/posts/{post_id}/accepted-answer", response_model=Post, responses={**GUARDED, 409: PROBLEM}, tags=["questions"]
)
async def accept_answer(request: Request, post_id: uuid.UUID, body: AcceptAnswer, user: User) -> Response:
    """The question's author or a moderator accepts a top-level comment by someone other than the question's
    author; it is listed first. 409 if the post is no question."""
    return await _question_reply(request, "PUT", post_id, user, _body(body))


@router.delete(
    "/posts/{post_id}/accepted-answer", response_model=Post, responses={**GUARDED, 409: PROBLEM}, tags=["questions"]
)
async def withdraw_answer(request: Request, post_id: uuid.UUID, user: User) -> Response:
    return await _question_reply(request, "DELETE", post_id, user, None)


@router.get("/people/{person_id}/praise", response_model=PostPage, responses=ERRORS, tags=["praise"])
async def praise_received(
    request: Request, person_id: PersonId, user: User, cursor: str | None = None, limit: PageLimit = 20
) -> Response:
    """The praise the person received that you may see, newest first."""
    reply = await upstreams(request).call(
        "posts", "GET", f"/people/{person_id}/praise", token=user.token, params=_page_params(cursor, limit)
    )
    if reply.status != 200:
        return reply.to_response()
    page = reply.json()
    ids = [post["id"] for post in page["items"]]
    if ids:
        mine_reply = await upstreams(request).call(
            "reactions", "GET", "/me/reactions", token=user.token, params=[("post_ids", i) for i in ids]
        )
        mine = mine_reply.json() if mine_reply.status == 200 else {}
        for post in page["items"]:
            state = mine.get(post["id"], {})
            post["liked_by_me"] = bool(state.get("liked"))
            post["favourited_by_me"] = bool(state.get("favourited"))
    return Response(content=orjson.dumps(page), media_type="application/json")


@router.post("/posts/{post_id}/reports", status_code=202, response_model=Report, responses=SEEN, tags=["moderation"])
async def report_post(request: Request, post_id: uuid.UUID, body: Reason, user: User) -> Response:
    """Report a post you may see to the moderators; reporting again while your report is open changes nothing."""
    reply = await upstreams(request).call(
        "posts", "POST", f"/posts/{post_id}/reports", token=user.token, body=_body(body)
    )
    return reply.to_response()


@router.post(
    "/comments/{comment_id}/reports", status_code=202, response_model=Report, responses=SEEN, tags=["moderation"]
)
async def report_comment(request: Request, comment_id: uuid.UUID, body: Reason, user: User) -> Response:
    reply = await upstreams(request).call(
        "posts", "POST", f"/comments/{comment_id}/reports", token=user.token, body=_body(body)
    )
    return reply.to_response()


@router.get("/moderation/reports", response_model=ModerationReportPage, responses=MODERATORS, tags=["moderation"])
async def reports(
    request: Request,
    user: User,
    status: Literal["open", "closed"] = "open",
    cursor: str | None = None,
    limit: PageLimit = 20,
) -> Response:
    """Moderators only: reports, oldest first, with the content as it is now (whatever its audience)."""
    params = [("status", status), *_page_params(cursor, limit)]
    reply = await upstreams(request).call("posts", "GET", "/moderation/reports", token=user.token, params=params)
    return reply.to_response()


Action = Literal["hide", "restore"]


@router.post(
    "/moderation/posts/{post_id}/{action}",
    response_model=Post,
    responses={**MODERATORS, 404: PROBLEM},
    tags=["moderation"],
    summary="Hide or restore a post",
)
async def moderate_post(
    request: Request, post_id: uuid.UUID, action: Action, user: User, body: Reason | None = None
) -> Response:
    """Moderators only. `hide` needs `{"reason"}`, which the author sees; hidden, the post is gone for everyone
    but its author and moderators. `restore` brings it back, or on a post not hidden closes its reports."""
    reply = await upstreams(request).call(
        "posts",
        "POST",
        f"/moderation/posts/{post_id}/{action}",
        token=user.token,
        body=_body(body) if body is not None else None,
    )
    return reply.to_response()


@router.post(
    "/moderation/comments/{comment_id}/{action}",
    response_model=Comment,
    responses={**MODERATORS, 404: PROBLEM},
    tags=["moderation"],
    summary="Hide or restore a comment",
)
async def moderate_comment(
    request: Request, comment_id: uuid.UUID, action: Action, user: User, body: Reason | None = None
) -> Response:
    """As for posts; a hidden comment's replies are out of view with it."""
    reply = await upstreams(request).call(
        "posts",
        "POST",
        f"/moderation/comments/{comment_id}/{action}",
        token=user.token,
        body=_body(body) if body is not None else None,
    )
    return reply.to_response()
