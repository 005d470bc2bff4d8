"""The public JSON API for intranet frontends. Every route but health, readiness, unsubscribing (its token is
its authority) and the development sign-in needs a bearer token; the services verify it again, so none trusts
the network alone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import anyio
import jwt
import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from sse_starlette import EventSourceResponse

from services.gateway import service, stream
from services.gateway.upstream import Upstreams
from shared.api import (
    ChangeAudience,
    CreatePost,
    FavouriteState,
    FeedPage,
    LikeState,
    MarkRead,
    Me,
    NotificationPage,
    NotificationSettings,
    NotificationSettingsUpdate,
    PersonPage,
    Post,
    PostPage,
    Profile,
    ProfileUpdate,
    SearchPage,
    Unsubscribe,
    Unsubscribed,
)
from shared.auth import Claims, TokenVerifier, bearer_token, mint_token
from shared.demo import DEMO_USERS
from shared.http import ProblemError

router = APIRouter(prefix="/api")
_bearer = HTTPBearer(auto_error=False, description="A JWT from the identity provider (or the development sign-in)")

PROBLEM: dict[str, Any] = {"description": "Problem details (RFC 9457)", "content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {401: PROBLEM, 422: PROBLEM}
PageLimit = Annotated[int, Query(ge=1, le=100, description="items per page")]


@dataclass(frozen=True)
class SignedIn:
    claims: Claims
    token: str


async def _sign_in(request: Request, token: str) -> SignedIn:
    verifier: TokenVerifier = request.app.state.verifier
    claims = await verifier.verify_async(token)
    await request.app.state.profiles.ensure(claims, token)
    return SignedIn(claims, token)


async def signed_in(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> SignedIn:
    return await _sign_in(request, bearer_token(request))


async def signed_in_to_stream(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    access_token: Annotated[
        str | None,
        Query(description="the bearer token, for clients that cannot send headers (a browser's EventSource)"),
    ] = None,
) -> SignedIn:
    if access_token and "authorization" not in request.headers:
        return await _sign_in(request, access_token)
    return await _sign_in(request, bearer_token(request))


User = Annotated[SignedIn, Depends(signed_in)]
StreamUser = Annotated[SignedIn, Depends(signed_in_to_stream)]


def upstreams(request: Request) -> Upstreams:
    found: Upstreams = request.app.state.upstreams
    return found


def _page_params(cursor: str | None, limit: int) -> list[tuple[str, str]]:
    return [("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])


@router.post("/posts", status_code=201, response_model=Post, responses=ERRORS)
async def create_post(request: Request, body: CreatePost, user: User) -> Response:
    reply = await upstreams(request).call(
        "posts", "POST", "/posts", token=user.token, body=body.model_dump_json().encode()
    )
    return reply.to_response()


@router.get("/posts/{post_id}", response_model=Post, responses={**ERRORS, 404: PROBLEM})
async def get_post(request: Request, post_id: uuid.UUID, user: User) -> Response:
    return await service.post_for_viewer(upstreams(request), post_id=str(post_id), token=user.token)


@router.delete("/posts/{post_id}", status_code=204, responses={**ERRORS, 403: PROBLEM, 404: PROBLEM})
async def delete_post(request: Request, post_id: uuid.UUID, user: User) -> Response:
    reply = await upstreams(request).call("posts", "DELETE", f"/posts/{post_id}", token=user.token)
    return reply.to_response() if reply.status != 204 else Response(status_code=204)


# services/gateway/fastpath.py answers the four reaction routes below before FastAPI sees them, in the
# common case; these declarations document them and answer whatever the fast path passes on. Keep both in step.
async def _reaction(request: Request, method: str, post_id: uuid.UUID, what: str, user: SignedIn) -> Response:
    reply = await upstreams(request).call("reactions", method, f"/posts/{post_id}/{what}", token=user.token)
    return reply.to_response()


@router.put("/posts/{post_id}/like", response_model=LikeState, responses={**ERRORS, 404: PROBLEM})
async def like(request: Request, post_id: uuid.UUID, user: User) -> Response:
    """Idempotent: liking twice is one like. The reply's count is already exact."""
    return await _reaction(request, "PUT", post_id, "like", user)


