"""The bounded chaos round of CI: under a steady mixed load through the gateway, the notifications service
killed with SIGKILL, RabbitMQ and PostgreSQL each stopped and started (through the round's own proxies);
then every projection held against the owners' tables and every answer against what was stored. Any lost
or duplicated item fails. The full round, with every fault and its figures, is `make chaos`
(tests/chaos/, docs/reliability.md)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from tests.chaos.load import Request
from tests.chaos.report import render
from tests.chaos.run import bounded_plan, chaos_round
from tests.chaos.truth import Truth, check_client_records, compare_counts, compare_reaction_groups

# Selected with `-m slow` among the fault tests, or alone with `-k chaos`; `make test` runs it by default.


@pytest.mark.slow
async def test_a_bounded_chaos_round_loses_and_duplicates_nothing() -> None:
    result = await chaos_round(bounded_plan(), log=lambda line: None)
    report = render(result, command="pytest tests/test_chaos.py")
    print(report)
    assert result.lost == 0 and result.duplicated == 0, report
    assert result.wrong == 0, report
    # The round held real traffic throughout, and the faults bit: writes failed while the database was away.
    assert result.load["writes"] > 200, report
    assert result.client is not None and result.client.accepted > 200, report
    assert result.client.unknown > 0, report
    assert result.pipeline["dead_letters"] == 0, report


# The comparison itself: it must name what it is there to find. -------------------------------------------------

AUTHOR, FAN, OTHER, STRANGER = "author", "fan", "other", "stranger"


def _truth(post: uuid.UUID, **facts: Any) -> Truth:
    return Truth(
        posts={post: {"author": AUTHOR, "body": "Halvferdig idé 0123456789ab: kantine"}},
        comments={},
        likes={post: {FAN, OTHER}},
        favourites={},
        follows={(FAN, AUTHOR)},
        post_bodies=["Halvferdig idé 0123456789ab: kantine"],
        comment_bodies=[],
        **facts,
    )


def test_the_comparison_names_counts_too_low_as_lost_and_too_high_as_duplicated() -> None:
    post, gone = uuid.uuid4(), uuid.uuid4()
    found = compare_counts("counts", _truth(post), {post: (1, 1), gone: (1, 0)})
    assert len(found.lost) == 1 and "1 likes counted, 2" in found.lost[0]
    assert len(found.duplicated) == 1 and "favourites" in found.duplicated[0]
    assert len(found.wrong) == 1 and str(gone) in found.wrong[0]
    assert compare_counts("counts", _truth(post), {post: (2, 0)}).clean


def test_the_comparison_names_missing_repeated_and_stale_actors_of_a_notification_group() -> None:
    post = uuid.uuid4()
    truth = _truth(post)
    rows = [
        {"recipient_id": AUTHOR, "post_id": post, "actor_id": FAN},
        {"recipient_id": AUTHOR, "post_id": post, "actor_id": FAN},  # in a second group too
        {"recipient_id": AUTHOR, "post_id": post, "actor_id": STRANGER},  # took the like back
        {"recipient_id": STRANGER, "post_id": post, "actor_id": OTHER},  # told to the wrong person
    ]
    found = compare_reaction_groups("likes", truth, truth.likes, rows)
    assert [len(found.lost), len(found.duplicated), len(found.wrong)] == [1, 1, 2], found
    assert OTHER in found.lost[0] and FAN in found.duplicated[0]


def test_the_client_check_holds_every_answer_against_the_owner() -> None:
    post = uuid.uuid4()
    truth = _truth(post)

    clock = itertools.count()

    def request(op: str, person: str, status: int | None, *, target: str = str(post), tag: str = "") -> Request:
        at = float(next(clock))
        return Request(op, person, target, at, at, status, "test", tag)

    agreeing = [
        request("post", AUTHOR, 201, target="", tag="0123456789ab"),
        request("like", FAN, 200),
        request("unlike", OTHER, 200),
        request("like", OTHER, None),  # no answer: it took effect, which is allowed
        request("follow", FAN, 503, target=AUTHOR),
        request("follow", FAN, 200, target=AUTHOR),
    ]
    assert check_client_records(truth, agreeing).differences.clean
    disagreeing = [
        request("post", AUTHOR, 201, target="", tag="ba9876543210"),  # accepted, not stored
        request("like", FAN, 200),
        request("unlike", FAN, 200),  # the owner still has the like: wrong
        request("unlike", OTHER, 200),
        request("like", OTHER, 404),  # refused, yet the owner has it: wrong
        request("favourite", FAN, 200),  # accepted, not stored: lost
    ]
    found = check_client_records(truth, disagreeing).differences
    assert [len(found.lost), len(found.duplicated), len(found.wrong)] == [2, 0, 2], found
