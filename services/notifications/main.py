"""Builds the notifications service: settings -> pool -> broker -> routers -> mailer."""

from pathlib import Path

from fastapi import FastAPI

from services.notifications.api import router
from services.notifications.handlers import CONSUMERS
from services.notifications.mailer import Mailer
from shared.runtime import Runtime, ServiceDefinition, create_service_app, run_service


async def start_mailer(runtime: Runtime) -> None:
    assert runtime.pool is not None
    mailer = Mailer(pool=runtime.pool, settings=runtime.settings, schema=runtime.definition.name)
    await mailer.start()
    runtime.background.append(mailer)


DEFINITION = ServiceDefinition(
    name="notifications",
    router=router,
    migrations=Path(__file__).parent / "migrations",
    consumers=CONSUMERS,
    on_started=start_mailer,
)


def create_app() -> FastAPI:
    return create_service_app(DEFINITION)


def main() -> None:
    run_service("notifications", create_app)