@router.delete("/posts/{post_id}/like", response_model=LikeState, responses={**ERRORS, 404: PROBLEM})
async def unlike(request: Request, post_id: uuid.UUID, user: User) -> Response:
    return await _reaction(request, "DELETE", post_id, "like", user)


@router.put("/posts/{post_id}/favourite", response_model=FavouriteState, responses={**ERRORS, 404: PROBLEM})
async def favourite(request: Request, post_id: uuid.UUID, user: User) -> Response:
    """Idempotent. The author is emailed who favourited which post."""
    return await _reaction(request, "PUT", post_id, "favourite", user)


@router.delete("/posts/{post_id}/favourite", response_model=FavouriteState, responses={**ERRORS, 404: PROBLEM})
async def unfavourite(request: Request, post_id: uuid.UUID, user: User) -> Response:
    return await _reaction(request, "DELETE", post_id, "favourite", user)


@router.get("/posts/{post_id}/likes", response_model=PersonPage, responses={**ERRORS, 404: PROBLEM})
async def likers(
    request: Request, post_id: uuid.UUID, user: User, cursor: str | None = None, limit: PageLimit = 20
) -> Response:
    """Who liked the post, newest first."""
    reply = await upstreams(request).call(
        "reactions", "GET", f"/posts/{post_id}/likes", token=user.token, params=_page_params(cursor, limit)
    )
    return reply.to_response()


@router.get("/me", response_model=Me, responses=ERRORS)
async def me(request: Request, user: User) -> Response:
    reply = await upstreams(request).call("people", "GET", "/me", token=user.token)
    return reply.to_response()


@router.get("/me/favourites", response_model=PostPage, responses=ERRORS)
async def my_favourites(request: Request, user: User, cursor: str | None = None, limit: PageLimit = 20) -> Response:
    """The posts you favourited, newest favourite first."""
    return await service.favourites_for_viewer(upstreams(request), token=user.token, cursor=cursor, limit=limit)


@router.get("/notifications", response_model=NotificationPage, responses=ERRORS)
async def notifications(request: Request, user: User, cursor: str | None = None, limit: PageLimit = 20) -> Response:
    """Your inbox, latest activity first, with the unread count."""
    reply = await upstreams(request).call(
        "notifications", "GET", "/notifications", token=user.token, params=_page_params(cursor, limit)
    )
    return reply.to_response()


@router.post("/notifications/read", status_code=204, responses=ERRORS)
async def mark_read(request: Request, body: MarkRead, user: User) -> Response:
    """Mark some notifications (`ids`) or all of them (`all: true`) read."""
    reply = await upstreams(request).call(
        "notifications",
        "POST",
        "/notifications/read",
        token=user.token,
        body=body.model_dump_json(exclude_none=True).encode(),
    )
    return reply.to_response() if reply.status != 204 else Response(status_code=204)


STREAM_DESCRIPTION = """Live changes to your notifications as Server-Sent Events (docs/streaming.md).

The first message says where you stand: `unread` (`{"seq", "unread"}`), or, when resuming, `notifications`
with everything missed, or `reset` (`{"seq", "unread"}`: too much was missed; reload the inbox). Then one
`notifications` message per change: `{"seq", "items", "removed", "unread"}`, items shaped like the inbox's.
Every message's id is its `seq`: reconnect with `Last-Event-ID` (EventSource does) to miss nothing.

Authenticate with the Authorization header or, from a browser's EventSource, with `?access_token=`. The stream
ends when the token expires; open a new one with a fresh token."""


