"""Likes on comments, contribution scores, leaderboards and participation insight for leaders (docs/scores.md).
The reactions service answers all of them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.gateway.api import ERRORS, PROBLEM, User, upstreams
from shared.api_insight import MONTH_PATTERN, CommentLikeState, Leaderboard, LeaderboardKind, Participation

router = APIRouter(prefix="/api")

Month = Annotated[str | None, Query(pattern=MONTH_PATTERN, description="YYYY-MM, a UTC month; this month if left out")]


@router.put("/comments/{comment_id}/like", response_model=CommentLikeState, responses={**ERRORS, 404: PROBLEM})
async def like_comment(request: Request, comment_id: uuid.UUID, user: User) -> Response:
    """Idempotent: liking twice is one like. A comment you may not see, or deleted or hidden, is 404."""
    reply = await upstreams(request).call("reactions", "PUT", f"/comments/{comment_id}/like", token=user.token)
    return reply.to_response()


@router.delete("/comments/{comment_id}/like", response_model=CommentLikeState, responses={**ERRORS, 404: PROBLEM})
async def unlike_comment(request: Request, comment_id: uuid.UUID, user: User) -> Response:
    reply = await upstreams(request).call("reactions", "DELETE", f"/comments/{comment_id}/like", token=user.token)
    return reply.to_response()


@router.get("/leaderboards", response_model=Leaderboard, responses=ERRORS)
async def leaderboard(
    request: Request,
    user: User,
    month: Month = None,
    team: Annotated[str | None, Query(max_length=200, description="a team; the whole organisation if left out")] = None,
    kind: Annotated[
        LeaderboardKind,
        Query(description="contributors (posts, comments, likes received) or builders (input on others' posts)"),
    ] = "contributors",
    limit: Annotated[int, Query(ge=1, le=100, description="how many of the top")] = 10,
) -> Response:
    """The month's top contributors or best builders on others' input, with the formula of the score."""
    params = [("kind", kind), ("limit", str(limit))]
    params += [("month", month)] if month else []
    params += [("team", team)] if team else []
    reply = await upstreams(request).call("reactions", "GET", "/leaderboards", token=user.token, params=params)
    return reply.to_response()


@router.get("/insight/participation", response_model=Participation, responses={**ERRORS, 403: PROBLEM})
async def participation(
    request: Request,
    user: User,
    team: Annotated[str, Query(min_length=1, max_length=200, description="the team")],
    month: Month = None,
) -> Response:
    """For leaders: the share of a team's members who posted, commented and reacted in a month, trending ideas
    and response time to questions. Figures over fewer than 5 people are null, marked `suppressed`."""
    params = [("team", team)] + ([("month", month)] if month else [])
    reply = await upstreams(request).call("reactions", "GET", "/insight/participation", token=user.token, params=params)
    return reply.to_response()
