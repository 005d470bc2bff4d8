"""The people directory: a replica of names, emails and locales that services keep from events.

Posts show author names, reactions show who liked, notifications name actors and email recipients;
none of them may read the people service's tables, so each keeps this replica of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.consumer import EventConsumer
from shared.db import Connection
from shared.events import Event, EventType, PersonUpdatedV1, newest_by_version


async def remember_person(conn: Connection, *, person_id: str, name: str) -> None:
    """Keep a name seen in a verified token until the people service's versioned event arrives."""
    await conn.execute(
        "INSERT INTO people_directory (id, name, version) VALUES ($1, $2, 0) ON CONFLICT (id) DO NOTHING",
        person_id,
        name,
    )


async def apply_person_updates(conn: Connection, events: Sequence[Event]) -> None:
    updates = [event.data for event in events if isinstance(event.data, PersonUpdatedV1)]
    people = list(newest_by_version(updates, key=lambda p: p.person_id, version=lambda p: p.version).values())
    await conn.execute(
        """INSERT INTO people_directory AS d (id, name, email, locale, version)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
           ON CONFLICT (id) DO UPDATE
           SET name = excluded.name, email = excluded.email, locale = excluded.locale, version = excluded.version
           WHERE d.version < excluded.version""",
        [p.person_id for p in people],
        [p.name for p in people],
        [p.email for p in people],
        [p.locale for p in people],
        [p.version for p in people],
    )


def people_directory_consumer(service: str) -> EventConsumer:
    return EventConsumer(
        name=f"{service}.people-directory", event_types=[EventType.PERSON_UPDATED], handle=apply_person_updates
    )
