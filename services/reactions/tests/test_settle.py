"""The score arithmetic without a database: facts settle by difference, in any order, any number of times."""

from __future__ import annotations

import random
import uuid
from datetime import date

from services.reactions.scores import Contribution, Fact, Key, settle

JAN, FEB = date(2024, 1, 1), date(2024, 2, 1)
POST: Key = ("post", uuid.uuid4(), "")
LIKE: Key = ("like", uuid.uuid4(), "kari")


def test_a_new_fact_counts_in_every_team_of_its_person_and_the_organisation() -> None:
    settled = settle(
        [POST], stored={}, now={POST: Contribution("ada", JAN, (1, 0, 0, 0, 0))}, teams_now={"ada": ["b", "a"]}
    )
    assert settled.save == {POST: Fact("ada", JAN, (1, 0, 0, 0, 0), ("a", "b"))}
    assert {(r["team"], r["posts"]) for r in settled.delta_rows()} == {("", 1), ("a", 1), ("b", 1)}


def test_a_counted_fact_keeps_its_teams_and_moves_by_difference() -> None:
    stored = {LIKE: Fact("ada", JAN, (0, 0, 1, 0, 0), ("a",))}
    moved = settle([LIKE], stored=stored, now={LIKE: Contribution("ada", FEB, (0, 0, 1, 0, 0))}, teams_now={})
    assert moved.save[LIKE].teams == ("a",), "teams as they were when it was first counted"
    assert {(r["month"], r["team"], r["likes_received"]) for r in moved.delta_rows()} == {
        (JAN, "", -1),
        (JAN, "a", -1),
        (FEB, "", 1),
        (FEB, "a", 1),
    }
    gone = settle([LIKE], stored=stored, now={}, teams_now={})
    assert gone.drop == [LIKE] and all(r["likes_received"] == -1 for r in gone.delta_rows())


def test_settling_again_changes_nothing() -> None:
    now = {POST: Contribution("ada", JAN, (1, 0, 0, 0, 0))}
    first = settle([POST], stored={}, now=now, teams_now={})
    again = settle([POST], stored=first.save, now=now, teams_now={})
    assert not again.save and not again.drop and not again.delta_rows()


def test_any_sequence_of_states_sums_to_the_last() -> None:
    rng = random.Random(7)
    stored: dict[Key, Fact] = {}
    totals: dict[tuple[date, str, str], list[int]] = {}
    for _ in range(200):
        now = {POST: Contribution(rng.choice(["ada", "bo"]), rng.choice([JAN, FEB]), (1, 0, 0, 0, 0))}
        state = now if rng.random() < 0.7 else {}
        settled = settle([POST], stored=stored, now=state, teams_now={"ada": ["a"], "bo": ["b"]})
        for row in settled.delta_rows():
            total = totals.setdefault((row["month"], row["team"], row["person_id"]), [0])
            total[0] += row["posts"]
        stored = {**{k: v for k, v in stored.items() if k not in settled.drop}, **settled.save}
    expected = {}
    if POST in stored:
        fact = stored[POST]
        expected = {(fact.month, team, fact.person_id): [1] for team in ("", *fact.teams)}
    assert {k: v for k, v in totals.items() if any(v)} == expected