def _token_expiry(token: str) -> float:
    # The verifier has checked the signature and that `exp` is there; only its value is wanted here.
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"description": "an endless text/event-stream", "content": {"text/event-stream": {}}}, **ERRORS},
    tags=["notifications"],
    summary="Live notifications",
    description=STREAM_DESCRIPTION,
)
async def notification_stream(
    request: Request,
    user: StreamUser,
    last_event_id: Annotated[
        int | None, Query(ge=0, description="resume after this change, when the Last-Event-ID header cannot be set")
    ] = None,
    last_event_id_header: Annotated[int | None, Header(alias="Last-Event-ID", ge=0)] = None,
) -> EventSourceResponse:
    # The header wins: on reconnecting, EventSource sends the newest id there while the URL, with any
    # ?last_event_id= in it, stays as it was first opened.
    resume_after = last_event_id_header if last_event_id_header is not None else last_event_id
    shutdown = anyio.Event()
    events = stream.notification_events(
        request.app.state.live,
        upstreams(request),
        recipient_id=user.claims.sub,
        token=user.token,
        last_event_id=resume_after,
        expires_at=_token_expiry(user.token),
        shutdown=shutdown,
    )
    return EventSourceResponse(
        events,
        ping=stream.PING_SECONDS,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        shutdown_event=shutdown,
        shutdown_grace_period=stream.SHUTDOWN_GRACE_SECONDS,
    )


@router.get("/me/notification-settings", response_model=NotificationSettings, responses=ERRORS, tags=["notifications"])
async def my_notification_settings(request: Request, user: User) -> Response:
    """Which notifications reach you how, when summaries come, and your quiet hours."""
    reply = await upstreams(request).call("notifications", "GET", "/notification-settings", token=user.token)
    return reply.to_response()


@router.put("/me/notification-settings", response_model=NotificationSettings, responses=ERRORS, tags=["notifications"])
async def change_my_notification_settings(request: Request, body: NotificationSettingsUpdate, user: User) -> Response:
    """Change some of your notification settings; fields left out keep their value, `quiet_hours: null`
    turns quiet hours off."""
    reply = await upstreams(request).call(
        "notifications",
        "PUT",
        "/notification-settings",
        token=user.token,
        # exclude_unset, not exclude_none: an explicit null (quiet hours off) is a change.
        body=body.model_dump_json(exclude_unset=True).encode(),
    )
    return reply.to_response()


UnsubscribeToken = Annotated[
    str | None, Query(min_length=1, max_length=2000, description="the token from the email's unsubscribe link")
]


def _missing_token() -> ProblemError:
    return ProblemError(
        422,
        "Unprocessable Content",
        "invalid input in query.token",
        errors=[
            {
                "field": "query.token",
                "message": 'give the unsubscribe token as ?token=, as JSON {"token": ...} or as the form field token',
                "type": "missing",
            }
        ],
    )


async def _token_in_body(request: Request) -> str | None:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    body = await request.body()
    if media_type == "application/json":
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ProblemError(
                422,
                "Unprocessable Content",
                "invalid input in body",
                errors=[{"field": "body", "message": "not valid JSON", "type": "json_invalid"}],
            ) from exc
        token = parsed.get("token") if isinstance(parsed, dict) else None
        return token if isinstance(token, str) else None
    if media_type == "application/x-www-form-urlencoded":
        return parse_qs(body.decode(errors="replace")).get("token", [None])[0]
    # RFC 8058 mail clients send multipart/form-data with only List-Unsubscribe=One-Click: their token is in
    # the URL, which the caller has already looked at.
    return None


@router.post(
    "/unsubscribe",
    response_model=Unsubscribed,
    responses={400: PROBLEM, 422: PROBLEM},
    tags=["notifications"],
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": Unsubscribe.model_json_schema()},
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "properties": {"token": {"type": "string"}}}
                },
            },
        }
    },
)
async def unsubscribe(request: Request, token: UnsubscribeToken = None) -> Response:
    """RFC 8058 one-click unsubscribe, needing no sign-in: the token is the authority. It may come in the URL
    (`List-Unsubscribe-Post: List-Unsubscribe=One-Click`), as JSON `{"token"}` or as the form field `token`.
    A bad or expired token is a 400 or 422. A browser's form post gets a page instead of JSON."""
    token = token or await _token_in_body(request)
    if not token:
        raise _missing_token()
    try:
        checked = Unsubscribe(token=token)
    except ValidationError as exc:
        raise ProblemError(
            422,
            "Unprocessable Content",
            "invalid input in body.token",
            errors=[{"field": "body.token", "message": e["msg"], "type": e["type"]} for e in exc.errors()],
        ) from exc
    reply = await upstreams(request).call(
        "notifications", "POST", "/unsubscribe", token=None, body=checked.model_dump_json().encode()
    )
    if "text/html" in request.headers.get("accept", ""):
        return service.unsubscribed_page(reply, language=_page_language(request))
    return reply.to_response()


