"""The people service consumes no events yet: it is the source of person.* events."""

from shared.consumer import EventConsumer

CONSUMERS: tuple[EventConsumer, ...] = ()
