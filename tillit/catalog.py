"""The services of the system and their event consumers: the one list the CLI, the AsyncAPI document and
the test harness read, so adding a service means adding it here."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from shared.consumer import EventConsumer

# Backend services, each `python -m services.<name>` with its own schema; the gateway fronts them.
BACKEND_SERVICES: tuple[str, ...] = ("people", "posts", "reactions", "notifications", "feeds", "search")


def consumers_of(service: str) -> Sequence[EventConsumer]:
    handlers = importlib.import_module(f"services.{service}.handlers")
    consumers: Sequence[EventConsumer] = handlers.CONSUMERS
    return consumers


def all_consumers() -> dict[str, Sequence[EventConsumer]]:
    return {service: consumers_of(service) for service in BACKEND_SERVICES}