@router.get("/unsubscribe", response_class=HTMLResponse, responses={422: PROBLEM}, tags=["notifications"])
async def unsubscribe_page(
    request: Request,
    token: Annotated[str, Query(min_length=1, max_length=2000, description="the token from the email's link")],
) -> Response:
    """Where an email's unsubscribe link leads. Opening it changes nothing, because mail scanners open links
    too: the page asks, and its button POSTs to /api/unsubscribe."""
    return service.unsubscribe_page(token, language=_page_language(request))


def _page_language(request: Request) -> str:
    return service.preferred_language(
        request.headers.get("accept-language"), default=request.app.state.settings.default_locale
    )


@router.patch("/posts/{post_id}", response_model=Post, responses={**ERRORS, 403: PROBLEM, 404: PROBLEM})
async def change_audience(request: Request, post_id: uuid.UUID, body: ChangeAudience, user: User) -> Response:
    """Widen or narrow who may see your post. Outside its audience a post does not exist."""
    reply = await upstreams(request).call(
        "posts", "PATCH", f"/posts/{post_id}", token=user.token, body=body.model_dump_json().encode()
    )
    if reply.status != 200:
        return reply.to_response()
    return await service.post_for_viewer(upstreams(request), post_id=str(post_id), token=user.token)


PersonId = Annotated[str, Path(min_length=1, max_length=200, description="the person's id (the token's sub)")]
Relation = Literal["follow", "mute", "block"]


@router.get("/people/{person_id}", response_model=Profile, responses={**ERRORS, 404: PROBLEM}, tags=["people"])
async def profile(request: Request, person_id: PersonId, user: User) -> Response:
    reply = await upstreams(request).call("people", "GET", f"/people/{person_id}", token=user.token)
    return reply.to_response()


@router.patch("/me", response_model=Profile, responses=ERRORS, tags=["people"])
async def update_me(request: Request, body: ProfileUpdate, user: User) -> Response:
    """Edit your own profile: title, department, location, bio, expertise, languages, photo URL."""
    reply = await upstreams(request).call(
        "people", "PATCH", "/me", token=user.token, body=body.model_dump_json(exclude_unset=True).encode()
    )
    return reply.to_response()


@router.put(
    "/people/{person_id}/{relation}",
    responses={**ERRORS, 403: PROBLEM, 404: PROBLEM},
    tags=["people"],
    summary="Follow, mute or block someone",
)
async def relate(request: Request, person_id: PersonId, relation: Relation, user: User) -> Response:
    """Answers `{"following": true}`, `{"muted": true}` or `{"blocked": true}`. Muting is silent: their posts
    and activity leave your feed and they stop notifying you. Blocking ends follows both ways, and neither
    of you sees the other's posts or likes."""
    reply = await upstreams(request).call("people", "PUT", f"/people/{person_id}/{relation}", token=user.token)
    return reply.to_response()


@router.delete(
    "/people/{person_id}/{relation}",
    responses={**ERRORS, 404: PROBLEM},
    tags=["people"],
    summary="Unfollow, unmute or unblock someone",
)
async def unrelate(request: Request, person_id: PersonId, relation: Relation, user: User) -> Response:
    reply = await upstreams(request).call("people", "DELETE", f"/people/{person_id}/{relation}", token=user.token)
    return reply.to_response()


@router.get("/people/{person_id}/followers", response_model=PersonPage, responses=ERRORS, tags=["people"])
async def followers(
    request: Request, person_id: PersonId, user: User, cursor: str | None = None, limit: PageLimit = 20
) -> Response:
    reply = await upstreams(request).call(
        "people", "GET", f"/people/{person_id}/followers", token=user.token, params=_page_params(cursor, limit)
    )
    return reply.to_response()


