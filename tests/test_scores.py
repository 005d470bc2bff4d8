"""Contribution scores and leaderboards end to end: from real posts, comments and likes to the leaderboard,
and incremental counters equal to a full recount after shuffled and duplicated events (docs/scores.md)."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.reactions import scores
from shared.events import (
    CommentLikedV1,
    CommentUnlikedV1,
    Envelope,
    EventType,
    EveryoneAudience,
    PersonRef,
    PostCreatedV1,
    PostDeletedV1,
    PostLikedV1,
    PostUnlikedV1,
    new_envelope,
)
from tests.harness import ROOT, System, eventually, random_id
from tests.test_comment_likes import add_comment, comment_created, comment_deleted, create_post, moderated
from tests.test_reliability import db, publish


async def sign_in_to_team(system: System, team: str, people: list[str], *, extra_groups: tuple[str, ...] = ()) -> None:
    """Each person's first request syncs their teams from the token; wait until the reactions service knows."""
    for person in people:
        async with system.client(system.token(person, groups=[team, *extra_groups])) as client:
            assert (await client.get("/api/me")).status_code == 200
    async with db(system, "reactions") as conn:

        async def known() -> bool:
            count = await conn.fetchval(
                "SELECT count(*) FROM team_members WHERE $1 = ANY(teams) AND person_id = ANY($2::text[])", team, people
            )
            return bool(count == len(people))

        await eventually(known, timeout=30, interval=0.1, message=f"team {team} reaches the reactions service")


async def board(system: System, token: str, **params: Any) -> dict[str, Any]:
    async with system.client(token) as client:
        reply = await client.get("/api/leaderboards", params=params)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def figures(entries: list[dict[str, Any]]) -> dict[str, tuple[int, ...]]:
    return {
        e["person"]["id"]: (
            e["score"],
            e["posts"],
            e["comments"],
            e["likes_received"],
            e["comments_on_others"],
            e["likes_on_those"],
        )
        for e in entries
    }


async def test_scores_and_leaderboards_follow_real_posts_comments_and_likes(system: System) -> None:
    team = random_id("team")
    ada, bo, cy = (random_id(p) for p in ("ada", "bo", "cy"))
    await sign_in_to_team(system, team, [ada, bo, cy])
    ada_token, bo_token, cy_token = (system.token(p, name=f"Name {p}", groups=[team]) for p in (ada, bo, cy))
    month = f"{datetime.now(UTC):%Y-%m}"

    post = await create_post(system, ada_token)
    ada_comment = await add_comment(system, post, author_id=ada)  # on her own post: no builder points
    bo_comment = await add_comment(system, post, author_id=bo)  # input on someone else's post
    async with system.client(bo_token) as client:
        assert (await client.put(f"/api/posts/{post['id']}/like")).status_code == 200
    async with system.client(cy_token) as client:
        assert (await client.put(f"/api/comments/{bo_comment}/like")).status_code == 200
        assert (await client.put(f"/api/comments/{ada_comment}/like")).status_code == 200
    async with system.client(ada_token) as client:
        assert (await client.put(f"/api/posts/{post['id']}/like")).status_code == 200  # a self-like earns nothing

    # score = 3 posts + 2 comments + 1 likes received; builders: 1 + likes per comment on others' posts.
    expected = {ada: (3 + 2 + 2, 1, 1, 2, 0, 0), bo: (2 + 1, 0, 1, 1, 1, 1)}

    async def settled() -> dict[str, Any] | None:
        seen = await board(system, cy_token, month=month, team=team)
        return seen if figures(seen["items"]) == expected else None

    contributors = await eventually(settled, timeout=30, interval=0.2, message="the leaderboard counts every act")
    assert contributors["formula"] == "3 * posts + 2 * comments + 1 * likes received"
    assert (contributors["month"], contributors["team"], contributors["kind"]) == (month, team, "contributors")
    assert [e["person"] for e in contributors["items"]] == [
        {"id": ada, "name": f"Name {ada}"},
        {"id": bo, "name": f"Name {bo}"},
    ]
    builders = await board(system, cy_token, month=month, team=team, kind="builders")
    assert figures(builders["items"]) == {bo: (2, 0, 1, 1, 1, 1)}
    assert "others' posts" in builders["formula"]
    organisation = await board(system, cy_token, month=month, limit=100)
    assert organisation["team"] is None
    assert {k: v for k, v in figures(organisation["items"]).items() if k in (ada, bo, cy)} == expected
    assert (await board(system, cy_token, month="2001-01", team=team))["items"] == []

    # Taking a like back takes its point back.
    async with system.client(bo_token) as client:
        assert (await client.delete(f"/api/posts/{post['id']}/like")).status_code == 200
    expected[ada] = (3 + 2 + 1, 1, 1, 1, 0, 0)
    await eventually(settled, timeout=30, interval=0.2, message="an unlike takes the point back")

    async with system.client(cy_token) as client:
        assert (await client.get("/api/leaderboards", params={"month": "2024-13"})).status_code == 422
        assert (await client.get("/api/leaderboards", params={"kind": "loudest"})).status_code == 422


