"""The truth and what differs from it. The truth is read from the owners' own tables (posts and comments in
the posts schema, likes and favourites in the reactions schema, follows in the people schema) and held
against every projection other services keep of it, and against the client's record of what the gateway
answered. Each difference is named: lost (a fact of the owner missing from a projection), duplicated
(counted twice), wrong (a projection disagreeing otherwise: an extra item, a stale state, a wrong reason)."""

from __future__ import annotations

import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.load import Request
from tests.harness import System

# Examples of each kind of difference kept in the report; the counts are complete.
EXAMPLES = 5


@dataclass
class Differences:
    projection: str
    compared: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.wrong)

    def as_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "compared": self.compared,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "wrong": len(self.wrong),
            "examples": (self.lost + self.duplicated + self.wrong)[:EXAMPLES],
        }


@dataclass
class Truth:
    """The owners' facts."""

    posts: dict[uuid.UUID, dict[str, Any]]  # live posts: author, body
    comments: dict[uuid.UUID, dict[str, Any]]  # live comments: post, author, body
    likes: dict[uuid.UUID, set[str]]
    favourites: dict[uuid.UUID, set[str]]
    follows: set[tuple[str, str]]  # (follower, followed), active
    post_bodies: list[str]  # every post's body, deleted or not: where a request's tag is looked for
    comment_bodies: list[str]  # the same of comments

    def followers(self, person: str) -> set[str]:
        return {a for a, t in self.follows if t == person}

    def following(self, person: str) -> set[str]:
        return {t for a, t in self.follows if a == person}


async def read_truth(system: System) -> Truth:
    posts_conn, reactions_conn, people_conn = (
        await system.db("posts"),
        await system.db("reactions"),
        await system.db("people"),
    )
    try:
        every_post = await posts_conn.fetch("SELECT id, author_id, body, deleted_at IS NOT NULL AS deleted FROM posts")
        comments = await posts_conn.fetch(
            "SELECT id, post_id, author_id, body FROM comments WHERE deleted_at IS NULL AND hidden_at IS NULL"
        )
        likes = await reactions_conn.fetch("SELECT post_id, user_id FROM likes")
        favourites = await reactions_conn.fetch("SELECT post_id, user_id FROM favourites")
        comment_bodies = [r["body"] for r in await posts_conn.fetch("SELECT body FROM comments")]
        follows = await people_conn.fetch("SELECT actor_id, target_id FROM relations WHERE kind = 'follow' AND active")
    finally:
        for conn in (posts_conn, reactions_conn, people_conn):
            await conn.close()
    return Truth(
        posts={r["id"]: {"author": r["author_id"], "body": r["body"]} for r in every_post if not r["deleted"]},
        comments={r["id"]: {"post": r["post_id"], "author": r["author_id"], "body": r["body"]} for r in comments},
        likes=_group(likes),
        favourites=_group(favourites),
        follows={(r["actor_id"], r["target_id"]) for r in follows},
        post_bodies=[r["body"] for r in every_post],
        comment_bodies=comment_bodies,
    )


def _group(rows: Iterable[Any]) -> dict[uuid.UUID, set[str]]:
    grouped: dict[uuid.UUID, set[str]] = defaultdict(set)
    for row in rows:
        grouped[row["post_id"]].add(row["user_id"])
    return grouped


# Projections -----------------------------------------------------------------------------------------------


