"""The social graph replica: follows, mutes, blocks and teams, kept from the people service's events.

Every service that decides who may see a post keeps this replica in its own schema and asks the SQL
function `may_see(viewer, author, audience)` (shared/migrations/0003_social_graph.sql). A service whose
own data must change with the graph (a feed losing an unfollowed author's posts) calls
`apply_graph_changes` from its own handler, in the same transaction as those changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from shared.consumer import EventConsumer
from shared.db import Connection
from shared.events import (
    Event,
    EventType,
    PersonBlockedV1,
    PersonFollowedV1,
    PersonMutedV1,
    PersonUnblockedV1,
    PersonUnfollowedV1,
    PersonUnmutedV1,
    RelationChangedV1,
    TeamMembershipChangedV1,
)

RELATION_OF: dict[type[RelationChangedV1], tuple[str, bool]] = {
    PersonFollowedV1: ("follow", True),
    PersonUnfollowedV1: ("follow", False),
    PersonMutedV1: ("mute", True),
    PersonUnmutedV1: ("mute", False),
    PersonBlockedV1: ("block", True),
    PersonUnblockedV1: ("block", False),
}

GRAPH_EVENTS: tuple[EventType, ...] = (
    EventType.PERSON_FOLLOWED,
    EventType.PERSON_UNFOLLOWED,
    EventType.PERSON_MUTED,
    EventType.PERSON_UNMUTED,
    EventType.PERSON_BLOCKED,
    EventType.PERSON_UNBLOCKED,
    EventType.TEAM_MEMBERSHIP_CHANGED,
)


async def apply_graph_changes(conn: Connection, events: Sequence[Event]) -> None:
    """Apply relation and team events; per pair (or person) the highest version wins, in any order."""
    relations: dict[tuple[str, str, str], tuple[bool, int]] = {}
    teams: dict[str, tuple[list[str], int]] = {}
    for event in events:
        data = event.data
        if isinstance(data, RelationChangedV1):
            kind, active = RELATION_OF[type(data)]
            key = (data.actor_id, kind, data.target_id)
            if key not in relations or relations[key][1] < data.version:
                relations[key] = (active, data.version)
        elif isinstance(data, TeamMembershipChangedV1) and (
            data.person_id not in teams or teams[data.person_id][1] < data.version
        ):
            teams[data.person_id] = (sorted(set(data.teams)), data.version)
    if relations:
        keys = list(relations)
        await conn.execute(
            """INSERT INTO relations AS r (actor_id, kind, target_id, active, version)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::bigint[])
               ON CONFLICT (actor_id, kind, target_id) DO UPDATE
               SET active = excluded.active, version = excluded.version
               WHERE r.version < excluded.version""",
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [relations[k][0] for k in keys],
            [relations[k][1] for k in keys],
        )
    if teams:
        people = list(teams)
        # unnest cannot take an array of arrays of different lengths: pass each list as one JSON text.
        await conn.execute(
            """INSERT INTO team_members AS t (person_id, teams, version)
               SELECT person_id, ARRAY(SELECT jsonb_array_elements_text(teams::jsonb)), version
               FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(person_id, teams, version)
               ON CONFLICT (person_id) DO UPDATE SET teams = excluded.teams, version = excluded.version
               WHERE t.version < excluded.version""",
            people,
            [_json_list(teams[p][0]) for p in people],
            [teams[p][1] for p in people],
        )


def _json_list(items: list[str]) -> str:
    return orjson.dumps(items).decode()


def social_graph_consumer(service: str) -> EventConsumer:
    return EventConsumer(name=f"{service}.social-graph", event_types=GRAPH_EVENTS, handle=apply_graph_changes)
