"""Use cases of the search service: keep the search projection from events, and answer searches from it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from services.search import repository
from services.search.projection import PostState, merge, state_of
from shared.db import Connection
from shared.events import Event, PersonUpdatedV1


async def apply_post_changes(conn: Connection, events: Sequence[Event]) -> None:
    states: dict[uuid.UUID, PostState] = {}
    for event in events:
        state = state_of(event.data)
        if state is None:
            continue
        seen = states.get(state.post_id)
        states[state.post_id] = state if seen is None else merge(seen, state)
    if states:
        await repository.upsert_posts(conn, list(states.values()))


async def apply_person_updates(conn: Connection, events: Sequence[Event]) -> None:
    newest: dict[str, PersonUpdatedV1] = {}
    for event in events:
        assert isinstance(event.data, PersonUpdatedV1)
        seen = newest.get(event.data.person_id)
        if seen is None or seen.version < event.data.version:
            newest[event.data.person_id] = event.data
    if newest:
        await repository.upsert_people(conn, list(newest.values()))
