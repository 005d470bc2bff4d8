"""HTTP endpoints of the reactions service (reached through the gateway)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.reactions import insight, scores, service
from services.reactions.repository import Reaction
from shared.api import FavouriteRefPage, FavouriteState, LikeState, MyReaction, PersonPage
from shared.api_insight import (
    MONTH_PATTERN,
    CommentLikeState,
    Leaderboard,
    LeaderboardKind,
    Participation,
)
from shared.auth import CurrentUser
from shared.http import ProblemError

router = APIRouter()

PageLimit = Annotated[int, Query(ge=1, le=100)]


async def _set(request: Request, reaction: Reaction, post_id: uuid.UUID, user: CurrentUser, *, on: bool) -> tuple:
    return await service.set_reaction(request.app.state.pool, reaction, post_id=post_id, user=user, on=on)


@router.put("/posts/{post_id}/like")
async def like(request: Request, post_id: uuid.UUID, user: CurrentUser) -> LikeState:
    liked, like_count, _ = await _set(request, "like", post_id, user, on=True)
    return LikeState(liked=liked, like_count=like_count)


@router.delete("/posts/{post_id}/like")
async def unlike(request: Request, post_id: uuid.UUID, user: CurrentUser) -> LikeState:
    liked, like_count, _ = await _set(request, "like", post_id, user, on=False)
    return LikeState(liked=liked, like_count=like_count)


@router.put("/posts/{post_id}/favourite")
async def favourite(request: Request, post_id: uuid.UUID, user: CurrentUser) -> FavouriteState:
    favourited, _, favourite_count = await _set(request, "favourite", post_id, user, on=True)
    return FavouriteState(favourited=favourited, favourite_count=favourite_count)


@router.delete("/posts/{post_id}/favourite")
async def unfavourite(request: Request, post_id: uuid.UUID, user: CurrentUser) -> FavouriteState:
    favourited, _, favourite_count = await _set(request, "favourite", post_id, user, on=False)
    return FavouriteState(favourited=favourited, favourite_count=favourite_count)


@router.get("/posts/{post_id}/likes")
async def likers(
    request: Request, post_id: uuid.UUID, user: CurrentUser, cursor: str | None = None, limit: PageLimit = 20
) -> PersonPage:
    return await service.likers(request.app.state.pool, post_id=post_id, viewer=user, cursor=cursor, limit=limit)


@router.get("/me/favourites")
async def my_favourites(
    request: Request, user: CurrentUser, cursor: str | None = None, limit: PageLimit = 20
) -> FavouriteRefPage:
    return await service.favourites(request.app.state.pool, user=user, cursor=cursor, limit=limit)


@router.get("/me/reactions")
async def my_reactions(
    request: Request, user: CurrentUser, post_ids: Annotated[list[uuid.UUID], Query(max_length=200)]
) -> dict[str, MyReaction]:
    return await service.my_reactions(request.app.state.pool, user=user, post_ids=post_ids)


@router.put("/comments/{comment_id}/like")
async def like_comment(request: Request, comment_id: uuid.UUID, user: CurrentUser) -> CommentLikeState:
    liked, like_count = await service.set_comment_like(
        request.app.state.pool, comment_id=comment_id, user=user, on=True
    )
    return CommentLikeState(liked=liked, like_count=like_count)


@router.delete("/comments/{comment_id}/like")
async def unlike_comment(request: Request, comment_id: uuid.UUID, user: CurrentUser) -> CommentLikeState:
    liked, like_count = await service.set_comment_like(
        request.app.state.pool, comment_id=comment_id, user=user, on=False
    )
    return CommentLikeState(liked=liked, like_count=like_count)


Month = Annotated[str | None, Query(pattern=MONTH_PATTERN, description="YYYY-MM (UTC); this month if left out")]


@router.get("/leaderboards")
async def leaderboard(
    request: Request,
    user: CurrentUser,
    month: Month = None,
    team: Annotated[str | None, Query(max_length=200)] = None,
    kind: LeaderboardKind = "contributors",
    limit: PageLimit = 10,
) -> Leaderboard:
    return await scores.leaderboard(
        request.app.state.pool, month=month or insight.current_month(), team=team, kind=kind, limit=limit
    )


@router.get("/insight/participation")
async def participation(
    request: Request, user: CurrentUser, team: Annotated[str, Query(min_length=1, max_length=200)], month: Month = None
) -> Participation:
    if request.app.state.settings.leader_group not in user.groups:
        raise ProblemError(403, "Forbidden", "participation insight is for leaders")
    return await insight.participation(
        request.app.state.pool, team=team, month=month or insight.current_month(), viewer=user
    )
