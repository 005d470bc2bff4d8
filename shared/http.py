"""HTTP conventions of every service: RFC 9457 problem details, a request body limit, and the trace and
metrics of every request."""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, ORJSONResponse
from pydantic_core import PydanticSerializationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import tracing
from shared.metrics import HTTP_REQUEST_DURATION
from shared.retry import TRANSIENT_ERRORS

log = logging.getLogger("tillit.http")

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """Raise anywhere below a route to answer with problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return ORJSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status, exc.title, exc.detail, instance=request.url.path, headers=exc.headers, **exc.extra
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_path(error["loc"]), "message": error["msg"], "type": error["type"]} for error in exc.errors()
    ]
    fields = ", ".join(dict.fromkeys(error["field"] for error in errors))
    return problem_response(
        422, "Unprocessable Content", f"invalid input in {fields}", instance=request.url.path, errors=errors
    )


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    title = _TITLES.get(exc.status_code, "Error")
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(exc.status_code, title, detail, instance=request.url.path, headers=headers)


async def _on_unstorable_text(request: Request, exc: Exception) -> JSONResponse:
    # PostgreSQL's text and jsonb cannot hold U+0000, which JSON and URLs can carry: only input brings it.
    # Answered here, once, rather than as a 500 after every query that stores or compares some text.
    return problem_response(
        422,
        "Unprocessable Content",
        "text may not contain the NUL character (U+0000)",
        instance=request.url.path,
        errors=[{"field": "request", "message": "remove U+0000 from the text", "type": "string_nul"}],
    )


# Seconds a client should wait before trying again when the database (or broker) is out of reach.
UNAVAILABLE_RETRY_AFTER = "2"


async def _on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # An outage is not a bug: 503 with Retry-After, logged as one line rather than a traceback.
    log.warning("unavailable: %s: %s", type(exc).__name__, exc, extra={"path": request.url.path})
    return problem_response(
        503,
        "Service Unavailable",
        "a server this service needs is out of reach for the moment; try again shortly",
        instance=request.url.path,
        headers={"Retry-After": UNAVAILABLE_RETRY_AFTER},
    )


async def _on_unencodable_text(request: Request, exc: Exception) -> JSONResponse:
    # Python's json reads a lone surrogate (escaped, or its bytes in the body) into a str that cannot be
    # written out as UTF-8 again: to a service, to PostgreSQL or in the reply. Only input brings one.
    if isinstance(exc, PydanticSerializationError) and "surrogates not allowed" not in str(exc):
        return await _on_unexpected(request, exc)
    return problem_response(
        422,
        "Unprocessable Content",
        "text must be valid Unicode: a lone surrogate (U+D800-U+DFFF) is not a character",
        instance=request.url.path,
        errors=[{"field": "request", "message": "remove the lone surrogate from the text", "type": "string_unicode"}],
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(500, "Internal Server Error", "an unexpected error occurred", instance=request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(asyncpg.CharacterNotInRepertoireError, _on_unstorable_text)
    app.add_exception_handler(asyncpg.UntranslatableCharacterError, _on_unstorable_text)
    app.add_exception_handler(UnicodeEncodeError, _on_unencodable_text)
    app.add_exception_handler(PydanticSerializationError, _on_unencodable_text)
    for transient in TRANSIENT_ERRORS:
        if issubclass(transient, Exception):
            app.add_exception_handler(transient, _on_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)


class BodyLimitMiddleware:
    """Answer 413 for a body over the limit, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await self._too_large(scope, send)
                return
        if any(name == b"content-length" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        # A streamed body without a length: read it here, up to the limit, because FastAPI turns any
        # error raised while it reads the body into a 400.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._too_large(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        response = problem_response(
            413,
            "Content Too Large",
            f"the request body is larger than {self.max_bytes} bytes",
            instance=scope.get("path"),
        )
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


# Where a request that no route took is counted: its path would make one series per URL.
UNMATCHED_ROUTE = "unmatched"
# Probes and scrapes: counted, but not logged line by line.
_QUIET_PATHS = frozenset(("/health", "/ready", "/metrics", "/api/health", "/api/ready"))


class RequestTelemetry:
    """Continues the caller's trace (`traceparent`) or starts one for the request, times it into
    tillit_http_request_duration_seconds by route template, and logs one line for it at INFO.

    Pure ASGI, and meant to be the outermost middleware, so it sees every request, including those a fast
    path answers before FastAPI routes them: such a path names its route in `scope["tillit.route"]`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The histogram's series by (method, route, status), bounded by the routes: skips prometheus_client's
        # label validation and lock on every request.
        self._series: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                incoming = value
                break
        token = tracing.activate(tracing.continue_from(incoming))
        started = time.perf_counter()
        status = 500  # unless the app answers: an exception that escaped it, or a client gone mid-request

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            key = (scope["method"], route, status)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = HTTP_REQUEST_DURATION.labels(key[0], route, str(status))
            series.observe(elapsed)
            if log.isEnabledFor(logging.INFO) and scope["path"] not in _QUIET_PATHS:
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": route,
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            tracing.deactivate(token)


def route_template(scope: Scope) -> str:
    """The route's path template (/posts/{post_id}/like), never the path itself."""
    named = scope.get("tillit.route")
    if named is not None:
        return str(named)
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else UNMATCHED_ROUTE
