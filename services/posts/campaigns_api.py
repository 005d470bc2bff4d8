"""HTTP endpoints of idea campaigns and live Q&A (reached through the gateway's services/gateway/campaigns.py)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from services.posts import campaigns, qna
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
from shared.auth import Claims, CurrentUser
from shared.settings import Settings

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=100)]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _moderates(request: Request, user: Claims) -> bool:
    return _settings(request).moderator_group in user.groups


@router.post("/campaigns", status_code=201)
async def open_campaign(request: Request, body: CreateCampaign, user: CurrentUser) -> Campaign:
    return await campaigns.open_campaign(
        request.app.state.pool, owner=user, request=body, leader_group=_settings(request).leader_group
    )


@router.get("/campaigns")
async def list_campaigns(
    request: Request, user: CurrentUser, cursor: str | None = None, limit: Limit = 20
) -> CampaignPage:
    return await campaigns.list_campaigns(request.app.state.pool, viewer=user, cursor=cursor, limit=limit)


@router.get("/campaigns/{campaign_id}")
async def get_campaign(request: Request, campaign_id: uuid.UUID, user: CurrentUser) -> Campaign:
    return await campaigns.get_campaign(request.app.state.pool, campaign_id, viewer=user)


@router.post("/campaigns/{campaign_id}/close")
async def close_campaign(request: Request, campaign_id: uuid.UUID, user: CurrentUser) -> Campaign:
    return await campaigns.close_campaign(request.app.state.pool, campaign_id, user=user)


@router.post("/campaigns/{campaign_id}/ideas", status_code=201)
async def add_idea(request: Request, campaign_id: uuid.UUID, body: CreateIdea, user: CurrentUser) -> Idea:
    return await campaigns.add_idea(request.app.state.pool, campaign_id, author=user, body=body.body)


@router.get("/campaigns/{campaign_id}/ideas")
async def list_ideas(
    request: Request, campaign_id: uuid.UUID, user: CurrentUser, cursor: str | None = None, limit: Limit = 20
) -> IdeaPage:
    return await campaigns.list_ideas(request.app.state.pool, campaign_id, viewer=user, cursor=cursor, limit=limit)


@router.put("/ideas/{idea_id}/status")
async def change_idea_status(
    request: Request, idea_id: uuid.UUID, body: ChangeIdeaStatus, user: CurrentUser
) -> IdeaItem:
    return await campaigns.change_status(request.app.state.pool, idea_id, user=user, request=body)


@router.post("/qna", status_code=201)
async def open_qna(request: Request, body: CreateQnaSession, user: CurrentUser) -> QnaSession:
    return await qna.open_session(
        request.app.state.pool, host=user, request=body, leader_group=_settings(request).leader_group
    )


@router.get("/qna/{session_id}")
async def get_qna(request: Request, session_id: uuid.UUID, user: CurrentUser) -> QnaSession:
    return await qna.get_session(request.app.state.pool, session_id, viewer=user)


@router.post("/qna/{session_id}/questions", status_code=201)
async def ask(request: Request, session_id: uuid.UUID, body: AskQuestion, user: CurrentUser) -> QnaQuestion:
    return await qna.ask(
        request.app.state.pool, session_id, asker=user, request=body, moderator=_moderates(request, user)
    )


@router.get("/qna/{session_id}/questions")
async def list_questions(
    request: Request,
    session_id: uuid.UUID,
    user: CurrentUser,
    state: Literal["open", "answered"] | None = None,
    cursor: str | None = None,
    limit: Limit = 20,
) -> QnaQuestionPage:
    return await qna.list_questions(
        request.app.state.pool,
        session_id,
        viewer=user,
        moderator=_moderates(request, user),
        state=state,
        cursor=cursor,
        limit=limit,
    )


@router.put("/qna/{session_id}/questions/{question_id}/upvote")
async def upvote(request: Request, session_id: uuid.UUID, question_id: uuid.UUID, user: CurrentUser) -> UpvoteState:
    return await qna.upvote(request.app.state.pool, session_id, question_id, user=user, on=True)


@router.delete("/qna/{session_id}/questions/{question_id}/upvote")
async def take_back_upvote(
    request: Request, session_id: uuid.UUID, question_id: uuid.UUID, user: CurrentUser
) -> UpvoteState:
    return await qna.upvote(request.app.state.pool, session_id, question_id, user=user, on=False)


@router.post("/qna/{session_id}/questions/{question_id}/answer")
async def answer(
    request: Request, session_id: uuid.UUID, question_id: uuid.UUID, body: AnswerQuestion, user: CurrentUser
) -> QnaQuestion:
    return await qna.answer(
        request.app.state.pool,
        session_id,
        question_id,
        host=user,
        request=body,
        moderator=_moderates(request, user),
    )
