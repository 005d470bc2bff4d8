"""Builds the search service: settings -> pool -> broker -> routers; nothing happens at import."""

from pathlib import Path

from fastapi import FastAPI

from services.search.api import router
from services.search.handlers import CONSUMERS
from shared.runtime import ServiceDefinition, create_service_app, run_service

DEFINITION = ServiceDefinition(
    name="search", router=router, migrations=Path(__file__).parent / "migrations", consumers=CONSUMERS
)


def create_app() -> FastAPI:
    return create_service_app(DEFINITION)


def main() -> None:
    run_service("search", create_app)
