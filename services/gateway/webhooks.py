"""Signed webhooks for systems that do not speak AMQP (docs/webhooks.md): subscriptions, secrets and the
delivery log, for webhook admins only. The webhooks service answers all of them."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from services.gateway.api import ERRORS, PROBLEM, PageLimit, User, _page_params, upstreams
from shared.api_webhooks import CreateWebhook, DeliveryPage, Webhook, WebhookPage, WebhookWithSecret

router = APIRouter(prefix="/api", tags=["webhooks"])

ADMINS = {**ERRORS, 403: PROBLEM}
ONE = {**ADMINS, 404: PROBLEM}


@router.post("/webhooks", status_code=201, response_model=WebhookWithSecret, responses=ADMINS)
async def create_webhook(request: Request, body: CreateWebhook, user: User) -> Response:
    """Subscribe a URL to event types (`post.liked.v1`), resource patterns (`post.*`) or `*`. The answer holds
    the signing secret: it is shown only here and when rotated. https only (http to localhost in development)."""
    reply = await upstreams(request).call(
        "webhooks", "POST", "/webhooks", token=user.token, body=body.model_dump_json().encode()
    )
    return reply.to_response()


@router.get("/webhooks", response_model=WebhookPage, responses=ADMINS)
async def webhooks(request: Request, user: User) -> Response:
    reply = await upstreams(request).call("webhooks", "GET", "/webhooks", token=user.token)
    return reply.to_response()


@router.get("/webhooks/{webhook_id}", response_model=Webhook, responses=ONE)
async def webhook(request: Request, webhook_id: uuid.UUID, user: User) -> Response:
    reply = await upstreams(request).call("webhooks", "GET", f"/webhooks/{webhook_id}", token=user.token)
    return reply.to_response()


@router.delete("/webhooks/{webhook_id}", status_code=204, responses=ONE)
async def delete_webhook(request: Request, webhook_id: uuid.UUID, user: User) -> Response:
    """The subscription and its delivery log; nothing more is delivered to it."""
    reply = await upstreams(request).call("webhooks", "DELETE", f"/webhooks/{webhook_id}", token=user.token)
    return reply.to_response() if reply.status != 204 else Response(status_code=204)


@router.post("/webhooks/{webhook_id}/enable", response_model=Webhook, responses=ONE)
async def enable_webhook(request: Request, webhook_id: uuid.UUID, user: User) -> Response:
    """Re-enable a subscription disabled after repeated failures; its suspended deliveries are tried again."""
    reply = await upstreams(request).call("webhooks", "POST", f"/webhooks/{webhook_id}/enable", token=user.token)
    return reply.to_response()


@router.post("/webhooks/{webhook_id}/secret", response_model=WebhookWithSecret, responses=ONE)
async def rotate_webhook_secret(request: Request, webhook_id: uuid.UUID, user: User) -> Response:
    """A new signing secret, shown once. The old one keeps signing beside it for 24 hours."""
    reply = await upstreams(request).call("webhooks", "POST", f"/webhooks/{webhook_id}/secret", token=user.token)
    return reply.to_response()


@router.get("/webhooks/{webhook_id}/deliveries", response_model=DeliveryPage, responses=ONE)
async def webhook_deliveries(
    request: Request, webhook_id: uuid.UUID, user: User, cursor: str | None = None, limit: PageLimit = 20
) -> Response:
    """The delivery log, newest first: each event's attempts, last status code or error, next attempt."""
    reply = await upstreams(request).call(
        "webhooks", "GET", f"/webhooks/{webhook_id}/deliveries", token=user.token, params=_page_params(cursor, limit)
    )
    return reply.to_response()
