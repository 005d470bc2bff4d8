"""The services of the system and their event consumers, which the CLI, the AsyncAPI document and the
test harness read. The list of services itself is shared.settings.BACKEND_SERVICES (the gateway needs it
too); adding a service means adding it there and giving it a `<name>_url` setting."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from shared.consumer import EventConsumer
from shared.settings import BACKEND_SERVICES

__all__ = ["BACKEND_SERVICES", "all_consumers", "consumers_of"]


def consumers_of(service: str) -> Sequence[EventConsumer]:
    handlers = importlib.import_module(f"services.{service}.handlers")
    consumers: Sequence[EventConsumer] = handlers.CONSUMERS
    return consumers


def all_consumers() -> dict[str, Sequence[EventConsumer]]:
    return {service: consumers_of(service) for service in BACKEND_SERVICES}
