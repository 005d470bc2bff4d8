"""Contribution scores and leaderboards (docs/scores.md).

Every post, comment and like is a subject whose contribution (to whom, in which month, how many posts,
comments, likes received and builder points) is recomputed from the stored states of contents and likes
whenever one of its events arrives. The counters move by the difference between a subject's stored fact and
its recomputed one, so an event delivered twice, late or out of order changes nothing twice; `recount`
recomputes every fact and every counter from the states and reports (and fixes) any difference.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg

from services.reactions import repository
from services.reactions.repository import SCORE_FIELDS
from shared.api import Person
from shared.api_insight import Leaderboard, LeaderboardEntry, LeaderboardKind
from shared.db import Connection
from shared.events import (
    CommentCreatedV1,
    CommentDeletedV1,
    CommentLikedV1,
    CommentReactionChangedV1,
    ContentModeratedV1,
    Event,
    PostCreatedV1,
    PostDeletedV1,
    PostLikedV1,
    PostUnlikedV1,
)
from shared.http import ProblemError

FORMULAS: dict[str, str] = {
    "contributors": "3 * posts + 2 * comments + 1 * likes received",
    "builders": "sum over comments on others' posts of (1 + likes that comment received)",
}
_SCORE_SQL = {
    "contributors": "3 * c.posts + 2 * c.comments + c.likes_received",
    "builders": "c.builder_comments + c.builder_likes",
}
ALL_TEAMS = ""  # the counters' team for the whole organisation

Key = tuple[str, uuid.UUID, str]  # (kind, subject id, liker or '')
Scores = tuple[int, int, int, int, int]  # SCORE_FIELDS
CounterKey = tuple[date, str, str]  # (month, team, person)
Row = asyncpg.Record | Mapping[str, Any]


@dataclass(frozen=True)
class Contribution:
    person_id: str
    month: date
    scores: Scores


@dataclass(frozen=True)
class Fact:
    person_id: str
    month: date
    scores: Scores
    teams: tuple[str, ...]


def _scores(row: Row) -> Scores:
    posts, comments, likes, builder_comments, builder_likes = (int(row[name]) for name in SCORE_FIELDS)
    return (posts, comments, likes, builder_comments, builder_likes)


def _key(row: Row) -> Key:
    return (row["kind"], row["subject_id"], row["actor_id"])


def fact_for(before: Fact | None, now: Contribution, teams_now: Mapping[str, Sequence[str]]) -> Fact:
    """A subject is counted in its person's teams as they were when it was first counted: it keeps them while
    it stays counted for the same person, and takes the person's current teams when it starts counting."""
    if before is not None and before.person_id == now.person_id:
        teams = before.teams
    else:
        teams = tuple(sorted(set(teams_now.get(now.person_id, ()))))
    return Fact(now.person_id, now.month, now.scores, teams)


def counter_keys(fact: Fact) -> list[CounterKey]:
    return [(fact.month, team, fact.person_id) for team in (ALL_TEAMS, *fact.teams)]


@dataclass
class Settlement:
    """What changes when facts are recomputed: facts to write, facts to drop and the counters' differences."""

    save: dict[Key, Fact] = field(default_factory=dict)
    drop: list[Key] = field(default_factory=list)
    deltas: dict[CounterKey, list[int]] = field(default_factory=dict)

    def _move(self, fact: Fact, sign: int) -> None:
        for key in counter_keys(fact):
            delta = self.deltas.setdefault(key, [0] * len(SCORE_FIELDS))
            for i, value in enumerate(fact.scores):
                delta[i] += sign * value

    def delta_rows(self) -> list[dict[str, Any]]:
        rows = []
        for (month, team, person_id), delta in sorted(self.deltas.items()):
            if any(delta):
                rows.append(
                    {
                        "month": month,
                        "team": team,
                        "person_id": person_id,
                        **dict(zip(SCORE_FIELDS, delta, strict=True)),
                    }
                )
        return rows