@router.get("/people/{person_id}/following", response_model=PersonPage, responses=ERRORS, tags=["people"])
async def following(
    request: Request, person_id: PersonId, user: User, cursor: str | None = None, limit: PageLimit = 20
) -> Response:
    reply = await upstreams(request).call(
        "people", "GET", f"/people/{person_id}/following", token=user.token, params=_page_params(cursor, limit)
    )
    return reply.to_response()


@router.get("/feed", response_model=FeedPage, responses=ERRORS, tags=["feeds"])
async def home_feed(request: Request, user: User, cursor: str | None = None, limit: PageLimit = 20) -> Response:
    """Your posts, posts of people you follow and of your teams, and what people you follow liked."""
    return await service.feed_for_viewer(
        upstreams(request), path="/feed", token=user.token, params=_page_params(cursor, limit)
    )


@router.get("/feed/trending", response_model=FeedPage, responses=ERRORS, tags=["feeds"])
async def trending_feed(request: Request, user: User, cursor: str | None = None, limit: PageLimit = 20) -> Response:
    """The posts most people backed over the last 7 days, among those you may see."""
    return await service.feed_for_viewer(
        upstreams(request), path="/feed/trending", token=user.token, params=_page_params(cursor, limit)
    )


@router.get("/teams/{team}/feed", response_model=FeedPage, responses={**ERRORS, 404: PROBLEM}, tags=["feeds"])
async def team_feed(
    request: Request,
    team: Annotated[str, Path(min_length=1, max_length=200)],
    user: User,
    cursor: str | None = None,
    limit: PageLimit = 20,
) -> Response:
    """Posts to one of your teams."""
    return await service.feed_for_viewer(
        upstreams(request), path=f"/teams/{team}/feed", token=user.token, params=_page_params(cursor, limit)
    )


@router.get("/search", response_model=SearchPage, responses=ERRORS, tags=["search"])
async def search(
    request: Request,
    user: User,
    q: Annotated[str, Query(description='1-200 characters; websearch syntax ("a phrase", or, -word)')],
    kind: Annotated[Literal["posts", "people"], Query(alias="type")] = "posts",
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> Response:
    """Posts you may see, or people by name, title and expertise; Norwegian and English, best match first."""
    params = [("q", q), ("type", kind), ("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])
    return await service.search_for_viewer(upstreams(request), token=user.token, params=params)


@router.get("/health", tags=["operations"])
async def health() -> dict[str, str]:
    """Liveness: the gateway process answers."""
    return {"status": "ok"}


@router.get("/ready", tags=["operations"], responses={503: {"description": "something is not reachable"}})
async def ready(request: Request) -> JSONResponse:
    """Readiness: every service answers, and each reaches PostgreSQL and RabbitMQ."""
    checks = await upstreams(request).readiness()
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


class DevUser(BaseModel):
    id: str
    name: str
    email: str | None


class DevSignIn(BaseModel):
    user_id: str


class DevToken(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


dev_router = APIRouter(prefix="/api/dev", tags=["development sign-in"])


@dev_router.get("/users")
async def dev_users() -> list[DevUser]:
    """DEVELOPMENT ONLY: the demo users one can sign in as."""
    return [DevUser(id=u.sub, name=u.name, email=u.email) for u in DEMO_USERS]


@dev_router.post("/sign-in", responses={404: PROBLEM, 422: PROBLEM})
async def dev_sign_in(request: Request, body: DevSignIn) -> DevToken:
    """DEVELOPMENT ONLY: a token for a demo user, signed with JWT_SECRET. Off when a production issuer
    is configured."""
    for claims in DEMO_USERS:
        if claims.sub == body.user_id:
            ttl = 12 * 3600
            return DevToken(
                access_token=mint_token(request.app.state.settings, claims, ttl_seconds=ttl), expires_in=ttl
            )
    raise ProblemError(404, "Not Found", f"no demo user {body.user_id!r}; see GET /api/dev/users")
