"""Use cases of the people service."""

from __future__ import annotations

import asyncpg

from services.people import repository
from shared.api import Me
from shared.auth import Claims
from shared.events import EventType, PersonUpdatedV1, new_envelope
from shared.outbox import add_to_outbox

SOURCE = "people"


async def sync_from_claims(pool: asyncpg.Pool, claims: Claims) -> Me:
    """The identity provider owns name, email and locale: take them from the token when they change."""
    async with pool.acquire() as conn, conn.transaction():
        changed = await repository.upsert_from_claims(
            conn, person_id=claims.sub, name=claims.name, email=claims.email, locale=claims.locale
        )
        if changed is not None:
            event = PersonUpdatedV1(
                person_id=changed["id"],
                name=changed["name"],
                email=changed["email"],
                locale=changed["locale"],
                version=changed["version"],
            )
            envelope = new_envelope(EventType.PERSON_UPDATED, source=SOURCE, subject=claims.sub, data=event)
            await add_to_outbox(conn, envelope)
            row: asyncpg.Record | None = changed
        else:
            row = await repository.fetch_person(conn, claims.sub)
    assert row is not None  # the upsert above created it, or it existed unchanged
    return Me(id=row["id"], name=row["name"], email=row["email"], locale=row["locale"])
