"""HTTP endpoints of the notifications service (reached through the gateway)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.notifications import service, unsubscribe
from shared.api import (
    MarkRead,
    NotificationChanges,
    NotificationPage,
    NotificationSettings,
    NotificationSettingsUpdate,
    Unsubscribe,
    Unsubscribed,
)
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


@router.get("/notifications/changes")
async def changes(
    request: Request,
    user: CurrentUser,
    after: Annotated[int, Query(ge=0, description="the last change seen (SSE Last-Event-ID)")],
) -> NotificationChanges:
    return await service.changes(request.app.state.pool, user=user, after=after)


@router.post("/notifications/presence", status_code=204)
async def presence(request: Request, user: CurrentUser) -> Response:
    await service.seen(request.app.state.pool, user=user)
    return Response(status_code=204)


@router.get("/notification-settings")
async def get_settings(request: Request, user: CurrentUser) -> NotificationSettings:
    return await service.get_notification_settings(request.app.state.pool, user=user)


@router.put("/notification-settings")
async def put_settings(request: Request, body: NotificationSettingsUpdate, user: CurrentUser) -> NotificationSettings:
    return await service.put_notification_settings(request.app.state.pool, user=user, update=body)


@router.post("/unsubscribe")
async def one_click_unsubscribe(request: Request, body: Unsubscribe) -> Unsubscribed:
    """RFC 8058: no bearer token; the signed token from the email is the authority (unsubscribe.py)."""
    return await unsubscribe.unsubscribe(request.app.state.pool, request.app.state.settings, body.token)
