"""HTTP endpoints of the feeds service (reached through the gateway with the user's token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from services.feeds import service
from services.feeds.models import FeedPage
from shared.auth import CurrentUser

router = APIRouter()

PageLimit = Annotated[int, Query(ge=1, le=100)]
Team = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("/feed")
async def home_feed(request: Request, user: CurrentUser, cursor: str | None = None, limit: PageLimit = 20) -> FeedPage:
    """Your own posts, posts of people you follow and of your teams, and what people you follow liked."""
    return await service.home_feed(request.app.state.pool, user=user, cursor=cursor, limit=limit)


@router.get("/feed/trending")
async def trending_feed(
    request: Request, user: CurrentUser, cursor: str | None = None, limit: PageLimit = 20
) -> FeedPage:
    """The posts most backed by distinct people over the last 7 days, among those you may see."""
    return await service.trending_feed(request.app.state.pool, user=user, cursor=cursor, limit=limit)


@router.get("/teams/{team}/feed")
async def team_feed(
    request: Request, team: Team, user: CurrentUser, cursor: str | None = None, limit: PageLimit = 20
) -> FeedPage:
    """Posts to one of your teams, newest first; 404 for a team you are not in."""
    return await service.team_feed(request.app.state.pool, user=user, team=team, cursor=cursor, limit=limit)
