"""The hottest routes of the gateway, forwarded without FastAPI's routing and dependency injection.

A like (or favourite, or taking either back) is the one request people make in bulk, and the gateway
only forwards it: check the token, sync the profile on first sight, call the reactions service, pass the
reply on. Under load FastAPI's middleware stack, router and dependency solving cost the gateway more CPU
than that work itself (docs/benchmarks.md), so this middleware answers those requests directly. Anything
it is not sure about (no or bad token, a body, a path FastAPI would parse differently) goes on to the
FastAPI app unchanged, which gives the documented answers and errors; the routes stay declared there
for the OpenAPI document.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.service import ProfileSync
from services.gateway.upstream import Upstreams
from shared.auth import Claims, TokenVerifier
from shared.http import ProblemError, problem_response

# The canonical form only: that is what FastAPI's UUID path parameter would forward too.
_REACTION_PATH = re.compile(
    r"/api/posts/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/(like|favourite)"
)
# The routes' templates as FastAPI declares them, for the request metrics (shared/http.py RequestTelemetry).
_ROUTE_TEMPLATES = {kind: f"/api/posts/{{post_id}}/{kind}" for kind in ("like", "favourite")}


class ReactionFastPath:
    def __init__(self, app: ASGIApp, *, verifier: TokenVerifier, profiles: ProfileSync, upstreams: Upstreams) -> None:
        self.app = app
        self.verifier = verifier
        self.profiles = profiles
        self.upstreams = upstreams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("PUT", "DELETE"):
            match = _REACTION_PATH.fullmatch(scope["path"])
            token = _bearer_without_body(scope) if match else None
            if match and token:
                try:
                    claims = await self.verifier.verify_async(token)
                except ProblemError:
                    claims = None  # FastAPI's route answers with the problem details
                if claims is not None:
                    scope["tillit.route"] = _ROUTE_TEMPLATES[match[2]]
                    await self._forward(scope, send, claims, token, f"/posts/{match[1]}/{match[2]}")
                    return
        await self.app(scope, receive, send)

    async def _forward(self, scope: Scope, send: Send, claims: Claims, token: str, path: str) -> None:
        await self.profiles.ensure(claims, token)
        try:
            reply = await self.upstreams.call("reactions", scope["method"], path, token=token)
        except ProblemError as exc:
            response = problem_response(exc.status, exc.title, exc.detail, instance=scope["path"], headers=exc.headers)
            await response(scope, _no_body, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type.encode("latin-1")),
                    (b"content-length", str(len(reply.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})


def _bearer_without_body(scope: Scope) -> str | None:
    """The bearer token, if the request has one and announces no body (these routes take none)."""
    token = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and rest.strip():
                token = rest.strip()
        elif (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
            return None
    return token


async def _no_body() -> dict[str, object]:
    return {"type": "http.request", "body": b"", "more_body": False}