def settle(
    keys: Iterable[Key],
    *,
    stored: Mapping[Key, Fact],
    now: Mapping[Key, Contribution],
    teams_now: Mapping[str, Sequence[str]],
) -> Settlement:
    """The difference between the stored facts of `keys` and what they contribute now."""
    settlement = Settlement()
    for key in keys:
        before, contribution = stored.get(key), now.get(key)
        after = fact_for(before, contribution, teams_now) if contribution is not None else None
        if before == after:
            continue
        if before is not None:
            settlement._move(before, -1)
        if after is None:
            settlement.drop.append(key)
        else:
            settlement._move(after, +1)
            settlement.save[key] = after
    return settlement


def _fact_rows(facts: Mapping[Key, Fact]) -> list[dict[str, Any]]:
    return [
        {
            "kind": kind,
            "subject_id": subject_id,
            "actor_id": actor_id,
            "person_id": fact.person_id,
            "month": fact.month,
            "teams": list(fact.teams),
            **dict(zip(SCORE_FIELDS, fact.scores, strict=True)),
        }
        for (kind, subject_id, actor_id), fact in sorted(facts.items())
    ]


def _stored(rows: Iterable[Row]) -> dict[Key, Fact]:
    return {_key(r): Fact(r["person_id"], r["month"], _scores(r), tuple(r["teams"])) for r in rows}


def _contributions(rows: Iterable[Row]) -> dict[Key, Contribution]:
    return {_key(r): Contribution(r["person_id"], r["month"], _scores(r)) for r in rows}


# The consumer ------------------------------------------------------------------------------------------------


