"""HTTP endpoints of the notifications service (reached through the gateway)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.notifications import service
from shared.api import MarkRead, NotificationPage
from shared.auth import CurrentUser

router = APIRouter()


@router.get("/notifications")
async def inbox(
    request: Request,
    user: CurrentUser,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> NotificationPage:
    return await service.inbox(request.app.state.pool, user=user, cursor=cursor, limit=limit)


@router.post("/notifications/read", status_code=204)
async def mark_read(request: Request, body: MarkRead, user: CurrentUser) -> Response:
    await service.mark_read(request.app.state.pool, user=user, ids=body.ids)
    return Response(status_code=204)
