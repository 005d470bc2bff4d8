"""Bearer-token verification, the same in the gateway and in every service.

Development: HS256 with JWT_SECRET. Production: the identity provider's keys from JWT_JWKS_URL, with
the issuer and audience checked. `sub` is the stable user id; `name`, `email`, `locale` and `groups`
fill the profile.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import jwt
from fastapi import Depends, Request
from pydantic import BaseModel, Field

from shared.http import ProblemError
from shared.settings import Settings

ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class Claims(BaseModel):
    sub: str = Field(min_length=1, max_length=200)
    name: str = Field("", max_length=200)
    email: str | None = Field(None, max_length=320)
    locale: str | None = Field(None, max_length=35)
    groups: list[str] = Field(default_factory=list)


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True) if settings.jwt_jwks_url else None
        # Verification is pure CPU and repeated on every request: remember recent verdicts briefly.
        self._cache: dict[str, tuple[float, Claims]] = {}

    def verify(self, token: str) -> Claims:
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        options: jwt.types.Options = {"require": ["exp", "sub"]}
        try:
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
                payload = jwt.decode(
                    token,
                    key,
                    algorithms=ASYMMETRIC_ALGORITHMS,
                    issuer=self._issuer,
                    audience=self._audience,
                    options=options,
                )
            else:
                payload = jwt.decode(
                    token,
                    self._secret,
                    algorithms=["HS256"],
                    issuer=self._issuer,
                    audience=self._audience,
                    options={**options, "verify_aud": self._audience is not None},
                )
            claims = Claims.model_validate(payload)
        except jwt.ExpiredSignatureError as exc:
            raise _unauthorized("the token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"the token is not valid: {exc}") from exc
        except ValueError as exc:
            raise _unauthorized("the token's claims are not valid") from exc
        if len(self._cache) > 10_000:
            self._cache.clear()
        # Never beyond the token's own expiry, and at most a minute.
        self._cache[token] = (min(float(payload["exp"]), now + 60), claims)
        return claims

    async def verify_async(self, token: str) -> Claims:
        if self._jwks is not None and token not in self._cache:
            # Fetching keys is blocking I/O in PyJWT: keep it off the event loop.
            return await asyncio.to_thread(self.verify, token)
        return self.verify(token)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("an Authorization: Bearer token is required")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


async def current_claims(request: Request) -> Claims:
    verifier: TokenVerifier = request.app.state.verifier
    return await verifier.verify_async(bearer_token(request))


CurrentUser = Annotated[Claims, Depends(current_claims)]


def mint_token(settings: Settings, claims: Claims, *, ttl_seconds: int = 12 * 3600) -> str:
    """A development token signed with JWT_SECRET (the development sign-in and tests use it)."""
    now = int(time.time())
    payload = {**claims.model_dump(exclude_none=True), "iat": now, "exp": now + ttl_seconds}
    if settings.jwt_issuer:
        payload["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        payload["aud"] = settings.jwt_audience
    return jwt.encode(payload, settings.jwt_secret, algorithm="HS256")
