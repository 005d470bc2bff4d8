"""Event subscribers of the search service."""

from shared.consumer import EventConsumer

CONSUMERS: tuple[EventConsumer, ...] = ()