# Shuffled and duplicated events ------------------------------------------------------------------------------


@dataclass
class World:
    """Events about random posts, comments and likes, with the scores they must add up to (an oracle
    independent of the service's SQL)."""

    rng: random.Random
    people: list[str]
    envelopes: list[Envelope] = field(default_factory=list)
    posts: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    comments: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    likes: dict[tuple[uuid.UUID, str], tuple[bool, datetime]] = field(default_factory=dict)

    def moment(self) -> datetime:
        # Around a month's end in UTC: 23:30 on 31 January is January here, though February in Oslo.
        return datetime(2024, 1, 31, 23, 30, tzinfo=UTC) + timedelta(minutes=self.rng.randrange(-90, 90))

    def add_post(self) -> None:
        post_id, author = uuid.uuid4(), self.rng.choice(self.people)
        created_at = self.moment()
        data = PostCreatedV1(
            post_id=post_id,
            author=PersonRef(id=author, name=author),
            kind="idea",
            body="Forslag",
            audience=EveryoneAudience(type="everyone"),
            created_at=created_at,
            version=1,
        )
        self.envelopes.append(new_envelope(EventType.POST_CREATED, source="posts", subject=str(post_id), data=data))
        state = {"author": author, "month": created_at.date().replace(day=1), "deleted": False, "hidden": False}
        fate = self.rng.random()
        if fate < 0.2:
            state["deleted"] = True
            deleted = PostDeletedV1(post_id=post_id, author_id=author, version=2)
            self.envelopes.append(
                new_envelope(EventType.POST_DELETED, source="posts", subject=str(post_id), data=deleted)
            )
        elif fate < 0.35:
            state["hidden"] = True
            self.envelopes.append(moderated(post_id=post_id, author_id=author, hidden=True, version=3))
        elif fate < 0.5:  # hidden, then restored: counts
            self.envelopes.append(moderated(post_id=post_id, author_id=author, hidden=True, version=3))
            self.envelopes.append(moderated(post_id=post_id, author_id=author, hidden=False, version=4))
        self.posts[post_id] = state

    def add_comment(self) -> None:
        post_id = self.rng.choice(list(self.posts))
        post, author = self.posts[post_id], self.rng.choice(self.people)
        created_at = self.moment()
        envelope = comment_created(
            post_id=post_id, post_author_id=post["author"], author_id=author, post_kind="idea", created_at=created_at
        )
        comment_id = uuid.UUID(envelope.data["comment_id"])
        self.envelopes.append(envelope)
        state = {
            "author": author,
            "post_id": post_id,
            "month": created_at.date().replace(day=1),
            "builder": author != post["author"],
            "deleted": False,
            "hidden": False,
        }
        fate = self.rng.random()
        if fate < 0.15:
            state["deleted"] = True
            self.envelopes.append(comment_deleted(comment_id=comment_id, post_id=post_id, author_id=author))
        elif fate < 0.3:
            state["hidden"] = True
            self.envelopes.append(
                moderated(post_id=post_id, comment_id=comment_id, author_id=author, hidden=True, version=2)
            )
        self.comments[comment_id] = state

    def toggle_likes(self, target: uuid.UUID, *, is_comment: bool, changes: int) -> None:
        """A run of likes and unlikes of one target, as the reactions service stamps them (one version each)."""
        active: set[str] = set()
        owner = self.comments[target]["author"] if is_comment else self.posts[target]["author"]
        post_id = self.comments[target]["post_id"] if is_comment else target
        for version in range(1, changes + 1):
            actor = self.rng.choice(self.people)
            liked = actor not in active
            active.symmetric_difference_update({actor})
            at = self.moment()
            common: dict[str, Any] = {
                "post_id": post_id,
                "actor": PersonRef(id=actor, name=actor),
                "like_count": len(active),
                "version": version,
                "occurred_at": at,
            }
            if is_comment:
                model, kind = (
                    (CommentLikedV1, EventType.COMMENT_LIKED)
                    if liked
                    else (
                        CommentUnlikedV1,
                        EventType.COMMENT_UNLIKED,
                    )
                )
                data: Any = model(comment_id=target, comment_author_id=owner, **common)
            else:
                model_, kind = (PostLikedV1, EventType.POST_LIKED) if liked else (PostUnlikedV1, EventType.POST_UNLIKED)
                data = model_(post_author_id=owner, favourite_count=0, **common)
            self.envelopes.append(new_envelope(kind, source="reactions", subject=str(target), data=data))
            self.likes[(target, actor)] = (liked, at)

    def expected(self) -> dict[tuple[str, str], tuple[int, int, int, int, int]]:
        """(month, person) -> (posts, comments, likes received, builder comments, builder likes)."""
        totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * 5)

        def post_counts(post_id: uuid.UUID) -> bool:
            post = self.posts[post_id]
            return not post["deleted"] and not post["hidden"]

        def comment_counts(comment_id: uuid.UUID) -> bool:
            c = self.comments[comment_id]
            return not c["deleted"] and not c["hidden"] and post_counts(c["post_id"])

        def month(day: Any) -> str:
            return f"{day:%Y-%m}"

        for post_id, post in self.posts.items():
            if post_counts(post_id):
                totals[(month(post["month"]), post["author"])][0] += 1
        for comment_id, c in self.comments.items():
            if comment_counts(comment_id):
                row = totals[(month(c["month"]), c["author"])]
                row[1] += 1
                if c["builder"]:
                    row[3] += 1
                    row[4] += sum(
                        1
                        for (target, actor), (liked, _) in self.likes.items()
                        if target == comment_id and liked and actor != c["author"]
                    )
        for (target, actor), (liked, at) in self.likes.items():
            is_comment = target in self.comments
            owner = self.comments[target]["author"] if is_comment else self.posts[target]["author"]
            counts = comment_counts(target) if is_comment else post_counts(target)
            if liked and counts and actor != owner:
                totals[(f"{at:%Y-%m}", owner)][2] += 1
        return {k: (v[0], v[1], v[2], v[3], v[4]) for k, v in totals.items() if any(v)}


