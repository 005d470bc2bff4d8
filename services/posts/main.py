"""Builds the posts service: settings -> pool -> broker -> routers; nothing happens at import."""

from pathlib import Path

from fastapi import FastAPI

from services.posts.api import router
from services.posts.campaigns import start_closer
from services.posts.handlers import CONSUMERS
from shared.runtime import ServiceDefinition, create_service_app, run_service

DEFINITION = ServiceDefinition(
    name="posts",
    router=router,
    migrations=Path(__file__).parent / "migrations",
    consumers=CONSUMERS,
    on_started=start_closer,
)


def create_app() -> FastAPI:
    return create_service_app(DEFINITION)


def main() -> None:
    run_service("posts", create_app)
