"""The use cases of the webhooks service: admins manage subscriptions, events become deliveries."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from services.webhooks import repository
from shared.api import decode_cursor, encode_cursor
from shared.api_webhooks import (
    WEBHOOK_EVENT_TYPES,
    CreateWebhook,
    Delivery,
    DeliveryPage,
    Webhook,
    WebhookPage,
    WebhookWithSecret,
)
from shared.auth import Claims
from shared.db import Connection
from shared.events import Event
from shared.http import ProblemError
from shared.settings import Settings

# After a rotation the old secret keeps signing beside the new one this long, so receivers can switch over.
ROTATION_GRACE = timedelta(hours=24)
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def require_admin(user: Claims, settings: Settings) -> None:
    if settings.webhook_admin_group not in user.groups:
        raise ProblemError(
            403, "Forbidden", f"only webhook admins (group {settings.webhook_admin_group!r}) manage webhooks"
        )


def _not_found(subscription_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not Found", f"webhook {subscription_id} does not exist")


def _webhook(row: asyncpg.Record) -> dict[str, Any]:
    return {key: row[key] for key in Webhook.model_fields}


async def create(pool: asyncpg.Pool, settings: Settings, *, user: Claims, request: CreateWebhook) -> WebhookWithSecret:
    require_admin(user, settings)
    if settings.environment == "production" and urlsplit(request.url).scheme != "https":
        raise ProblemError(
            422,
            "Unprocessable Content",
            "invalid input in body.url: must be https:// in production",
            errors=[{"field": "body.url", "message": "must be https:// in production", "type": "url_scheme"}],
        )
    async with pool.acquire() as conn:
        row = await repository.insert_subscription(
            conn,
            subscription_id=uuid.uuid4(),
            url=request.url,
            event_types=list(dict.fromkeys(request.event_types)),
            description=request.description,
            secret=new_secret(),
            created_by=user.sub,
        )
    return WebhookWithSecret(**_webhook(row), secret=row["secret"])


async def list_all(pool: asyncpg.Pool, settings: Settings, *, user: Claims) -> WebhookPage:
    require_admin(user, settings)
    async with pool.acquire() as conn:
        rows = await repository.subscriptions(conn)
    return WebhookPage(items=[Webhook(**_webhook(row)) for row in rows])


async def get(pool: asyncpg.Pool, settings: Settings, *, user: Claims, subscription_id: uuid.UUID) -> Webhook:
    require_admin(user, settings)
    async with pool.acquire() as conn:
        row = await repository.subscription(conn, subscription_id)
    if row is None:
        raise _not_found(subscription_id)
    return Webhook(**_webhook(row))


async def delete(pool: asyncpg.Pool, settings: Settings, *, user: Claims, subscription_id: uuid.UUID) -> None:
    require_admin(user, settings)
    async with pool.acquire() as conn:
        if not await repository.delete_subscription(conn, subscription_id):
            raise _not_found(subscription_id)


async def enable(pool: asyncpg.Pool, settings: Settings, *, user: Claims, subscription_id: uuid.UUID) -> Webhook:
    require_admin(user, settings)
    async with pool.acquire() as conn, conn.transaction():
        row = await repository.enable(conn, subscription_id, now=datetime.now(UTC))
    if row is None:
        raise _not_found(subscription_id)
    return Webhook(**_webhook(row))


async def rotate_secret(
    pool: asyncpg.Pool, settings: Settings, *, user: Claims, subscription_id: uuid.UUID
) -> WebhookWithSecret:
    require_admin(user, settings)
    async with pool.acquire() as conn:
        row = await repository.rotate_secret(
            conn, subscription_id, secret=new_secret(), previous_until=datetime.now(UTC) + ROTATION_GRACE
        )
    if row is None:
        raise _not_found(subscription_id)
    return WebhookWithSecret(**_webhook(row), secret=row["secret"])


async def deliveries(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    user: Claims,
    subscription_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> DeliveryPage:
    require_admin(user, settings)
    after = decode_cursor(cursor, arity=1)
    before = after[0] if after and isinstance(after[0], int) else None
    async with pool.acquire() as conn:
        if await repository.subscription(conn, subscription_id) is None:
            raise _not_found(subscription_id)
        rows = await repository.delivery_page(conn, subscription_id, before=before, limit=limit + 1)
    page = rows[:limit]
    items = []
    for row in page:
        fields = dict(row)
        if fields["status"] not in ("pending", "delivering"):
            fields["next_attempt_at"] = None
        items.append(Delivery(**fields))
    return DeliveryPage(items=items, next_cursor=encode_cursor(page[-1]["id"]) if len(rows) > limit else None)


async def apply_events(conn: Connection, events: Sequence[Event]) -> None:
    """Queue a delivery of each event to every active subscription that wants it (in the consumer's transaction,
    so an event redelivered by the broker is queued once)."""
    wanted = [event for event in events if event.type in WEBHOOK_EVENT_TYPES]
    if not wanted:
        return
    await repository.enqueue(
        conn,
        event_ids=[event.id for event in wanted],
        event_types=[str(event.type) for event in wanted],
        bodies=[event.envelope.model_dump_json().encode() for event in wanted],
    )
