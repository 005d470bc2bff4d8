"""Idea campaigns and live Q&A with a leader (docs/campaigns.md), answered by the posts service with the
caller's token; the posts service decides who may see and do what."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response

from services.gateway.api import ERRORS, PROBLEM, PageLimit, User, _page_params, upstreams
from shared.api_campaigns import (
    AnswerQuestion,
    AskQuestion,
    Campaign,
    CampaignPage,
    ChangeIdeaStatus,
    CreateCampaign,
    CreateIdea,
    CreateQnaSession,
    Idea,
    IdeaItem,
    IdeaPage,
    QnaQuestion,
    QnaQuestionPage,
    QnaSession,
    UpvoteState,
)

router = APIRouter(prefix="/api")

CAMPAIGNS: list[str | Enum] = ["campaigns"]
QNA: list[str | Enum] = ["live Q&A"]
NOT_FOUND = {**ERRORS, 404: PROBLEM}


async def _posts(request: Request, method: str, path: str, user: User, **kwargs: Any) -> Response:
    reply = await upstreams(request).call("posts", method, path, token=user.token, **kwargs)
    return reply.to_response()


@router.post("/campaigns", status_code=201, response_model=Campaign, responses={**ERRORS, 403: PROBLEM}, tags=CAMPAIGNS)
async def open_campaign(request: Request, body: CreateCampaign, user: User) -> Response:
    """A leader asks for ideas: a title, the question, everyone or one of the leader's teams, and a closing
    time. The campaign appears in feeds and search as a post of kind `campaign`. Not a leader: 403."""
    return await _posts(request, "POST", "/campaigns", user, body=body.model_dump_json().encode())


@router.get("/campaigns", response_model=CampaignPage, responses=ERRORS, tags=CAMPAIGNS)
async def list_campaigns(request: Request, user: User, cursor: str | None = None, limit: PageLimit = 20) -> Response:
    """The campaigns you may see: open ones first (closing soonest first), then the closed."""
    return await _posts(request, "GET", "/campaigns", user, params=_page_params(cursor, limit))


@router.get("/campaigns/{campaign_id}", response_model=Campaign, responses=NOT_FOUND, tags=CAMPAIGNS)
async def get_campaign(request: Request, campaign_id: uuid.UUID, user: User) -> Response:
    """Outside its audience a campaign, and every idea in it, does not exist (404)."""
    return await _posts(request, "GET", f"/campaigns/{campaign_id}", user)


@router.post(
    "/campaigns/{campaign_id}/close",
    response_model=Campaign,
    responses={**NOT_FOUND, 403: PROBLEM, 409: PROBLEM},
    tags=CAMPAIGNS,
)
async def close_campaign(request: Request, campaign_id: uuid.UUID, user: User) -> Response:
    """The owner closes early; the ranking is announced (campaign.closed.v1) as on the closing date. Closed
    already: 409."""
    return await _posts(request, "POST", f"/campaigns/{campaign_id}/close", user)


@router.post(
    "/campaigns/{campaign_id}/ideas",
    status_code=201,
    response_model=Idea,
    responses={**NOT_FOUND, 409: PROBLEM},
    tags=CAMPAIGNS,
)
async def add_idea(request: Request, campaign_id: uuid.UUID, body: CreateIdea, user: User) -> Response:
    """An idea in an open campaign (a post of kind `idea`, with the campaign's audience). Back ideas with
    PUT /api/posts/{id}/like. Closed: 409."""
    return await _posts(request, "POST", f"/campaigns/{campaign_id}/ideas", user, body=body.model_dump_json().encode())


@router.get("/campaigns/{campaign_id}/ideas", response_model=IdeaPage, responses=NOT_FOUND, tags=CAMPAIGNS)
async def list_ideas(
    request: Request, campaign_id: uuid.UUID, user: User, cursor: str | None = None, limit: PageLimit = 20
) -> Response:
    """The ideas ranked by distinct backers (likes), ties the older first, each with its status and the
    owner's reason, and whether you back it (`post.liked_by_me`)."""
    reply = await upstreams(request).call(
        "posts", "GET", f"/campaigns/{campaign_id}/ideas", token=user.token, params=_page_params(cursor, limit)
    )
    if reply.status != 200:
        return reply.to_response()
    page = reply.json()
    await _with_my_reactions(request, user, [item["post"] for item in page["items"]])
    return Response(orjson.dumps(page), media_type="application/json")


async def _with_my_reactions(request: Request, user: User, posts: list[dict[str, Any]]) -> None:
    if not posts:
        return
    mine_reply = await upstreams(request).call(
        "reactions", "GET", "/me/reactions", token=user.token, params=[("post_ids", p["id"]) for p in posts]
    )
    mine = mine_reply.json() if mine_reply.status == 200 else {}
    for post in posts:
        state = mine.get(post["id"], {})
        post["liked_by_me"] = bool(state.get("liked"))
        post["favourited_by_me"] = bool(state.get("favourited"))


@router.put(
    "/ideas/{idea_id}/status",
    response_model=IdeaItem,
    responses={**NOT_FOUND, 403: PROBLEM},
    tags=CAMPAIGNS,
)
async def change_idea_status(request: Request, idea_id: uuid.UUID, body: ChangeIdeaStatus, user: User) -> Response:
    """The campaign's owner sets an idea's status (new, under_review, adopted, declined) with a reason (needed
    for all but new). Each change is published once (idea.status_changed.v1): the idea's author, backers and
    commenters are told. The same status and reason again changes nothing. Not the owner: 403."""
    reply = await upstreams(request).call(
        "posts", "PUT", f"/ideas/{idea_id}/status", token=user.token, body=body.model_dump_json().encode()
    )
    if reply.status != 200:
        return reply.to_response()
    item = reply.json()
    await _with_my_reactions(request, user, [item["post"]])
    return Response(orjson.dumps(item), media_type="application/json")


@router.post("/qna", status_code=201, response_model=QnaSession, responses={**ERRORS, 403: PROBLEM}, tags=QNA)
async def open_qna(request: Request, body: CreateQnaSession, user: User) -> Response:
    """A leader hosts a live Q&A: questions are taken from `starts_at` to `ends_at`. Not a leader: 403."""
    return await _posts(request, "POST", "/qna", user, body=body.model_dump_json().encode())


@router.get("/qna/{session_id}", response_model=QnaSession, responses=NOT_FOUND, tags=QNA)
async def get_qna(request: Request, session_id: uuid.UUID, user: User) -> Response:
    return await _posts(request, "GET", f"/qna/{session_id}", user)


@router.post(
    "/qna/{session_id}/questions",
    status_code=201,
    response_model=QnaQuestion,
    responses={**NOT_FOUND, 409: PROBLEM},
    tags=QNA,
)
async def ask(request: Request, session_id: uuid.UUID, body: AskQuestion, user: User) -> Response:
    """Ask while the window is open (409 otherwise). An anonymous question shows its asker to nobody, the host
    included; moderators alone see who asked, to stop abuse."""
    return await _posts(request, "POST", f"/qna/{session_id}/questions", user, body=body.model_dump_json().encode())


@router.get("/qna/{session_id}/questions", response_model=QnaQuestionPage, responses=NOT_FOUND, tags=QNA)
async def list_questions(
    request: Request,
    session_id: uuid.UUID,
    user: User,
    state: Annotated[
        Literal["open", "answered"] | None, Query(description="only unanswered (open) or answered questions")
    ] = None,
    cursor: str | None = None,
    limit: PageLimit = 20,
) -> Response:
    """Unanswered questions first, most upvoted first (ties: the older first), then the answered ones."""
    params = _page_params(cursor, limit) + ([("state", state)] if state else [])
    return await _posts(request, "GET", f"/qna/{session_id}/questions", user, params=params)


@router.put(
    "/qna/{session_id}/questions/{question_id}/upvote",
    response_model=UpvoteState,
    responses={**NOT_FOUND, 403: PROBLEM, 409: PROBLEM},
    tags=QNA,
)
async def upvote(request: Request, session_id: uuid.UUID, question_id: uuid.UUID, user: User) -> Response:
    """Idempotent: one upvote per person. Not your own question (403), and not after the window (409)."""
    return await _posts(request, "PUT", f"/qna/{session_id}/questions/{question_id}/upvote", user)


@router.delete(
    "/qna/{session_id}/questions/{question_id}/upvote", response_model=UpvoteState, responses=NOT_FOUND, tags=QNA
)
async def take_back_upvote(request: Request, session_id: uuid.UUID, question_id: uuid.UUID, user: User) -> Response:
    return await _posts(request, "DELETE", f"/qna/{session_id}/questions/{question_id}/upvote", user)


@router.post(
    "/qna/{session_id}/questions/{question_id}/answer",
    response_model=QnaQuestion,
    responses={**NOT_FOUND, 403: PROBLEM, 409: PROBLEM},
    tags=QNA,
)
async def answer(
    request: Request, session_id: uuid.UUID, question_id: uuid.UUID, body: AnswerQuestion, user: User
) -> Response:
    """The host answers a question once (again: 409); qna.question_answered.v1 tells the asker, unless they
    asked anonymously. Not the host: 403."""
    return await _posts(
        request, "POST", f"/qna/{session_id}/questions/{question_id}/answer", user, body=body.model_dump_json().encode()
    )