async def compare_projections(system: System, truth: Truth) -> list[Differences]:
    found: list[Differences] = []
    async with _Schemas(system) as db:
        for schema, name in (("posts", "post counts (posts.post_counts)"), ("reactions", "reaction counters")):
            table = "post_counts" if schema == "posts" else "post_counters"
            rows = await db[schema].fetch(f"SELECT post_id, like_count, favourite_count FROM {table}")
            found.append(
                compare_counts(name, truth, {r["post_id"]: (r["like_count"], r["favourite_count"]) for r in rows})
            )

        for kind, facts in (("post.liked", truth.likes), ("post.favourited", truth.favourites)):
            rows = await db["notifications"].fetch(
                """SELECT n.recipient_id, n.post_id, a.actor_id FROM notifications n
                   JOIN notification_actors a ON a.notification_id = n.id WHERE n.kind = $1""",
                kind,
            )
            found.append(compare_reaction_groups(f"notification groups: {kind}", truth, facts, rows))
        rows = await db["notifications"].fetch(
            """SELECT n.recipient_id, a.actor_id FROM notifications n
               JOIN notification_actors a ON a.notification_id = n.id WHERE n.kind = 'person.followed'"""
        )
        found.append(_follow_groups(truth, rows))

        rows = await db["notifications"].fetch(
            "SELECT id, post_id, actor_id, status FROM emails WHERE kind = 'post.favourited'"
        )
        found.append(_favourite_emails(truth, rows))
        sent = await db["notifications"].fetch("SELECT id FROM emails WHERE status = 'sent'")
        found.append(_delivered(system, [r["id"] for r in sent]))

        found.append(await _home_feeds(db["feeds"], truth))
        rows = await db["feeds"].fetch("SELECT post_id, actor_id FROM likes WHERE active")
        found.append(_pairs("feeds' likes replica", _like_pairs(truth), {(r["post_id"], r["actor_id"]) for r in rows}))

        rows = await db["search"].fetch("SELECT id, body, deleted, hidden FROM posts")
        found.append(_search(truth, rows))

        for schema, live in (
            ("reactions", "NOT deleted"),
            ("notifications", "NOT deleted"),
            ("feeds", "NOT deleted AND created_at IS NOT NULL"),
        ):
            rows = await db[schema].fetch(f"SELECT id FROM posts WHERE {live}")
            found.append(_pairs(f"post replica ({schema})", set(truth.posts), {r["id"] for r in rows}))

        comments = set(truth.comments)
        rows = await db["reactions"].fetch(
            "SELECT id FROM contents WHERE is_comment AND created_at IS NOT NULL AND NOT deleted"
        )
        found.append(_pairs("comments (reactions.contents)", comments, {r["id"] for r in rows}))
        rows = await db["notifications"].fetch("SELECT id FROM comments WHERE NOT deleted")
        found.append(_pairs("comments (notifications)", comments, {r["id"] for r in rows}))

        for schema in ("posts", "reactions", "notifications", "feeds", "search"):
            rows = await db[schema].fetch("SELECT actor_id, target_id FROM relations WHERE kind = 'follow' AND active")
            found.append(
                _pairs(f"follow replica ({schema})", truth.follows, {(r["actor_id"], r["target_id"]) for r in rows})
            )
    return found


class _Schemas:
    """A direct connection to each service's schema (never through the round's proxies)."""

    SCHEMAS = ("posts", "reactions", "notifications", "feeds", "search")

    def __init__(self, system: System) -> None:
        self._system = system
        self._conns: dict[str, Any] = {}

    async def __aenter__(self) -> dict[str, Any]:
        for schema in self.SCHEMAS:
            self._conns[schema] = await self._system.db(schema)
        return self._conns

    async def __aexit__(self, *exc: object) -> None:
        for conn in self._conns.values():
            await conn.close()


def compare_counts(name: str, truth: Truth, counted: dict[uuid.UUID, tuple[int, int]]) -> Differences:
    found = Differences(name)
    for post_id in truth.posts:
        expected = (len(truth.likes.get(post_id, ())), len(truth.favourites.get(post_id, ())))
        seen = counted.get(post_id, (0, 0))
        for what, want, got in zip(("likes", "favourites"), expected, seen, strict=True):
            found.compared += 1
            if got < want:
                found.lost.append(f"{post_id}: {got} {what} counted, {want} in the owner")
            elif got > want:
                found.duplicated.append(f"{post_id}: {got} {what} counted, {want} in the owner")
    for post_id in set(counted) - set(truth.posts):
        if counted[post_id] != (0, 0):
            found.wrong.append(f"{post_id}: counts {counted[post_id]} for a post the owner does not have")
    return found


