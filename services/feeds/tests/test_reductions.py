"""The pure parts of the feeds service: how a batch of events reduces to one state per subject."""

import uuid
from datetime import UTC, datetime

from services.feeds.service import merge_post_events, newest_like_states, relations_to_reconcile, trim_sample_mask
from services.feeds.tests.events import audience_changed, like, post_created, post_deleted, relation, teams


def test_post_events_merge_in_any_order() -> None:
    post, at = uuid.uuid4(), datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    created = post_created(post, "ada", at=at, version=1)
    narrowed = audience_changed(post, "ada", {"type": "followers"}, version=2)
    gone = post_deleted(post, "ada", version=3)
    for events in ([created, narrowed], [narrowed, created], [created, created, narrowed]):
        [state] = merge_post_events(events)
        assert (state.created_at, state.audience_json, state.audience_version, state.deleted) == (
            at,
            '{"type":"followers"}',
            2,
            False,
        )
    for events in ([gone, created, narrowed], [narrowed, gone, created]):
        [state] = merge_post_events(events)
        assert state.deleted and state.created_at == at
        assert (state.audience_json, state.audience_version) == ('{"type":"followers"}', 2)


def test_the_newest_like_state_per_post_and_person_wins() -> None:
    post = uuid.uuid4()
    events = [
        like(post, "ada", "kari", version=3, active=False),
        like(post, "ada", "kari", version=2),
        like(post, "ada", "ola", version=1),
    ]
    states = {(s.post_id, s.actor_id): s for s in newest_like_states(events)}
    assert (states[(post, "kari")].active, states[(post, "kari")].version) == (False, 3)
    assert (states[(post, "ola")].active, states[(post, "ola")].version) == (True, 1)


def test_a_block_reconciles_both_feeds_and_a_follow_one() -> None:
    pairs, teams_changed = relations_to_reconcile(
        [
            relation("follow", "ada", "kari", version=1),
            relation("block", "ola", "grace", version=1),
            relation("mute", "ada", "ola", version=2, active=False),
            teams("kari", ["design"], version=4),
        ]
    )
    assert pairs == {("ada", "kari"), ("ola", "grace"), ("grace", "ola"), ("ada", "ola")}
    assert teams_changed == {"kari"}


def test_feeds_are_trimmed_on_about_one_insert_in_a_quarter_of_their_bound() -> None:
    assert trim_sample_mask(800) == 127
    assert trim_sample_mask(100) == 15
    assert trim_sample_mask(5) == 0 and trim_sample_mask(1) == 0
