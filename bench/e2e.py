"""End-to-end latency of sampled likes, measured in the bench process while the load generator (another
process) keeps the system at a steady rate.

Each sampled like goes to a post of its own that nobody else likes, so "the count is visible" is simply
`like_count >= 1` in GET /api/posts/{id} through the gateway, and "the notification exists" is the
(post, actor) row in the notifications schema. Both are timed from just before the PUT is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
import orjson

from bench.httpload import ConnectionPool, HttpError, liked

# How often a pending sample is looked at: the figures are late by half of it on average.
COUNT_POLL_SECONDS = 0.010
NOTIFICATION_POLL_SECONDS = 0.005
GIVE_UP_SECONDS = 15.0


@dataclass
class Sample:
    http_ms: float | None = None
    count_ms: float | None = None
    notification_ms: float | None = None
    error: str | None = None


class NotificationWatch:
    """Looks for every pending (post, actor) in one query per tick, so a hundred samples in flight cost
    PostgreSQL one cheap query every few milliseconds rather than a hundred."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._pending: dict[tuple[uuid.UUID, str], asyncio.Future[float]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wait_for(self, post_id: uuid.UUID, actor_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pending[(post_id, actor_id)] = future
        return future

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(NOTIFICATION_POLL_SECONDS)
            if not self._pending:
                continue
            keys = list(self._pending)
            rows = await self._conn.fetch(
                """SELECT n.post_id, a.actor_id
                   FROM notification_actors a JOIN notifications n ON n.id = a.notification_id
                   JOIN unnest($1::uuid[], $2::text[]) AS w(post_id, actor_id)
                     ON n.post_id = w.post_id AND a.actor_id = w.actor_id""",
                [k[0] for k in keys],
                [k[1] for k in keys],
            )
            now = time.perf_counter()
            for row in rows:
                future = self._pending.pop((row["post_id"], row["actor_id"]), None)
                if future is not None and not future.done():
                    future.set_result(now)


@dataclass
class Sampler:
    http: ConnectionPool
    watch: NotificationWatch
    posts: list[str]  # one fresh post per sample
    likers: list[tuple[str, bytes]]  # (user id, token)
    reader_token: bytes
    samples: list[Sample] = field(default_factory=list)

    async def run(self, *, rate: float, seconds: float) -> list[Sample]:
        count = min(len(self.posts), int(rate * seconds))
        start = time.perf_counter()
        tasks = []
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._one(i)))
        self.samples = list(await asyncio.gather(*tasks))
        return self.samples

    async def _one(self, i: int) -> Sample:
        post_id = self.posts[i]
        user_id, token = self.likers[i % len(self.likers)]
        sample = Sample()
        notified = self.watch.wait_for(uuid.UUID(post_id), user_id)
        t0 = time.perf_counter()
        try:
            reply = await self.http.request("PUT", f"/api/posts/{post_id}/like", token)
        except HttpError as exc:
            notified.cancel()
            sample.error = str(exc)
            return sample
        sample.http_ms = (time.perf_counter() - t0) * 1e3
        if not liked(reply):
            notified.cancel()
            sample.error = f"{reply.status} {reply.body[:200]!r}"
            return sample
        counted = asyncio.create_task(self._count_visible(post_id))
        try:
            sample.notification_ms = (await asyncio.wait_for(notified, GIVE_UP_SECONDS) - t0) * 1e3
        except TimeoutError:
            sample.error = "notification not seen"
        seen = await counted
        if seen is None:
            sample.error = "count not seen"
        else:
            sample.count_ms = (seen - t0) * 1e3
        return sample

    async def _count_visible(self, post_id: str) -> float | None:
        deadline = time.perf_counter() + GIVE_UP_SECONDS
        while time.perf_counter() < deadline:
            try:
                reply = await self.http.request("GET", f"/api/posts/{post_id}", self.reader_token)
            except HttpError:
                reply = None
            if reply is not None and reply.status == 200 and orjson.loads(reply.body)["like_count"] >= 1:
                return time.perf_counter()
            await asyncio.sleep(COUNT_POLL_SECONDS)
        return None