def _merge_content(seen: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Two events of one post or comment in a batch: details from either, state from the higher version."""
    if seen is None:
        return new
    newer, older = (new, seen) if new["version"] > seen["version"] else (seen, new)
    return {name: newer[name] if newer[name] is not None else older[name] for name in newer}


async def apply_contribution_events(conn: Connection, events: Sequence[Event]) -> None:
    """Keep contents and like states from their events, then settle every subject they touch."""
    contents: dict[uuid.UUID, dict[str, Any]] = {}
    moderations: dict[uuid.UUID, dict[str, Any]] = {}
    likes: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    names: list[tuple[str, str]] = []
    posts_touched: set[uuid.UUID] = set()
    for event in events:
        data = event.data
        content: dict[str, Any] | None = None
        if isinstance(data, PostCreatedV1 | PostDeletedV1):
            created = isinstance(data, PostCreatedV1)
            content = {
                "id": data.post_id,
                "is_comment": False,
                "post_id": data.post_id,
                "author_id": data.author.id if isinstance(data, PostCreatedV1) else data.author_id,
                "post_kind": data.kind if isinstance(data, PostCreatedV1) else None,
                "post_author_id": None,
                "parent_id": None,
                "created_at": data.created_at if isinstance(data, PostCreatedV1) else None,
                "deleted": not created,
                "version": data.version,
            }
            if isinstance(data, PostCreatedV1):
                names.append((data.author.id, data.author.name))
        elif isinstance(data, CommentCreatedV1 | CommentDeletedV1):
            created = isinstance(data, CommentCreatedV1)
            content = {
                "id": data.comment_id,
                "is_comment": True,
                "post_id": data.post_id,
                "author_id": data.author.id if isinstance(data, CommentCreatedV1) else data.author_id,
                "post_kind": data.post_kind if isinstance(data, CommentCreatedV1) else None,
                "post_author_id": data.post_author_id if isinstance(data, CommentCreatedV1) else None,
                "parent_id": data.parent_id if isinstance(data, CommentCreatedV1) else None,
                "created_at": data.created_at if isinstance(data, CommentCreatedV1) else None,
                "deleted": not created,
                "version": data.version,
            }
            if isinstance(data, CommentCreatedV1):
                names.append((data.author.id, data.author.name))
        elif isinstance(data, ContentModeratedV1):
            subject = data.comment_id or data.post_id
            state = {
                "id": subject,
                "is_comment": data.comment_id is not None,
                "post_id": data.post_id,
                "author_id": data.author_id,
                "hidden": data.hidden,
                "moderation_version": data.version,
            }
            seen = moderations.get(subject)
            if seen is None or seen["moderation_version"] < data.version:
                moderations[subject] = state
            posts_touched.add(data.post_id)
        elif isinstance(data, PostLikedV1 | PostUnlikedV1 | CommentReactionChangedV1):
            is_comment = isinstance(data, CommentReactionChangedV1)
            target = data.comment_id if isinstance(data, CommentReactionChangedV1) else data.post_id
            like = {
                "target_id": target,
                "actor_id": data.actor.id,
                "is_comment": is_comment,
                "post_id": data.post_id,
                "active": isinstance(data, PostLikedV1 | CommentLikedV1),
                "occurred_at": data.occurred_at,
                "version": data.version,
            }
            seen_like = likes.get((target, data.actor.id))
            if seen_like is None or seen_like["version"] < data.version:
                likes[(target, data.actor.id)] = like
            names.append((data.actor.id, data.actor.name))
            posts_touched.add(data.post_id)
        if content is not None:
            contents[content["id"]] = _merge_content(contents.get(content["id"]), content)
            posts_touched.add(content["post_id"])
    await repository.lock_posts_for_scoring(conn, sorted(posts_touched))
    if contents:
        await repository.apply_content_states(conn, list(contents.values()))
    if moderations:
        await repository.apply_moderation_states(conn, list(moderations.values()))
    if likes:
        await repository.apply_like_states(conn, list(likes.values()))
    await repository.remember_people(conn, names)
    changed = {**contents, **moderations}
    await settle_subjects(
        conn,
        post_ids=[i for i, c in changed.items() if not c["is_comment"]],
        comment_ids=[i for i, c in changed.items() if c["is_comment"]],
        likes=list(likes),
    )


async def settle_subjects(
    conn: Connection,
    *,
    post_ids: Sequence[uuid.UUID],
    comment_ids: Sequence[uuid.UUID],
    likes: Sequence[tuple[uuid.UUID, str]],
) -> None:
    """Recompute the facts of everything these changes touch and move the counters by the difference."""
    keys = sorted(
        _key(r)
        for r in await repository.affected_score_subjects(conn, post_ids=post_ids, comment_ids=comment_ids, likes=likes)
    )
    if not keys:
        return
    stored = _stored(await repository.stored_facts(conn, keys))
    now = _contributions(
        await repository.score_truth(
            conn,
            post_ids=[s for kind, s, _ in keys if kind == "post"],
            comment_ids=[s for kind, s, _ in keys if kind == "comment"],
            likes=[(s, a) for kind, s, a in keys if kind == "like"],
        )
    )
    teams_now = await repository.teams_of(conn, sorted({c.person_id for c in now.values()}))
    settlement = settle(keys, stored=stored, now=now, teams_now=teams_now)
    if settlement.save:
        await repository.save_facts(conn, _fact_rows(settlement.save))
    await repository.delete_facts(conn, settlement.drop)
    deltas = settlement.delta_rows()
    if deltas:
        await repository.add_to_counters(conn, deltas)


# The recount -------------------------------------------------------------------------------------------------


@dataclass
class RecountReport:
    facts: int  # subjects that count now
    counters: int  # (month, team, person) rows with a score
    differing_facts: list[Key]
    differing_counters: dict[CounterKey, tuple[Scores | None, Scores | None]]  # key -> (stored, recounted)
    fixed: bool

    @property
    def matches(self) -> bool:
        return not self.differing_facts and not self.differing_counters

    def lines(self) -> list[str]:
        verdict = "match" if self.matches else "DIFFER"
        out = [
            f"{self.facts} facts and {self.counters} counters recounted: stored and recounted {verdict}",
            f"  facts differing: {len(self.differing_facts)}; counters differing: {len(self.differing_counters)}",
        ]
        for (month, team, person), (stored, recounted) in sorted(self.differing_counters.items())[:20]:
            out.append(f"  {month:%Y-%m} team={team or '(all)'} {person}: stored {stored}, recounted {recounted}")
        if not self.matches:
            out.append("  fixed: counters and facts now equal the recount" if self.fixed else "  not fixed (--dry-run)")
        return out


async def recount(conn: Connection, *, fix: bool) -> RecountReport:
    """Recompute every fact and counter from the stored contents and like states; compare; fix if asked."""
    async with conn.transaction():
        await repository.lock_scores_for_recount(conn)
        stored = _stored(await repository.all_stored_facts(conn))
        now = _contributions(await repository.all_score_truth(conn))
        teams_now = await repository.all_teams(conn)
        expected = {key: fact_for(stored.get(key), c, teams_now) for key, c in now.items()}
        differing_facts = sorted(key for key in stored.keys() | expected.keys() if stored.get(key) != expected.get(key))
        totals: dict[CounterKey, list[int]] = {}
        for fact in expected.values():
            for key in counter_keys(fact):
                total = totals.setdefault(key, [0] * len(SCORE_FIELDS))
                for i, value in enumerate(fact.scores):
                    total[i] += value
        recounted: dict[CounterKey, Scores] = {k: (v[0], v[1], v[2], v[3], v[4]) for k, v in totals.items() if any(v)}
        counters: dict[CounterKey, Scores] = {
            (r["month"], r["team"], r["person_id"]): _scores(r) for r in await repository.all_counters(conn)
        }
        counters = {k: v for k, v in counters.items() if any(v)}
        differing_counters = {
            k: (counters.get(k), recounted.get(k))
            for k in counters.keys() | recounted.keys()
            if counters.get(k) != recounted.get(k)
        }
        fixing = fix and bool(differing_facts or differing_counters)
        if fixing:
            await repository.delete_facts(conn, [k for k in differing_facts if k not in expected])
            await repository.save_facts(conn, _fact_rows({k: expected[k] for k in differing_facts if k in expected}))
            await repository.replace_counters(
                conn,
                [
                    {"month": m, "team": t, "person_id": p, **dict(zip(SCORE_FIELDS, v, strict=True))}
                    for (m, t, p), v in sorted(recounted.items())
                ],
            )
    return RecountReport(len(expected), len(recounted), differing_facts, differing_counters, fixing)


# Leaderboards ------------------------------------------------------------------------------------------------


def parse_month(month: str) -> date:
    year, number = month.split("-")
    # MONTH_PATTERN lets 0000 through, which date() refuses, and 9999-12 has no next month to end at.
    if not 1 <= int(year) <= 9998:
        raise ProblemError(
            422,
            "Unprocessable Content",
            "invalid input in query.month",
            errors=[{"field": "query.month", "message": "the year must be 0001-9998", "type": "value_error"}],
        )
    return date(int(year), int(number), 1)


async def leaderboard(
    pool: asyncpg.Pool, *, month: str, team: str | None, kind: LeaderboardKind, limit: int
) -> Leaderboard:
    async with pool.acquire() as conn:
        rows = await repository.leaderboard(
            conn, month=parse_month(month), team=team or ALL_TEAMS, by=_SCORE_SQL[kind], limit=limit
        )
    return Leaderboard(
        month=month,
        team=team or None,
        kind=kind,
        formula=FORMULAS[kind],
        items=[
            LeaderboardEntry(
                person=Person(id=r["person_id"], name=r["name"]),
                score=r["score"],
                posts=r["posts"],
                comments=r["comments"],
                likes_received=r["likes_received"],
                comments_on_others=r["builder_comments"],
                likes_on_those=r["builder_likes"],
            )
            for r in rows
        ],
    )
