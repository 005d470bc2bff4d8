"""Security headers on every answer of the gateway (docs/reliability.md, "Security").

The API answers JSON that no browser should render, frame or run anything from: it gets the most restrictive
Content-Security-Policy there is. Pages that bring their own policy (the web client, web/__init__.py) keep it.
The few other pages (the unsubscribe page, the AsyncAPI page) have no script and load nothing from elsewhere,
so they get a policy that says so; only the interactive OpenAPI pages (/docs, /redoc), which FastAPI draws with
Swagger UI's scripts from a CDN, get no more than a ban on framing. Strict-Transport-Security only in
production, where the gateway stands behind TLS: sent over plain HTTP in development it would pin a browser
to https for localhost.

It also refuses a request whose headers add up to more than MAX_HEADER_BYTES with 431 problem+json, so that
such headers never reach a service. uvicorn's httptools parser sets no limit of its own and has read them by
then (10 MB of one header was answered 200 before this): the proxy in front must bound them too
(docs/reliability.md, "Bad input").

Pure ASGI and cheap: the headers are built once, and each request costs a scan of its few headers.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http import problem_response

# Enough for a large OIDC token with many groups (a few KB) and cookies; nginx's defaults allow 32 KB too.
MAX_HEADER_BYTES = 32 * 1024

API_POLICY = b"default-src 'none'; frame-ancestors 'none'"
PAGE_POLICY = (
    b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    b"frame-ancestors 'none'; base-uri 'none'"
)
DOCS_POLICY = b"frame-ancestors 'none'"
PERMISSIONS_POLICY = b"camera=(), microphone=(), geolocation=(), payment=(), usb=(), browsing-topics=()"
HSTS = b"max-age=31536000; includeSubDomains"

_CSP = b"content-security-policy"
_FRAME_OPTIONS = b"x-frame-options"


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, production: bool, docs_paths: Iterable[str | None] = ()) -> None:
        self.app = app
        # Added when the answer has none of its own (the web client and the unsubscribe page set some).
        self._defaults: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"permissions-policy", PERMISSIONS_POLICY),
        ]
        if production:
            self._defaults.append((b"strict-transport-security", HSTS))
        self._names = frozenset(name for name, _ in self._defaults) | {_CSP, _FRAME_OPTIONS}
        self._docs_paths = frozenset(path for path in docs_paths if path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._secured(scope["path"], list(message.get("headers", ())))
            await send(message)

        size = 0
        for name, value in scope["headers"]:
            size += len(name) + len(value)
        if size > MAX_HEADER_BYTES:
            response = problem_response(
                431,
                "Request Header Fields Too Large",
                f"the request's headers add up to more than {MAX_HEADER_BYTES} bytes",
                instance=scope["path"],
            )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _secured(self, path: str, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        present: set[bytes] = set()
        html = False
        for name, value in headers:
            lowered = name.lower()
            if lowered in self._names:
                present.add(lowered)
            elif lowered == b"content-type":
                html = value.startswith(b"text/html")
        headers += [header for header in self._defaults if header[0] not in present]
        own_policy = _CSP in present
        if not own_policy:
            if not html:
                policy = API_POLICY
            elif path in self._docs_paths:
                policy = DOCS_POLICY
            else:
                policy = PAGE_POLICY
            headers.append((_CSP, policy))
        if _FRAME_OPTIONS not in present:
            # For browsers that predate frame-ancestors; a page with its own policy (the web client) allows
            # its own origin to frame it.
            headers.append((_FRAME_OPTIONS, b"SAMEORIGIN" if own_policy else b"DENY"))
        return headers
