"""The search projection's merge rules: any order, any repetition, the same post state."""

import itertools
import uuid
from datetime import UTC, datetime
from functools import reduce

from services.search.projection import PostState, merge, state_of
from shared.events import (
    ContentModeratedV1,
    EveryoneAudience,
    PersonRef,
    PostAudienceChangedV1,
    PostCreatedV1,
    PostDeletedV1,
    PrivateAudience,
    TeamAudience,
)

POST_ID = uuid.uuid4()
CREATED_AT = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)

CREATED = PostCreatedV1(
    post_id=POST_ID,
    author=PersonRef(id="ada", name="Ada"),
    kind="idea",
    body="Halvferdig idé: felles ukeplan?",
    audience=EveryoneAudience(type="everyone"),
    created_at=CREATED_AT,
    version=1,
)
TO_TEAM = PostAudienceChangedV1(
    post_id=POST_ID, author_id="ada", audience=TeamAudience(type="team", team="plattform"), version=2
)
TO_PRIVATE = PostAudienceChangedV1(
    post_id=POST_ID, author_id="ada", audience=PrivateAudience(type="private"), version=3
)
DELETED = PostDeletedV1(post_id=POST_ID, author_id="ada", version=4)


def fold(events: list) -> PostState:
    states = [state for state in map(state_of, events) if state is not None]
    assert len(states) == len(events)
    return reduce(merge, states)


def test_created_then_narrowed_twice_keeps_the_newest_audience_in_any_order() -> None:
    expected = PostState(
        post_id=POST_ID,
        author_id="ada",
        body=CREATED.body,
        created_at=CREATED_AT,
        audience={"type": "private"},
        audience_version=3,
        deleted=False,
        version=3,
    )
    for order in itertools.permutations([CREATED, TO_TEAM, TO_PRIVATE]):
        assert fold(list(order)) == expected, order


def test_a_deleted_post_stays_deleted_and_forgets_its_text_in_any_order() -> None:
    for order in itertools.permutations([CREATED, TO_TEAM, TO_PRIVATE, DELETED]):
        state = fold(list(order))
        assert state.deleted and state.body is None and state.version == 4, order


def test_a_late_created_does_not_resurrect_a_deleted_post() -> None:
    state = fold([DELETED, CREATED])
    assert state.deleted and state.body is None
    assert state.created_at == CREATED_AT


def test_repeated_events_change_nothing() -> None:
    once = fold([CREATED, TO_TEAM])
    assert fold([CREATED, TO_TEAM, TO_TEAM, CREATED]) == once
    assert merge(once, once) == once


def test_an_audience_change_before_the_post_is_not_searchable_yet() -> None:
    state = fold([TO_TEAM])
    assert state.body is None and state.created_at is None
    assert state.audience == {"type": "team", "team": "plattform"}
    assert fold([TO_TEAM, CREATED]).audience == {"type": "team", "team": "plattform"}


def test_other_events_tell_nothing() -> None:
    assert state_of(PersonRef(id="ada", name="Ada")) is None


HIDDEN = ContentModeratedV1(post_id=POST_ID, author_id="ada", hidden=True, reason="personopplysninger", version=5)
RESTORED = ContentModeratedV1(post_id=POST_ID, author_id="ada", hidden=False, reason="rettet", version=6)


def test_the_newest_moderation_decision_wins_in_any_order_and_the_text_is_kept() -> None:
    for events in itertools.permutations([CREATED, HIDDEN, RESTORED]):
        state = fold(list(events))
        assert state.hidden is False and state.moderation_version == 6 and state.body == CREATED.body
    for events in itertools.permutations([CREATED, HIDDEN]):
        state = fold(list(events))
        assert state.hidden is True and state.body == CREATED.body, "kept for a restore, found by nobody"


def test_moderating_a_comment_tells_the_post_nothing() -> None:
    comment = ContentModeratedV1(
        post_id=POST_ID, comment_id=POST_ID, author_id="ada", hidden=True, reason="x", version=1
    )
    assert state_of(comment) is None
