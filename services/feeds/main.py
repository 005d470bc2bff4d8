"""Builds the feeds service: settings -> pool -> broker -> routers; nothing happens at import."""

from pathlib import Path

from fastapi import FastAPI

from services.feeds.api import router
from services.feeds.handlers import CONSUMERS
from shared.runtime import ServiceDefinition, create_service_app, run_service

DEFINITION = ServiceDefinition(
    name="feeds", router=router, migrations=Path(__file__).parent / "migrations", consumers=CONSUMERS
)


def create_app() -> FastAPI:
    return create_service_app(DEFINITION)


def main() -> None:
    run_service("feeds", create_app)
