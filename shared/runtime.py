"""The service runtime: settings -> pool -> broker -> consumers and outbox relay -> HTTP, written once.

A service describes itself with a `ServiceDefinition`; `create_service_app` turns that into a FastAPI
app whose lifespan starts and stops everything in order, so nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import uvicorn
from aio_pika.abc import AbstractRobustConnection
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from shared import broker, db
from shared.auth import TokenVerifier
from shared.consumer import ConsumerRunner, EventConsumer
from shared.db import Connection
from shared.http import BodyLimitMiddleware, RequestTelemetry, install_problem_handlers
from shared.logs import configure_logging
from shared.metrics import OutboxCollector, WorkerStatsCollector, app_registry, metrics_response
from shared.outbox import OutboxRelay
from shared.retry import backoff_seconds
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 60

# SIGTERM: uvicorn stops accepting connections and gives the requests in flight HTTP_DRAIN_SECONDS, then the
# lifespan stops the runtime: consumers finish and ack the batches they hold (CONSUMER_DRAIN_SECONDS, all at
# once), the relay publishes what they wrote (RELAY_DRAIN_SECONDS), the connections close. A process is gone
# within SHUTDOWN_BOUND_SECONDS, inside Kubernetes' default grace period of 30 s; whatever was cut off is
# redelivered or republished and deduplicated, never lost.
HTTP_DRAIN_SECONDS = 8
CONSUMER_DRAIN_SECONDS = 8
RELAY_DRAIN_SECONDS = 4
POOL_CLOSE_SECONDS = 3
SHUTDOWN_BOUND_SECONDS = HTTP_DRAIN_SECONDS + CONSUMER_DRAIN_SECONDS + RELAY_DRAIN_SECONDS + POOL_CLOSE_SECONDS + 2


class BackgroundWorker(Protocol):
    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ServiceDefinition:
    name: str  # also the name of the service's PostgreSQL schema
    router: APIRouter
    migrations: Path
    consumers: Sequence[EventConsumer] = ()
    on_started: Callable[[Runtime], Awaitable[None]] | None = None


@dataclass
class Runtime:
    definition: ServiceDefinition
    settings: Settings
    pool: asyncpg.Pool | None = None
    connection: AbstractRobustConnection | None = None
    relay: OutboxRelay | None = None
    consumers: list[ConsumerRunner] = field(default_factory=list)
    # Started by a service's on_started hook (e.g. the mailer); stopped before the consumers.
    background: list[BackgroundWorker] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)

    @property
    def topology(self) -> broker.Topology:
        return broker.Topology(self.settings.namespace, delivery_limit=self.settings.delivery_limit)

    async def start(self) -> None:
        name = self.definition.name
        await _until_reachable(
            "PostgreSQL",
            lambda: db.migrate(self.settings.database_url, schema=name, migrations=self.definition.migrations),
        )
        self.pool = await db.create_pool(self.settings.database_url, schema=name, size=self.settings.db_pool_size)
        self.connection = await _until_reachable(
            "RabbitMQ", lambda: broker.connect(self.settings.rabbitmq_url, name=f"tillit-{name}")
        )
        for consumer in self.definition.consumers:
            runner = ConsumerRunner(
                consumer,
                pool=self.pool,
                connection=self.connection,
                topology=self.topology,
                prefetch=self.settings.consumer_prefetch,
                batch_size=self.settings.consumer_batch_size,
                batch_wait_ms=self.settings.consumer_batch_wait_ms,
            )
            await runner.start()
            self.consumers.append(runner)
        self.relay = OutboxRelay(
            pool=self.pool,
            dsn=self.settings.database_url,
            schema=name,
            connection=self.connection,
            topology=self.topology,
            source=name,
            poll_seconds=self.settings.outbox_poll_seconds,
        )
        await self.relay.start()
        self.background.append(inbox_janitor(self.pool))
        log.info("service started", extra={"consumers": [c.queue_name for c in self.consumers]})

    async def stop(self) -> None:
        """Consumers and workers first, together (they finish and ack what they hold), then the relay (it
        publishes what they wrote), then the connections; each step bounded (HTTP_DRAIN_SECONDS above)."""
        started = time.monotonic()

        async def bounded(stop: Awaitable[None], what: str) -> None:
            try:
                await asyncio.wait_for(stop, timeout=CONSUMER_DRAIN_SECONDS)
            except TimeoutError:
                log.warning("%s did not stop within %s s", what, CONSUMER_DRAIN_SECONDS)
            except Exception:
                log.exception("%s failed to stop", what)

        await asyncio.gather(
            *(bounded(worker.stop(), type(worker).__name__) for worker in self.background),
            *(runner.stop(grace_seconds=CONSUMER_DRAIN_SECONDS) for runner in self.consumers),
        )
        if self.relay is not None:
            await self.relay.stop(grace_seconds=RELAY_DRAIN_SECONDS)
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.connection.close(), timeout=POOL_CLOSE_SECONDS)
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pool.close(), timeout=POOL_CLOSE_SECONDS)
        log.info("service stopped", extra={"stop_seconds": round(time.monotonic() - started, 3)})

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        try:
            assert self.pool is not None
            async with self.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1", timeout=2)
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = f"unreachable: {type(exc).__name__}"
        connected = self.connection is not None and not self.connection.is_closed and self.connection.connected.is_set()
        checks["rabbitmq"] = "ok" if connected else "unreachable"
        return checks


class Janitor:
    """Runs one pruning statement now and then, so a table that only grows stays small."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        name: str,
        prune: Callable[[Connection], Awaitable[Any]],
        interval_seconds: float = 3600,
    ) -> None:
        self._pool = pool
        self._name = name
        self._prune = prune
        self._interval_seconds = interval_seconds
        self._task = asyncio.create_task(self._run(), name=name)

    async def _run(self) -> None:
        while True:
            try:
                async with self._pool.acquire() as conn:
                    await self._prune(conn)
            except Exception as exc:
                log.warning("%s could not prune: %r", self._name, exc)
            await asyncio.sleep(self._interval_seconds)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