def compare_reaction_groups(name: str, truth: Truth, facts: dict[uuid.UUID, set[str]], rows: list[Any]) -> Differences:
    """Whom the post's author is told reacted: each active reactor but the author, once."""
    found = Differences(name)
    told: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    for row in rows:
        post = truth.posts.get(row["post_id"])
        if post is None or row["recipient_id"] != post["author"]:
            found.wrong.append(f"{row['post_id']}: {row['actor_id']} told to {row['recipient_id']}")
            continue
        told[row["post_id"]][row["actor_id"]] += 1
    for post_id, post in truth.posts.items():
        expected = facts.get(post_id, set()) - {post["author"]}
        seen = told.get(post_id, Counter())
        found.compared += len(expected)
        found.lost += [f"{post_id}: {actor} missing" for actor in sorted(expected - set(seen))]
        found.duplicated += [f"{post_id}: {actor} in {n} groups" for actor, n in sorted(seen.items()) if n > 1]
        found.wrong += [f"{post_id}: {actor} no longer reacts" for actor in sorted(set(seen) - expected)]
    return found


def _follow_groups(truth: Truth, rows: list[Any]) -> Differences:
    found = Differences("notification groups: person.followed")
    told: Counter[tuple[str, str]] = Counter((r["actor_id"], r["recipient_id"]) for r in rows)
    found.compared = len(truth.follows)
    found.lost = [f"{a} follows {t}: not told" for a, t in sorted(truth.follows - set(told))]
    found.duplicated = [f"{a} follows {t}: told {n} times" for (a, t), n in sorted(told.items()) if n > 1]
    found.wrong = [f"{a} no longer follows {t}" for a, t in sorted(set(told) - truth.follows)]
    return found


def _favourite_emails(truth: Truth, rows: list[Any]) -> Differences:
    """A favourite emails the author at once (by default), once per post and person: every favourite that
    stands has its email queued. One taken back later keeps its email: it went already."""
    found = Differences("favourite emails queued (notifications.emails)")
    queued = Counter((r["post_id"], r["actor_id"]) for r in rows)
    expected = {
        (post_id, actor)
        for post_id, actors in truth.favourites.items()
        if post_id in truth.posts
        for actor in actors
        if actor != truth.posts[post_id]["author"]
    }
    found.compared = len(expected)
    found.lost = [f"{post_id}: {actor} favourited, no email" for post_id, actor in sorted(expected - set(queued))]
    found.duplicated = [f"{pair}: {n} emails" for pair, n in sorted(queued.items()) if n > 1]
    return found


def _delivered(system: System, sent: list[uuid.UUID]) -> Differences:
    """Every email marked sent reached the SMTP server, once (the Message-ID comes from the email's row)."""
    found = Differences("emails delivered (SMTP)", compared=len(sent))
    received = Counter(str(m["Message-ID"]).strip("<>").removesuffix("@tillit") for m in system.smtp.messages)
    found.lost = [
        f"email {email_id}: marked sent, never received" for email_id in sent if str(email_id) not in received
    ]
    found.duplicated = [f"email {email_id}: received {n} times" for email_id, n in sorted(received.items()) if n > 1]
    return found


async def _home_feeds(feeds: Any, truth: Truth) -> Differences:
    """Each active reader's home feed, as a read would show it (entries judged again on reading), against
    what the owners' facts give: their own posts, followed authors' posts, posts a followed person likes."""
    found = Differences("home feeds (feeds.feed_entries)")
    readers = [r["person_id"] for r in await feeds.fetch("SELECT person_id FROM readers WHERE built_at IS NOT NULL")]
    likers_of = truth.likes
    for reader in readers:
        following = truth.following(reader)
        expected: dict[uuid.UUID, str] = {}
        for post_id, post in truth.posts.items():
            if post["author"] == reader:
                expected[post_id] = "own"
            elif post["author"] in following:
                expected[post_id] = "followed"
            elif likers_of.get(post_id, set()) & following:
                expected[post_id] = "liked_by_followed"
        rows = await feeds.fetch(
            """SELECT f.post_id, judged.reason::text AS reason FROM feed_entries f
               CROSS JOIN LATERAL home_feed_reason($1, f.post_id) judged WHERE f.owner_id = $1""",
            reader,
        )
        shown = {r["post_id"]: r["reason"] for r in rows}
        found.compared += len(expected)
        found.lost += [f"{reader}: {p} ({expected[p]}) missing" for p in sorted(set(expected) - set(shown))]
        found.wrong += [f"{reader}: {p} shown ({shown[p]})" for p in sorted(set(shown) - set(expected))]
        found.wrong += [
            f"{reader}: {p} shown as {shown[p]}, truth {reason}"
            for p, reason in sorted(expected.items())
            if p in shown and shown[p] != reason
        ]
    return found


