"""One-click unsubscribe (RFC 8058): a signed, expiring token in every email's List-Unsubscribe link.

The token names the person and the settings kind of the email (like, favourite, follow, ...; 'digest' for a
summary). Following it turns that kind's email off: its channel becomes in_app, so the notifications still
reach the inbox. For a digest every kind that goes to the digest becomes in_app. A kind that sends no email
already is left as it is, so a repeated click changes nothing, and never turns back on what was 'off'.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import jwt

from services.notifications import emails
from shared.api import DEFAULT_CHANNELS, Unsubscribed
from shared.http import ProblemError
from shared.settings import Settings

AUDIENCE = "tillit-unsubscribe"
DIGEST = "digest"
EMAIL_CHANNELS = ("email_now", "email_digest")


def make_token(settings: Settings, *, recipient_id: str, kind: str, now: datetime) -> str:
    """The token of an unsubscribe link: `kind` is a settings kind (like, favourite, ...) or 'digest'."""
    if kind != DIGEST and kind not in DEFAULT_CHANNELS:
        raise ValueError(f"no unsubscribe for kind {kind!r}")
    claims = {
        "sub": recipient_id,
        "kind": kind,
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(days=settings.unsubscribe_token_days)).timestamp()),
    }
    return jwt.encode(claims, settings.unsubscribe_secret, algorithm="HS256")


def unsubscribe_url(settings: Settings, token: str) -> str:
    return f"{settings.public_url.rstrip('/')}/api/unsubscribe?token={token}"


def preferences_url(settings: Settings) -> str:
    return f"{settings.public_url.rstrip('/')}/settings/notifications"


def read_token(settings: Settings, token: str, *, now: datetime) -> tuple[str, str]:
    """(recipient, kind) of a valid token; a 400 problem saying what is wrong with any other."""
    try:
        # Expiry is checked against `now` below, the caller's clock, rather than the library's.
        claims = jwt.decode(
            token,
            settings.unsubscribe_secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            options={"require": ["sub", "kind", "aud", "exp"], "verify_exp": False, "verify_iat": False},
        )
    except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError) as exc:
        raise _invalid(settings, "this is not an unsubscribe link") from exc
    except jwt.PyJWTError as exc:
        raise _invalid(settings, "this unsubscribe link is not valid (altered or not from this Tillit)") from exc
    if not isinstance(claims["exp"], int | float) or claims["exp"] <= now.timestamp():
        raise _invalid(settings, "this unsubscribe link has expired")
    kind = claims["kind"]
    if kind != DIGEST and kind not in DEFAULT_CHANNELS:
        raise _invalid(settings, f"this unsubscribe link names an unknown kind of email: {kind!r}")
    return str(claims["sub"]), str(kind)


def _invalid(settings: Settings, why: str) -> ProblemError:
    return ProblemError(
        400,
        "Invalid unsubscribe link",
        f"{why}; choose which emails you get at {preferences_url(settings)}",
    )


async def unsubscribe(
    pool: asyncpg.Pool,
    settings: Settings,
    token: str,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Unsubscribed:
    """Turn off the kind of email the token names (idempotent); see the module's docstring."""
    now = clock()
    recipient_id, kind = read_token(settings, token, now=now)
    async with pool.acquire() as conn, conn.transaction():
        chosen = await emails.channels_for_update(conn, recipient_id) or {}
        current = {**DEFAULT_CHANNELS, **chosen}
        if kind == DIGEST:
            turned_off = [k for k, channel in current.items() if channel == "email_digest"]
        else:
            turned_off = [kind] if current[kind] in EMAIL_CHANNELS else []
        if turned_off:
            await emails.choose_channels(conn, recipient_id, dict.fromkeys(turned_off, "in_app"), now=now)
    if kind == DIGEST:
        return Unsubscribed(kind="digest", channel="in_app")
    return Unsubscribed(kind=kind, channel=current[kind] if not turned_off else "in_app")