# RabbitMQ redelivers within minutes and the outbox republishes at most a batch after a crash; two weeks
# is far beyond either.
INBOX_RETENTION = timedelta(days=14)


def inbox_janitor(pool: asyncpg.Pool) -> Janitor:
    """Forgets inbox rows once a redelivery of their event is no longer plausible."""

    async def prune(conn: Connection) -> None:
        await conn.execute("DELETE FROM inbox WHERE processed_at < now() - $1::interval", INBOX_RETENTION)

    return Janitor(pool, name="inbox-janitor", prune=prune)


async def _until_reachable(what: str, attempt_once: Callable[[], Awaitable[Any]]) -> Any:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    attempt = 0
    while True:
        try:
            return await attempt_once()
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, ConnectionError) as exc:
            attempt += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} is not reachable: {exc}") from exc
            log.warning("%s not reachable yet, retrying: %s", what, exc)
            await asyncio.sleep(backoff_seconds(attempt, base=0.5, cap=3))


def create_service_app(definition: ServiceDefinition, settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = Runtime(definition, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        app.state.pool = runtime.pool
        if definition.on_started is not None:
            await definition.on_started(runtime)
        yield
        await runtime.stop()

    app = FastAPI(title=f"Tillit {definition.name} service", lifespan=lifespan)
    app.state.runtime = runtime
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Added last, so it runs first: it sees every request, also those refused by the body limit.
    app.add_middleware(RequestTelemetry)
    app.include_router(definition.router)
    registry = app_registry(
        OutboxCollector(lambda: runtime.relay.state if runtime.relay else None),
        WorkerStatsCollector(lambda: runtime.background),
    )

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        checks = await runtime.readiness()
        ok = all(value == "ok" for value in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if runtime.relay is not None:
            await runtime.relay.refresh_state()
        return metrics_response([registry])

    @app.get("/stats", include_in_schema=False)
    async def stats() -> dict[str, Any]:
        backlog = await runtime.relay.backlog() if runtime.relay else 0
        return {
            "outbox_backlog": backlog,
            "published": runtime.relay.published if runtime.relay else 0,
            "consumers": {r.consumer.name: vars(r.stats) for r in runtime.consumers},
            # A background worker that counts what it does (the mailer, say) shows it here by its class name.
            "workers": {
                type(worker).__name__.lower(): vars(worker.stats)
                for worker in runtime.background
                if hasattr(worker, "stats")
            },
        }

    return app


def run_service(name: str, app_factory: Callable[[], FastAPI]) -> None:
    """Entry point of `python -m services.<name>`: JSON logs, then uvicorn with graceful shutdown."""
    settings = get_settings()
    configure_logging(name, settings.log_level)
    uvicorn.run(
        app_factory(),
        host=settings.bind_host,
        port=settings.service_port(name),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=HTTP_DRAIN_SECONDS,
    )
