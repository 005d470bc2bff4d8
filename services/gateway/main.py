"""Builds the gateway: settings -> upstream session -> routes; nothing happens at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request, Response

from services.gateway import asyncapi_page, campaigns, insight, sharing, web, webhooks
from services.gateway.api import dev_router, router
from services.gateway.fastpath import ReactionFastPath
from services.gateway.ratelimit import WriteLimiter, WriteRateLimit
from services.gateway.security import SecurityHeaders
from services.gateway.service import ProfileSync
from services.gateway.stream import LiveNotifications
from services.gateway.upstream import Upstreams
from shared.auth import TokenVerifier
from shared.broker import Topology
from shared.http import BodyLimitMiddleware, ProblemError, RequestTelemetry, install_problem_handlers
from shared.logs import configure_logging
from shared.metrics import metrics_response
from shared.runtime import HTTP_DRAIN_SECONDS
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    upstreams = Upstreams(settings)
    live = LiveNotifications(rabbitmq_url=settings.rabbitmq_url, topology=Topology(settings.namespace))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await upstreams.start()
        await live.start()
        if settings.dev_signin_enabled:
            log.warning("development sign-in is ON at /api/dev/sign-in: never expose this instance")
        yield
        # uvicorn runs this once the connections are done; sse-starlette ends the open streams on the exit
        # signal so that they are. Whatever stream is left ends here.
        await live.stop()
        await upstreams.close()

    app = FastAPI(
        title="Tillit API",
        version="1",
        description="The JSON API of Tillit for intranet frontends. Errors are RFC 9457 problem details.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    app.state.upstreams = upstreams
    app.state.live = live
    app.state.profiles = ProfileSync(upstreams)
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Added last, so it runs first: likes skip FastAPI's stack (fastpath.py says why).
    app.add_middleware(ReactionFastPath, verifier=app.state.verifier, profiles=app.state.profiles, upstreams=upstreams)
    # Around the fast path too, so likes count toward a person's writes (ratelimit.py).
    if settings.rate_limit_writes_per_minute > 0:
        limiter = WriteLimiter(per_minute=settings.rate_limit_writes_per_minute, burst=settings.rate_limit_write_burst)
        app.add_middleware(WriteRateLimit, verifier=app.state.verifier, limiter=limiter)
    app.add_middleware(
        SecurityHeaders,
        production=settings.environment == "production",
        docs_paths=(app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url),
    )
    # Outermost: every request gets its trace and is counted, the fast path's likes included.
    app.add_middleware(RequestTelemetry)

    async def metrics(request: Request) -> Response:
        # Prometheus scrapes the pod directly; a request that came through the ingress (which adds
        # X-Forwarded-For) is a visitor, who has no business reading the gateway's counters.
        if "x-forwarded-for" in request.headers:
            raise ProblemError(404, "Not Found", "no such page")
        return metrics_response()

    app.add_api_route("/metrics", metrics, include_in_schema=False, response_class=Response)
    app.include_router(router)
    for area in (sharing, campaigns, insight, webhooks, asyncapi_page):
        app.include_router(area.router)
    if settings.dev_signin_enabled:
        app.include_router(dev_router)

    # The reference web client at / and every route it draws (/posts/{id} is where emails link).
    web.install(app)

    return app


def main() -> None:
    settings = get_settings()
    configure_logging("gateway", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.bind_host,
        port=settings.gateway_port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=HTTP_DRAIN_SECONDS,
    )
