"""A steady mixed load through the gateway: a few people posting, liking and unliking, favouriting,
following and commenting at a fixed overall rate, each person one request at a time (so the last answer
about a pair is the last request about it). Every request and its answer is kept: the client's truth."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.harness import System, random_id

# How often each person does what (relative weights). Reads keep people active feed readers, so fan-out
# writes their home feeds; the writes are the facts held against every projection afterwards.
MIX: dict[str, int] = {
    "post": 10,
    "like": 22,
    "unlike": 9,
    "favourite": 10,
    "unfavourite": 5,
    "follow": 11,
    "unfollow": 6,
    "comment": 12,
    "read_feed": 10,
    "read_post": 5,
}
WRITES = frozenset(MIX) - {"read_feed", "read_post"}
# Most reactions go to recent posts, so pairs toggle several times in a round.
RECENT_POSTS = 40
REQUEST_TIMEOUT_SECONDS = 15


@dataclass
class Request:
    """One request as the client saw it. status None: no answer (refused connection, timeout)."""

    op: str
    person: str
    target: str  # a post id, a person id, or "" for a new post
    started: float
    ended: float
    status: int | None
    phase: str
    tag: str = ""  # the unique word in a new post's or comment's body
    created_id: str = ""  # the id of what a 201 created

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        """Answered with a client error: the request must have had no effect."""
        return self.status is not None and 400 <= self.status < 500

    @property
    def unknown(self) -> bool:
        """A server error or no answer: it may or may not have taken effect."""
        return not self.accepted and not self.refused


@dataclass
class Load:
    system: System
    rate: float  # requests per second, all people together
    people: int = 8
    seed: int = field(default_factory=lambda: secrets.randbits(32))
    phase: str = "warm-up"
    records: list[Request] = field(default_factory=list)  # writes, held against the owners' tables
    reads: list[Request] = field(default_factory=list)
    person_ids: list[str] = field(default_factory=list)
    posts: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _next_slot: float = 0.0
    _session: aiohttp.ClientSession | None = None
    _tokens: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    stopped_at: float = 0.0

    async def start(self) -> None:
        """Make the people known (profile, an initial feed read that makes each an active reader, a first post
        each), then start them."""
        self._session = aiohttp.ClientSession(
            base_url=self.system.base_url, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        )
        self.person_ids = [random_id("chaos") for _ in range(self.people)]
        for person in self.person_ids:
            self._tokens[person] = self.system.token(person, name=f"Chaos {person[-4:]}")
        for person in self.person_ids:
            for method, path in (("GET", "/api/me"), ("GET", "/api/feed")):
                status, _ = await self._call(person, method, path)
                assert status == 200, f"{method} {path} for {person}: {status}"
        for person in self.person_ids:
            await self._write_post(person, random.Random(self.seed))
        self.started_at = time.monotonic()
        self._next_slot = self.started_at
        self._tasks = [
            asyncio.create_task(self._person(person, random.Random(f"{self.seed}-{i}")))
            for i, person in enumerate(self.person_ids)
        ]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self.stopped_at = time.monotonic()
        if self._session is not None:
            await self._session.close()

    # The people ------------------------------------------------------------------------------------------

    async def _person(self, me: str, rng: random.Random) -> None:
        ops, weights = list(MIX), list(MIX.values())
        liked: set[str] = set()
        favourited: set[str] = set()
        following: set[str] = set()
        while not self._stop.is_set():
            await self._pace()
            if self._stop.is_set():
                return
            op = rng.choices(ops, weights)[0]
            post = self._pick_post(rng)
            if op == "post":
                await self._write_post(me, rng)
            elif op in ("like", "unlike", "favourite", "unfavourite"):
                mine = liked if op in ("like", "unlike") else favourited
                on = op in ("like", "favourite")
                if not on and mine:
                    post = rng.choice(sorted(mine))
                noun = "like" if mine is liked else "favourite"
                record = await self._record(op, me, post, "PUT" if on else "DELETE", f"/api/posts/{post}/{noun}")
                if record.accepted:
                    (mine.add if on else mine.discard)(post)
            elif op in ("follow", "unfollow"):
                others = [p for p in self.person_ids if p != me]
                target = rng.choice(sorted(following)) if op == "unfollow" and following else rng.choice(others)
                method = "PUT" if op == "follow" else "DELETE"
                record = await self._record(op, me, target, method, f"/api/people/{target}/follow")
                if record.accepted:
                    (following.add if op == "follow" else following.discard)(target)
            elif op == "comment":
                tag = secrets.token_hex(6)
                body = {"body": f"Innspill {tag} fra {me}"}
                await self._record(op, me, post, "POST", f"/api/posts/{post}/comments", json=body, tag=tag)
            elif op == "read_feed":
                await self._record(op, me, "", "GET", "/api/feed?limit=20")
            else:
                await self._record(op, me, post, "GET", f"/api/posts/{post}")

    def _pick_post(self, rng: random.Random) -> str:
        recent = self.posts[-RECENT_POSTS:]
        return rng.choice(recent if rng.random() < 0.9 else self.posts)

    async def _write_post(self, me: str, rng: random.Random) -> None:
        tag = secrets.token_hex(6)
        topic = rng.choice(["ukeplan", "kantine", "onboarding", "kodegjennomgang"])
        body = {"body": f"Halvferdig idé {tag}: {topic}", "kind": "idea", "audience": {"type": "everyone"}}
        record = await self._record("post", me, "", "POST", "/api/posts", json=body, tag=tag)
        if record.accepted and record.created_id:
            self.posts.append(record.created_id)

    async def _pace(self) -> None:
        """One request every 1/rate seconds over all people; a person that falls behind does not burst."""
        now = time.monotonic()
        slot = max(self._next_slot, now)
        self._next_slot = slot + 1 / self.rate
        if slot > now:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), slot - now)

    async def _record(
        self, op: str, person: str, target: str, method: str, path: str, *, json: Any = None, tag: str = ""
    ) -> Request:
        started = time.monotonic()
        status, reply = await self._call(person, method, path, json=json)
        created = str(reply.get("id", "")) if status == 201 and isinstance(reply, dict) else ""
        record = Request(op, person, target, started, time.monotonic(), status, self.phase, tag, created)
        if op in WRITES:
            self.records.append(record)
        else:
            self.reads.append(record)
        return record

    async def _call(self, person: str, method: str, path: str, *, json: Any = None) -> tuple[int | None, Any]:
        assert self._session is not None
        headers = {"Authorization": f"Bearer {self._tokens[person]}"}
        try:
            async with self._session.request(method, path, json=json, headers=headers) as reply:
                body: Any = None
                if reply.content_type == "application/json":
                    body = await reply.json()
                else:
                    await reply.read()
                return reply.status, body
        except (aiohttp.ClientError, TimeoutError):
            return None, None

    # What was held ----------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        every = self.records + self.reads
        seconds = max(1e-9, (self.stopped_at or time.monotonic()) - self.started_at)
        outcome = Counter("accepted" if r.accepted else "refused" if r.refused else "unknown" for r in every)
        statuses = Counter(str(r.status) for r in every)
        latencies = sorted(r.ended - r.started for r in every if r.accepted)
        return {
            "seconds": round(seconds, 1),
            "requests": len(every),
            "writes": len(self.records),
            "rate_target": self.rate,
            "rate_held": round(len(every) / seconds, 1),
            "people": self.people,
            "by_op": dict(sorted(Counter(r.op for r in every).items())),
            "outcome": dict(outcome),
            "statuses": dict(sorted(statuses.items())),
            "not_accepted_by_phase": {
                f"{phase}: {status}": n
                for (phase, status), n in sorted(
                    Counter((r.phase, str(r.status)) for r in every if not r.accepted).items()
                )
            },
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
            "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1) if latencies else None,
        }
