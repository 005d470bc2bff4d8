"""HTTP endpoints of the webhooks service (reached through the gateway); webhook admins only."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.webhooks import service
from shared.api_webhooks import CreateWebhook, DeliveryPage, Webhook, WebhookPage, WebhookWithSecret
from shared.auth import CurrentUser

router = APIRouter(prefix="/webhooks")


@router.post("", status_code=201)
async def create(request: Request, body: CreateWebhook, user: CurrentUser) -> WebhookWithSecret:
    return await service.create(request.app.state.pool, request.app.state.settings, user=user, request=body)


@router.get("")
async def list_all(request: Request, user: CurrentUser) -> WebhookPage:
    return await service.list_all(request.app.state.pool, request.app.state.settings, user=user)


@router.get("/{subscription_id}")
async def get(request: Request, subscription_id: uuid.UUID, user: CurrentUser) -> Webhook:
    return await service.get(
        request.app.state.pool, request.app.state.settings, user=user, subscription_id=subscription_id
    )


@router.delete("/{subscription_id}", status_code=204)
async def delete(request: Request, subscription_id: uuid.UUID, user: CurrentUser) -> Response:
    await service.delete(request.app.state.pool, request.app.state.settings, user=user, subscription_id=subscription_id)
    return Response(status_code=204)


@router.post("/{subscription_id}/enable")
async def enable(request: Request, subscription_id: uuid.UUID, user: CurrentUser) -> Webhook:
    return await service.enable(
        request.app.state.pool, request.app.state.settings, user=user, subscription_id=subscription_id
    )


@router.post("/{subscription_id}/secret")
async def rotate_secret(request: Request, subscription_id: uuid.UUID, user: CurrentUser) -> WebhookWithSecret:
    return await service.rotate_secret(
        request.app.state.pool, request.app.state.settings, user=user, subscription_id=subscription_id
    )


@router.get("/{subscription_id}/deliveries")
async def deliveries(
    request: Request,
    subscription_id: uuid.UUID,
    user: CurrentUser,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> DeliveryPage:
    return await service.deliveries(
        request.app.state.pool,
        request.app.state.settings,
        user=user,
        subscription_id=subscription_id,
        cursor=cursor,
        limit=limit,
    )
