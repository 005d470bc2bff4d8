"""Builds the webhooks service: settings -> pool -> broker -> routers -> delivery worker and janitor."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI

from services.webhooks import repository
from services.webhooks.api import router
from services.webhooks.delivery import DeliveryWorker
from services.webhooks.handlers import CONSUMERS
from shared.db import Connection
from shared.runtime import Janitor, Runtime, ServiceDefinition, create_service_app, run_service

# How long the delivery log keeps settled deliveries.
LOG_RETENTION = timedelta(days=30)


async def start_delivery(runtime: Runtime) -> None:
    assert runtime.pool is not None
    worker = DeliveryWorker(pool=runtime.pool, settings=runtime.settings, schema=runtime.definition.name)
    await worker.start()
    runtime.background.append(worker)

    async def prune(conn: Connection) -> None:
        now = datetime.now(UTC)
        await repository.prune(conn, settled_before=now - LOG_RETENTION, orphans_before=now - timedelta(hours=1))

    runtime.background.append(Janitor(runtime.pool, name="webhook-log-janitor", prune=prune))


DEFINITION = ServiceDefinition(
    name="webhooks",
    router=router,
    migrations=Path(__file__).parent / "migrations",
    consumers=CONSUMERS,
    on_started=start_delivery,
)


def create_app() -> FastAPI:
    return create_service_app(DEFINITION)


def main() -> None:
    run_service("webhooks", create_app)
