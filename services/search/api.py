"""HTTP endpoints of the search service (reached through the gateway)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.search import service
from services.search.results import PersonHitPage, PostHitPage
from shared.auth import CurrentUser

router = APIRouter()


@router.get("/search")
async def search(
    request: Request,
    user: CurrentUser,
    q: Annotated[str, Query(description='what to look for: 1-200 characters; websearch syntax ("…", or, -)')],
    kind: Annotated[service.SearchType, Query(alias="type", description="what to look for")] = "posts",
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> PostHitPage | PersonHitPage:
    """Posts the viewer may see, or people, by full-text search in Norwegian and English, best match first."""
    return await service.search(request.app.state.pool, viewer=user, q=q, kind=kind, cursor=cursor, limit=limit)
