"""Writes per person at the gateway: a token bucket per token `sub`, in this replica's memory.

Every POST, PUT, PATCH and DELETE with a valid bearer token takes one token from its person's bucket, which
holds RATE_LIMIT_WRITE_BURST and refills at RATE_LIMIT_WRITES_PER_MINUTE. An empty bucket answers 429 with
Retry-After before anything reaches a service, so a refused write has no effect. The check sits in front of
the fast path (fastpath.py) and FastAPI alike, and costs a dict lookup and some arithmetic: the token's
verdict comes from the verifier's cache, which the route's own check then hits as well.

The buckets are per replica: behind a balancer that spreads one person's requests over N gateways, that person
may write up to N times the limit. It is a brake on a runaway client or script, not a quota. Requests without a
valid token are not counted here (they are refused with 401 further in), and reads are never limited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.auth import TokenVerifier
from shared.http import ProblemError, problem_response

WRITE_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))
# Buckets kept before idle ones (full again) are forgotten; an idle bucket is the same as none.
MAX_BUCKETS = 100_000


class WriteLimiter:
    """Token buckets by key. `take(key)` answers 0.0 when the write may go ahead, else the seconds until it may."""

    def __init__(
        self,
        *,
        per_minute: int,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self.per_minute = per_minute
        self.burst = float(burst)
        self._rate = per_minute / 60.0  # tokens per second
        self._clock = clock
        self._max_buckets = max_buckets
        # key -> [tokens left, when they were counted]
        self._buckets: dict[str, list[float]] = {}

    def take(self, key: str) -> float:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_buckets:
                self._forget_idle(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self._rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self._rate

    def _forget_idle(self, now: float) -> None:
        full_after = self.burst / self._rate
        self._buckets = {key: b for key, b in self._buckets.items() if now - b[1] < full_after}
        if len(self._buckets) >= self._max_buckets:
            # Everyone is busy at once: forgetting them all lets a burst through, never refuses a write wrongly.
            self._buckets.clear()


class WriteRateLimit:
    """ASGI middleware: 429 problem+json with Retry-After for a person over their write limit."""

    def __init__(self, app: ASGIApp, *, verifier: TokenVerifier, limiter: WriteLimiter) -> None:
        self.app = app
        self.verifier = verifier
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in WRITE_METHODS:
            token = _bearer(scope)
            if token is not None:
                try:
                    claims = await self.verifier.verify_async(token)
                except ProblemError:
                    claims = None  # the route answers 401 with the reason
                if claims is not None:
                    wait = self.limiter.take(claims.sub)
                    if wait > 0.0:
                        await self._too_many(scope, receive, send, wait)
                        return
        await self.app(scope, receive, send)

    async def _too_many(self, scope: Scope, receive: Receive, send: Send, wait: float) -> None:
        seconds = max(1, math.ceil(wait))
        response = problem_response(
            429,
            "Too Many Requests",
            f"more than {self.limiter.per_minute} writes a minute (or {int(self.limiter.burst)} at once) from one "
            f"person: try again in {seconds} s",
            instance=scope["path"],
            headers={"Retry-After": str(seconds)},
            retry_after=seconds,
        )
        await response(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").partition(" ")
            token = rest.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None
