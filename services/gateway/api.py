"""The public JSON API for intranet frontends. Every route but health, readiness and the development
sign-in needs a bearer token; the services verify it again, so none trusts the network alone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from services.gateway import service
from services.gateway.upstream import Upstreams
from shared.api import (
    CreatePost,
    FavouriteState,
    LikeState,
    MarkRead,
    Me,
    NotificationPage,
    PersonPage,
    Post,
    PostPage,
)
from shared.auth import Claims, TokenVerifier, bearer_token, mint_token
from shared.demo import DEMO_USERS
from shared.http import ProblemError

router = APIRouter(prefix="/api")
_bearer = HTTPBearer(auto_error=False, description="A JWT from the identity provider (or the development sign-in)")

PROBLEM = {"description": "Problem details (RFC 9457)", "content": {"application/problem+json": {}}}
ERRORS = {401: PROBLEM, 422: PROBLEM}
PageLimit = Annotated[int, Query(ge=1, le=100, description="items per page")]


@dataclass(frozen=True)
class SignedIn:
    claims: Claims
    token: str


async def signed_in(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> SignedIn:
    token = bearer_token(request)
    verifier: TokenVerifier = request.app.state.verifier
    claims = await verifier.verify_async(token)
    await request.app.state.profiles.ensure(claims, token)
    return SignedIn(claims, token)


User = Annotated[SignedIn, Depends(signed_in)]


def upstreams(request: Request) -> Upstreams:
    return request.app.state.upstreams  # type: ignore[no-any-return]


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
