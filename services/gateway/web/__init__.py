"""The reference web client (docs/web-client.md): plain HTML, CSS and ES modules served as they are, with no
build step, and index.html for every route the client draws, so that links in emails and reloads land in it."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent

# The client's own routes (assets/js/router.js draws them). /api, /docs, /openapi.json and /asyncapi stay the API's.
CLIENT_ROUTES = (
    "/",
    "/sign-in",
    "/trending",
    "/favourites",
    "/teams/{team}",
    "/posts/{post_id}",
    "/people/{person_id}",
    "/campaigns",
    "/campaigns/{campaign_id}",
    "/qna/{session_id}",
    "/notifications",
    "/settings/notifications",
    "/leaderboards",
    "/insight",
)

# The client loads nothing from elsewhere; profile photos are the one outside resource (any https URL).
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


async def client_page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


def install(app: FastAPI) -> None:
    """Serve the client at / and its assets at /assets."""
    app.mount("/assets", StaticFiles(directory=WEB_DIR / "assets"), name="web-assets")
    for path in CLIENT_ROUTES:
        app.add_api_route(path, client_page, methods=["GET"], include_in_schema=False)