def _like_pairs(truth: Truth) -> set[tuple[uuid.UUID, str]]:
    return {(post_id, user) for post_id, users in truth.likes.items() for user in users}


def _search(truth: Truth, rows: list[Any]) -> Differences:
    found = Differences("search index of posts")
    indexed = {r["id"]: r for r in rows if not r["deleted"] and not r["hidden"] and r["body"] is not None}
    found.compared = len(truth.posts)
    found.lost = [f"{p}: not indexed" for p in sorted(set(truth.posts) - set(indexed))]
    found.wrong = [f"{p}: indexed, not in the owner" for p in sorted(set(indexed) - set(truth.posts))]
    found.wrong += [
        f"{p}: body differs"
        for p in sorted(set(indexed) & set(truth.posts))
        if indexed[p]["body"] != truth.posts[p]["body"]
    ]
    return found


def _pairs(name: str, expected: set[Any], seen: set[Any]) -> Differences:
    """A set projection (the primary key rules out duplicates): what is missing, what is extra."""
    found = Differences(name, compared=len(expected))
    found.lost = [f"{item} missing" for item in sorted(expected - seen, key=str)]
    found.wrong = [f"{item} extra" for item in sorted(seen - expected, key=str)]
    return found


# The client's truth ------------------------------------------------------------------------------------------

TAG = re.compile(r"\b([0-9a-f]{12})\b")


@dataclass
class ClientCheck:
    """Every request the gateway accepted is reflected in the owner's tables, and none it refused."""

    accepted: int = 0
    refused: int = 0
    unknown: int = 0  # server errors and requests without an answer: either outcome is right
    unknown_applied: int = 0  # of which the owner shows the effect
    differences: Differences = field(default_factory=lambda: Differences("gateway answers vs owners"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "refused": self.refused,
            "unknown": self.unknown,
            "unknown_applied": self.unknown_applied,
            **self.differences.as_dict(),
        }


def check_client_records(truth: Truth, records: list[Request]) -> ClientCheck:
    check = ClientCheck()
    found = check.differences
    tags = {
        "post": Counter(m.group(1) for body in truth.post_bodies if (m := TAG.search(body))),
        "comment": Counter(m.group(1) for body in truth.comment_bodies if (m := TAG.search(body))),
    }
    pairs: dict[tuple[str, str, str], list[Request]] = defaultdict(list)
    for record in records:
        check.accepted += record.accepted
        check.refused += record.refused
        check.unknown += record.unknown
        found.compared += 1
        if record.op in ("post", "comment"):
            stored = tags[record.op][record.tag]
            if stored > 1:
                found.duplicated.append(f"{record.op} {record.tag} stored {stored} times")
            if record.accepted and not stored:
                found.lost.append(f"{record.op} {record.tag} accepted ({record.status}), not stored")
            elif record.refused and stored:
                found.wrong.append(f"{record.op} {record.tag} refused ({record.status}), stored")
            elif record.unknown and stored:
                check.unknown_applied += 1
        else:
            nouns = {"like": "like", "unlike": "like", "favourite": "favourite", "unfavourite": "favourite"}
            pairs[(nouns.get(record.op, "follow"), record.person, record.target)].append(record)
    for (noun, person, target), history in pairs.items():
        if noun == "follow":
            state = (person, target) in truth.follows
        else:
            facts = truth.likes if noun == "like" else truth.favourites
            state = person in facts.get(uuid.UUID(target), set())
        possible, last_accepted = {False}, None
        for record in sorted(history, key=lambda r: r.started):
            intent = record.op in ("like", "favourite", "follow")
            if record.accepted:
                possible, last_accepted = {intent}, record
            elif record.unknown:
                possible.add(intent)
        if state in possible:
            if history[-1].unknown and state == (history[-1].op in ("like", "favourite", "follow")):
                check.unknown_applied += 1
            continue
        what = f"{person} {noun} {target}: owner says {state}"
        if last_accepted is not None and not state:
            found.lost.append(f"{what}, last accepted {last_accepted.op}")
        else:
            found.wrong.append(f"{what}, last accepted {last_accepted.op if last_accepted else 'nothing'}")
    return check
