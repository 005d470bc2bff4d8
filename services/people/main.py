"""Builds the people service: settings -> pool -> broker -> routers; nothing happens at import."""

import logging
from pathlib import Path

from fastapi import FastAPI

from services.people import service
from services.people.api import router
from services.people.handlers import CONSUMERS
from shared.demo import DEMO_USERS
from shared.runtime import Runtime, ServiceDefinition, create_service_app, run_service

log = logging.getLogger(__name__)


async def seed_demo_users(runtime: Runtime) -> None:
    """With the development sign-in on, the demo users exist from the start."""
    if not runtime.settings.dev_signin_enabled:
        return
    assert runtime.pool is not None
    for claims in DEMO_USERS:
        await service.sync_from_claims(runtime.pool, claims)
    log.info("demo users ready", extra={"users": [u.sub for u in DEMO_USERS]})


DEFINITION = ServiceDefinition(
    name="people",
    router=router,
    migrations=Path(__file__).parent / "migrations",
    consumers=CONSUMERS,
    on_started=seed_demo_users,
)


def create_app() -> FastAPI:
    return create_service_app(DEFINITION)


def main() -> None:
    run_service("people", create_app)