async def recount_cli(system: System, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tillit",
        "recount",
        "scores",
        *args,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": system.direct_database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_incremental_scores_equal_a_recount_after_shuffled_duplicated_events(system: System) -> None:
    rng = random.Random(uuid.uuid4().int)
    world = World(rng, [random_id("p") for _ in range(5)])
    for _ in range(8):
        world.add_post()
    for _ in range(12):
        world.add_comment()
    for post_id in list(world.posts)[:5]:
        world.toggle_likes(post_id, is_comment=False, changes=rng.randrange(3, 9))
    for comment_id in list(world.comments)[:6]:
        world.toggle_likes(comment_id, is_comment=True, changes=rng.randrange(3, 9))

    unique = list(world.envelopes)
    batch = unique + rng.sample(unique, len(unique) // 2)  # half of them delivered twice
    rng.shuffle(batch)
    await publish(system.namespace, batch)

    async with db(system, "reactions") as conn:

        async def applied() -> bool:
            count = await conn.fetchval(
                "SELECT count(*) FROM inbox WHERE consumer = 'reactions.contributions' AND event_id = ANY($1::uuid[])",
                [e.id for e in unique],
            )
            return bool(count == len(unique))

        await eventually(applied, timeout=60, interval=0.2, message="every event applied once")

        rows = await conn.fetch(
            "SELECT to_char(month, 'YYYY-MM') AS month, person_id, posts, comments, likes_received,"
            " builder_comments, builder_likes FROM score_counters WHERE team = '' AND person_id = ANY($1::text[])",
            world.people,
        )
        counters = {
            (r["month"], r["person_id"]): (
                r["posts"],
                r["comments"],
                r["likes_received"],
                r["builder_comments"],
                r["builder_likes"],
            )
            for r in rows
            if any(r[name] for name in ("posts", "comments", "likes_received", "builder_comments", "builder_likes"))
        }
        assert counters == world.expected(), "incremental counters equal the oracle's count"

        report = await scores.recount(conn, fix=False)
        assert report.matches, report.lines()

        # A counter that drifted is found and fixed by the operators' command.
        victim = rng.choice(list(counters))
        await conn.execute(
            "UPDATE score_counters SET posts = posts + 5 WHERE to_char(month, 'YYYY-MM') = $1 AND person_id = $2"
            " AND team = ''",
            *victim,
        )
        code, out = await recount_cli(system, "--dry-run")
        assert code == 1 and "DIFFER" in out and victim[1] in out, out
        code, out = await recount_cli(system)
        assert code == 0 and "fixed" in out, out
        assert (await scores.recount(conn, fix=False)).matches
        fixed = await conn.fetchval(
            "SELECT posts FROM score_counters WHERE to_char(month, 'YYYY-MM') = $1 AND person_id = $2 AND team = ''",
            *victim,
        )
        assert fixed == world.expected()[victim][0]
