"""Calls from the gateway to the services, over one pooled aiohttp session.

aiohttp rather than httpx: on this machine httpx's client saturates its own core at a fraction of what
a service answers (../shared/DESIGN.md), which would cap every forwarded request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from fastapi import Response

from shared import tracing
from shared.http import ProblemError
from shared.settings import BACKEND_SERVICES, Settings

SERVICES = BACKEND_SERVICES

QueryParams = Sequence[tuple[str, str]] | Mapping[str, str] | None

# The services' uvicorn closes a connection idle for 5 s (its default timeout_keep_alive); aiohttp would reuse
# one for 15 s. A request sent on a connection the service is closing at that moment fails with
# ServerDisconnectedError, which aiohttp retries only for idempotent methods: a POST /posts or PATCH answered
# 503 (3 of 240 POSTs sent 5 s +- 10 ms after the previous one on a connection, on this machine; none with
# this setting). Retiring idle connections on our side first closes that window.
UPSTREAM_KEEPALIVE_SECONDS = 4.0


@dataclass(frozen=True)
class UpstreamReply:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return orjson.loads(self.body)

    def to_response(self) -> Response:
        return Response(content=self.body, status_code=self.status, media_type=self.content_type)


class Upstreams:
    def __init__(self, settings: Settings) -> None:
        self._urls = {name: settings.service_url(name).rstrip("/") for name in SERVICES}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=512, limit_per_host=128, ttl_dns_cache=300, keepalive_timeout=UPSTREAM_KEEPALIVE_SECONDS
            ),
            timeout=aiohttp.ClientTimeout(total=15, connect=3),
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        token: str | None,
        params: QueryParams = None,
        body: bytes | None = None,
        timeout_seconds: float | None = None,
    ) -> UpstreamReply:
        assert self._session is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # The request's trace goes on to the service (W3C Trace Context; shared/tracing.py).
        traceparent = tracing.current_traceparent()
        if traceparent is not None:
            headers["traceparent"] = traceparent
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method,
                f"{self._urls[service]}{path}",
                headers=headers,
                params=params,
                data=body,
                timeout=aiohttp.ClientTimeout(total=timeout_seconds) if timeout_seconds else None,
            ) as reply:
                content = await reply.read()
                return UpstreamReply(reply.status, content, reply.content_type or "application/json")
        except TimeoutError as exc:
            raise ProblemError(504, "Gateway Timeout", f"the {service} service did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise ProblemError(503, "Service Unavailable", f"the {service} service is unavailable") from exc

    async def readiness(self) -> dict[str, str]:
        async def check(service: str) -> str:
            try:
                reply = await self.call(service, "GET", "/ready", token=None, timeout_seconds=3)
            except ProblemError as exc:
                return exc.detail
            if reply.status == 200:
                return "ok"
            checks = reply.json().get("checks", {}) if reply.content_type.endswith("json") else {}
            failing = ", ".join(f"{k} {v}" for k, v in checks.items() if v != "ok")
            return f"not ready: {failing or reply.status}"

        results = await asyncio.gather(*(check(s) for s in SERVICES))
        return dict(zip(SERVICES, results, strict=True))
