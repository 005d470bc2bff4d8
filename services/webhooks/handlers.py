"""Event subscribers of the webhooks service: one queue for every event a webhook can carry."""

from services.webhooks import service
from shared.api_webhooks import WEBHOOK_EVENT_TYPES
from shared.consumer import EventConsumer

CONSUMERS = (EventConsumer(name="webhooks.events", event_types=list(WEBHOOK_EVENT_TYPES), handle=service.apply_events),)
