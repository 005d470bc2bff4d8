"""HTTP shapes of signed webhooks (docs/webhooks.md), and which events they may carry."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field

from shared.events import EventType

# notification.changed.v1 carries one person's private inbox (titles, actors, unread count): it is for that
# person's own browsers, never for another system.
WEBHOOK_EVENT_TYPES: tuple[EventType, ...] = tuple(t for t in EventType if t is not EventType.NOTIFICATION_CHANGED)
EVERYTHING = "*"
LOOPBACK_HOSTS = ("localhost",)

DeliveryStatus = Literal["pending", "delivering", "delivered", "failed", "suspended"]


def pattern_matches(pattern: str, event_type: str) -> bool:
    """`post.liked.v1` matches itself; `post.*` every post event of any version; `*` everything deliverable."""
    if pattern == EVERYTHING:
        return True
    if pattern.endswith(".*"):
        return event_type.split(".", 1)[0] == pattern[:-2]
    return pattern == event_type


def _known_event_type(pattern: str) -> str:
    if not any(pattern_matches(pattern, str(t)) for t in WEBHOOK_EVENT_TYPES):
        raise ValueError(
            f"{pattern!r} is no event type a webhook can carry: give one like post.liked.v1, a resource "
            "pattern like post.* or *"
        )
    return pattern


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute https:// URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("must be https:// (http:// only to localhost, in development)")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials: receivers authenticate deliveries by their signature")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    return url


WebhookUrl = Annotated[
    str,
    Field(min_length=8, max_length=2000, description="where deliveries are POSTed: https (http only to localhost)"),
    AfterValidator(_webhook_url),
]
EventPattern = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_known_event_type)]


class CreateWebhook(BaseModel):
    url: WebhookUrl
    event_types: list[EventPattern] = Field(
        min_length=1,
        max_length=50,
        description="event types with their version (post.liked.v1), resource patterns (post.*) or * for all",
    )
    description: str = Field("", max_length=500, description="what the receiving system is, for the admins")


class Webhook(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str
    active: bool = Field(description="false once disabled after repeated failures; POST .../enable resumes")
    disabled_reason: str | None = Field(None, description="why it was disabled")
    disabled_at: datetime | None = None
    consecutive_failures: int = Field(description="failed attempts since the last delivered one", ge=0)
    created_by: str = Field(description="the admin who subscribed")
    created_at: datetime


class WebhookWithSecret(Webhook):
    secret: str = Field(description="signs every delivery; shown only here and when rotated, keep it safe")


class WebhookPage(BaseModel):
    items: list[Webhook]


class DeliveryAttempt(BaseModel):
    attempt: int = Field(ge=1)
    at: datetime
    status_code: int | None = Field(description="the receiver's HTTP status; null if none came")
    error: str | None = Field(description="why the attempt failed; null when delivered")
    duration_ms: int = Field(ge=0)


class Delivery(BaseModel):
    id: int = Field(description="the delivery, in order of being queued")
    event_id: uuid.UUID = Field(description="the event (X-Tillit-Event-Id); receivers deduplicate on it")
    event_type: str
    status: DeliveryStatus = Field(
        description="pending (waiting for its next attempt), delivering, delivered, failed (given up after "
        "the maximum attempts) or suspended (the subscription was disabled; resumed when enabled)"
    )
    attempts: int = Field(ge=0)
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="when it is tried next; null once settled")
    delivered_at: datetime | None
    created_at: datetime
    history: list[DeliveryAttempt] = Field(description="every attempt, oldest first")


class DeliveryPage(BaseModel):
    items: list[Delivery] = Field(description="newest first")
    next_cursor: str | None
