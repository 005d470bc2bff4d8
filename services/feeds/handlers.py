"""Event subscribers of the feeds service."""

from shared.consumer import EventConsumer

CONSUMERS: tuple[EventConsumer, ...] = ()
