"""Notifications under a viral post, favourites against the hourly email cap, and live delivery over
Server-Sent Events to 1,000 connected clients.

    python -m bench.notify                  # on a System of its own; the figures go to build/bench-notify.json
    python -m bench.notify --clients SPEC   # the SSE client process (this module starts it)

bench/run.py calls `run(system)` on the System it already started, after its own phases.

Viral post: 1,000 people, each signed in once beforehand (the gateway's first sight of a person writes their
profile: sign-up, not a like), like one post in a burst, through the gateway on 64 keep-alive connections.
Timed from the first PUT until the notifications schema holds 1,000 actors for the post (polled every 5 ms).
Meanwhile an exclusive queue bound to `notification.changed.v1` counts the changes published for the author.
The same burst is then published straight to the exchange as 1,000 `post.liked` events on another post of the
author (as the reactions service would): the notifications service alone, without the like path in front.
Favourites: 100 people favourite one post; each favourite emails at once, up to the hourly cap per person, and
the rest go to the digest. Polled until no email of the author is pending or sending.

SSE: a client process (aiohttp, one connection per stream) opens 1,000 streams as the 1,000 likers and waits for
each stream's first message (the client's change number). The bench process then publishes one
`notification.changed.v1` per client to the exchange, numbered one past the client's, first in one burst, then
paced; each is timed from its publish (the burst) or from when it was due (paced, open loop) to the end of the
message at the client. Both processes time with CLOCK_MONOTONIC (time.monotonic), which is the same clock in
every process. End to end: 100 authors with a stream open each; one like per author's post, paced, timed from
the PUT to the change at the author's stream.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import resource
import sys
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import aio_pika
import aiormq
import asyncpg
import orjson

from bench import drain, procstat
from bench.harness_env import UNTHROTTLED
from bench.httpload import ConnectionPool, HttpError, liked, percentile
from shared.events import (
    EventType,
    NotificationChangedV1,
    NotificationView,
    PersonRef,
    PostLikedV1,
    new_envelope,
)
from shared.settings import Settings
from tests.harness import AMQP_URL, System

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LIKERS = 1_000
FAVOURITERS = 100
BURST_CONNECTIONS = 64
SSE_CLIENTS = 1_000
# Streams being opened at once (until their first message): a crowd arriving, not a reconnect storm.
SSE_OPENING = 100
SSE_PACED_RATE = 200.0
BURSTS = 3
E2E_AUTHORS = 100
E2E_RATE = 20.0
POLL_SECONDS = 0.005
GIVE_UP_SECONDS = 120.0

CHANGED = str(EventType.NOTIFICATION_CHANGED)

T = TypeVar("T")


def _pct(values: Sequence[float], q: float) -> float | None:
    return percentile(sorted(values), q) if values else None


def _latencies(values: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50_ms": _pct(values, 0.50),
        "p99_ms": _pct(values, 0.99),
        "max_ms": max(values) if values else None,
    }


def _roles(system: System, **extra: int) -> dict[int, str]:
    roles = {p.pid: name for name, p in system.processes.items()}
    roles[os.getpid()] = "bench"
    roles.update({pid: role for role, pid in extra.items()})
    return roles


# The change stream, as the broker carries it -------------------------------------------------------------


@dataclass
class ChangeCounter:
    """The `notification.changed.v1` events of one recipient, from an exclusive queue of our own."""

    recipient_id: str
    seqs: list[int] = field(default_factory=list)
    last: dict[str, Any] | None = None
    others: int = 0

    def take(self, envelope: dict[str, Any]) -> None:
        data = envelope["data"]
        if data["recipient_id"] != self.recipient_id:
            self.others += 1
            return
        self.seqs.append(int(data["seq"]))
        self.last = data

    def actor_count(self) -> int:
        items = self.last["items"] if self.last else []
        return int(items[0]["actor_count"]) if items else 0


@contextlib.asynccontextmanager
async def counting_changes(system: System, recipient_id: str) -> AsyncIterator[ChangeCounter]:
    counter = ChangeCounter(recipient_id)
    connection = await aio_pika.connect(system.rabbitmq_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{system.namespace}.events", ensure=False)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=CHANGED)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            counter.take(orjson.loads(message.body))

        await queue.consume(on_message, no_ack=True)
        yield counter
    finally:
        await connection.close()


# Set-up through the gateway -----------------------------------------------------------------------------


async def _post(system: System, token: str, body: str) -> str:
    async with system.client(token) as client:
        reply = await client.post("/api/posts", json={"body": body, "kind": "idea"})
    if reply.status_code != 201:
        raise RuntimeError(f"creating a post failed: {reply.status_code} {reply.text}")
    return str(reply.json()["id"])


async def sign_in_once(port: int, tokens: Sequence[str]) -> float:
    """One signed-in request per person (GET /api/notifications?limit=1), so the gateway has synced their
    profile before anything is timed; returns the seconds it took."""
    pool = ConnectionPool(port, 32)
    t0 = time.perf_counter()
    try:
        gate = asyncio.Semaphore(32)

        async def one(token: str) -> None:
            async with gate:
                reply = await pool.request("GET", "/api/notifications?limit=1", token.encode())
            if reply.status != 200:
                raise RuntimeError(f"GET /api/notifications answered {reply.status}: {reply.body[:200]!r}")

        await asyncio.gather(*(one(t) for t in tokens))
    finally:
        await pool.close()
    return time.perf_counter() - t0


async def _burst(port: int, method: str, paths: Sequence[str], tokens: Sequence[str]) -> dict[str, Any]:
    """Every request at once on BURST_CONNECTIONS connections; when the first went, when the last came back."""
    pool = ConnectionPool(port, BURST_CONNECTIONS)
    errors: list[str] = []
    replies: list[float] = []

    async def one(path: str, token: str) -> None:
        try:
            reply = await pool.request(method, path, token.encode())
        except HttpError as exc:
            errors.append(str(exc))
            return
        if reply.status != 200 or (path.endswith("/like") and not liked(reply)):
            errors.append(f"{reply.status} {reply.body[:200]!r}")
        replies.append(time.perf_counter())

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(one(p, t) for p, t in zip(paths, tokens, strict=True)))
    finally:
        await pool.close()
    return {
        "t0": t0,
        "last_reply": max(replies) if replies else None,
        "errors": len(errors),
        "error_samples": errors[:3],
    }


class WaitSampler:
    """What our database's active backends are doing, sampled every 20 ms: per service (application_name
    tillit-<schema>), how often a backend was waiting and on what ("CPU" when not waiting). Shows where one
    hot post's likes queue."""

    def __init__(self, system: System) -> None:
        self._system = system
        self._conn: Any = None
        self.samples = 0
        self.seen: collections.Counter[str] = collections.Counter()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connects (before the load, so the load cannot take the last connection slot); begin() samples."""
        try:
            self._conn = await self._system.db("public")
        except asyncpg.TooManyConnectionsError:
            # PostgreSQL is shared with other people's test runs: go without the samples rather than fail.
            print("   (no connection slot left for sampling pg_stat_activity)", flush=True)

    def begin(self) -> None:
        if self._conn is not None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, float]:
        """Backends per sample, by what they were doing, the busiest first."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()
        return {k: round(v / max(1, self.samples), 2) for k, v in self.seen.most_common(8)}

    async def _run(self) -> None:
        while True:
            rows = await self._conn.fetch(
                """SELECT application_name AS app, coalesce(wait_event_type || ':' || wait_event, 'CPU') AS what
                   FROM pg_stat_activity
                   WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()""",
                self._system.database,
            )
            self.samples += 1
            self.seen.update(f"{r['app'].removeprefix('tillit-')} {r['what']}" for r in rows)
            await asyncio.sleep(0.02)


# The viral post -----------------------------------------------------------------------------------------

ACTORS_OF_POST = """SELECT count(*) FROM notification_actors a JOIN notifications n ON n.id = a.notification_id
                    WHERE n.post_id = $1::uuid AND n.kind = $2"""


async def _wait_for_actors(db: Any, post_id: str, kind: str, wanted: int, *, since: float) -> float:
    while (got := await db.fetchval(ACTORS_OF_POST, post_id, kind)) < wanted:
        if time.perf_counter() - since > GIVE_UP_SECONDS:
            raise TimeoutError(f"{kind} on {post_id}: {got} of {wanted} actors after {GIVE_UP_SECONDS:.0f} s")
        await asyncio.sleep(POLL_SECONDS)
    return time.perf_counter()


async def _emails_of(db: Any, recipient_id: str) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT status, count(*) AS n FROM emails WHERE recipient_id = $1 GROUP BY status", recipient_id
    )
    return {row["status"]: int(row["n"]) for row in rows}


async def _groups_of(db: Any, post_id: str, kind: str) -> int:
    return int(
        await db.fetchval("SELECT count(*) FROM notifications WHERE post_id = $1::uuid AND kind = $2", post_id, kind)
    )


async def _inbox_head(system: System, token: str) -> dict[str, Any]:
    async with system.client(token) as client:
        reply = await client.get("/api/notifications", params={"limit": 1})
    reply.raise_for_status()
    page: dict[str, Any] = reply.json()
    return page


async def _changes_settled(counter: ChangeCounter, actors: int) -> None:
    """The last change published carries every actor (the outbox relay may still hold it for a moment)."""
    t0 = time.perf_counter()
    while counter.actor_count() < actors:
        if time.perf_counter() - t0 > 30:
            raise TimeoutError(f"the last change seen has {counter.actor_count()} of {actors} actors")
        await asyncio.sleep(0.05)


def _changes_summary(counter: ChangeCounter) -> dict[str, Any]:
    seqs = counter.seqs
    return {
        "events": len(seqs),
        "numbered_one_by_one": seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else None,
        "last_actor_count": counter.actor_count(),
        "last_unread": counter.last["unread"] if counter.last else None,
    }


async def viral_post(system: System, *, likers: Sequence[str], liker_tokens: Sequence[str], db: Any) -> dict[str, Any]:
    author = "bench-viral-author"
    author_token = system.token(author, name="Viral Author")
    post_id = await _post(system, author_token, "Viral post: the idea everyone likes")
    from bench.run import settle  # bench.run imports this module

    await settle(system)
    await asyncio.to_thread(procstat.wait_quiet, 10.0)
    waits = WaitSampler(system)
    async with counting_changes(system, author) as counter:
        await asyncio.sleep(0.2)  # the binding is in place
        await waits.start()
        cpu_from = procstat.snapshot()
        burst_task = asyncio.create_task(
            _burst(system.ports["gateway"], "PUT", [f"/api/posts/{post_id}/like"] * len(likers), liker_tokens)
        )
        waits.begin()
        t_start = time.perf_counter()
        try:
            t_applied = await _wait_for_actors(db, post_id, "post.liked", len(likers), since=t_start)
        except BaseException:
            burst_task.cancel()
            raise
        finally:
            waiting = await waits.stop()
        cpu = procstat.usage(cpu_from, procstat.snapshot(), _roles(system), database=system.database)
        burst = await burst_task
        await _changes_settled(counter, len(likers))
    seconds = t_applied - burst["t0"]
    http_s = burst["last_reply"] - burst["t0"] if burst["last_reply"] else None
    # A like does not email by default: wait past the window the harness gives waiting emails (2 s), so a
    # wrongly queued one would have been decided on.
    window = float(system.env().get("EMAIL_WINDOW_SECONDS", "2"))
    await asyncio.sleep(window + 1.5)
    page = await _inbox_head(system, author_token)
    head = page["items"][0] if page["items"] else {}
    result = {
        "likers": len(likers),
        "seconds": seconds,
        "rate": len(likers) / seconds,
        "http_seconds": http_s,
        "http_rate": len(likers) / http_s if http_s else None,
        "after_last_reply_ms": (t_applied - burst["last_reply"]) * 1e3 if burst["last_reply"] else None,
        "errors": burst["errors"],
        "error_samples": burst["error_samples"],
        "actors": int(await db.fetchval(ACTORS_OF_POST, post_id, "post.liked")),
        "groups": await _groups_of(db, post_id, "post.liked"),
        "changes": _changes_summary(counter),
        "emails": await _emails_of(db, author),
        "inbox_head": {"actor_count": head.get("actor_count"), "title": head.get("title"), "unread": page["unread"]},
        "cpu": cpu,
        "postgres_waits": waiting,
        "spread": await _spread_likes(system, liker_tokens, db=db),
    }
    print(
        f"   {len(likers):,} likes of one post: all applied {seconds:.2f} s after the first PUT ="
        f" {result['rate']:,.0f} notifications/s (HTTP burst {http_s or 0:.2f} s, {burst['errors']} errors;"
        f" applied {result['after_last_reply_ms'] or 0:.0f} ms after the last reply); {result['groups']} group(s),"
        f" {result['changes']['events']} change events, emails {result['emails'] or 'none'}",
        flush=True,
    )
    print(f"   CPU {_cpu_text(cpu)}; PostgreSQL backends per sample: {waiting}", flush=True)
    spread = result["spread"]
    print(
        f"   control, the same likes over {spread['posts']} posts: applied in {spread['seconds']:.2f} s ="
        f" {spread['rate']:,.0f} notifications/s (HTTP burst {spread['http_seconds']:.2f} s, {spread['errors']}"
        " errors)",
        flush=True,
    )
    return result


async def _spread_likes(system: System, liker_tokens: Sequence[str], *, db: Any, posts: int = 100) -> dict[str, Any]:
    """The control for the viral post, in the same minute on the same machine: as many likes by the same people,
    spread over `posts` posts of another author, consecutive likes on different posts."""
    from bench.run import create_posts, settle

    token = system.token("bench-spread-author", name="Spread Author")
    post_ids = await create_posts(system, [token], posts, label="Control post")
    await settle(system)
    await asyncio.to_thread(procstat.wait_quiet, 10.0)
    query = """SELECT count(*) FROM notification_actors a JOIN notifications n ON n.id = a.notification_id
               WHERE n.post_id = ANY($1::uuid[]) AND n.kind = 'post.liked'"""
    burst_task = asyncio.create_task(
        _burst(
            system.ports["gateway"],
            "PUT",
            [f"/api/posts/{post_ids[k % posts]}/like" for k in range(len(liker_tokens))],
            liker_tokens,
        )
    )
    t_start = time.perf_counter()
    try:
        while (got := await db.fetchval(query, post_ids)) < len(liker_tokens):
            if time.perf_counter() - t_start > GIVE_UP_SECONDS:
                raise TimeoutError(f"spread likes: {got} of {len(liker_tokens)} actors after {GIVE_UP_SECONDS:.0f} s")
            await asyncio.sleep(POLL_SECONDS)
    except BaseException:
        burst_task.cancel()
        raise
    t_applied = time.perf_counter()
    burst = await burst_task
    seconds = t_applied - burst["t0"]
    http_s = burst["last_reply"] - burst["t0"] if burst["last_reply"] else None
    return {
        "posts": posts,
        "seconds": seconds,
        "rate": len(liker_tokens) / seconds,
        "http_seconds": http_s,
        "http_rate": len(liker_tokens) / http_s if http_s else None,
        "errors": burst["errors"],
    }


async def viral_direct(system: System, db: Any, *, n: int) -> dict[str, Any]:
    """n `post.liked` events by n people on one post, published to the exchange while the notifications
    service runs: its rate for one hot group without the like path in front of it."""
    author = "bench-viral-author"
    author_token = system.token(author, name="Viral Author")
    post_id = await _post(system, author_token, "Viral post, second: published straight to the broker")
    from bench.run import settle

    await settle(system)
    now = datetime.now(UTC)
    bodies = []
    for k in range(1, n + 1):
        data = PostLikedV1(
            post_id=uuid.UUID(post_id),
            post_author_id=author,
            actor=PersonRef(id=f"bench-direct-liker-{k}", name=f"Direct Liker {k}"),
            like_count=k,
            favourite_count=0,
            version=k,
            occurred_at=now,
        )
        envelope = new_envelope(EventType.POST_LIKED, source="reactions", subject=post_id, data=data)
        bodies.append((str(envelope.id), envelope.model_dump_json().encode()))
    backlog = drain.Backlog(str(EventType.POST_LIKED), bodies, [uuid.UUID(post_id)])
    await asyncio.to_thread(procstat.wait_quiet, 10.0)
    async with counting_changes(system, author) as counter:
        await asyncio.sleep(0.2)
        base = len(counter.seqs)
        waits = WaitSampler(system)
        await waits.start()
        cpu_from = procstat.snapshot()
        t0 = time.perf_counter()
        publish = asyncio.create_task(drain.publish(system.namespace, backlog))
        waits.begin()
        try:
            t_applied = await _wait_for_actors(db, post_id, "post.liked", n, since=t0)
        finally:
            waiting = await waits.stop()
        cpu = procstat.usage(cpu_from, procstat.snapshot(), _roles(system), database=system.database)
        publish_rate = await publish
        await _changes_settled(counter, n)
        events = len(counter.seqs) - base
    seconds = t_applied - t0
    result = {
        "events": n,
        "seconds": seconds,
        "rate": n / seconds,
        "publish_rate": publish_rate,
        "groups": await _groups_of(db, post_id, "post.liked"),
        "change_events": events,
        "cpu": cpu,
        "postgres_waits": waiting,
    }
    print(
        f"   {n:,} post.liked events straight to the broker: applied in {seconds:.2f} s = {result['rate']:,.0f}"
        f" notifications/s (published at {publish_rate:,.0f} msg/s); {result['groups']} group(s), {events} change"
        " events",
        flush=True,
    )
    print(f"   CPU {_cpu_text(cpu)}; PostgreSQL backends per sample: {waiting}", flush=True)
    # For comparison, the same number of likes spread over as many posts of four authors (the drain's shape).
    spread = drain.liked_backlog(n, authors=[f"bench-spread-author-{i}" for i in range(4)], posts=n)
    await asyncio.to_thread(procstat.wait_quiet, 10.0)
    t0 = time.perf_counter()
    await drain.publish(system.namespace, spread)
    query = """SELECT count(*) FROM notification_actors a JOIN notifications n ON n.id = a.notification_id
               WHERE n.post_id = ANY($1::uuid[])"""
    while (got := await db.fetchval(query, spread.post_ids)) < n:
        if time.perf_counter() - t0 > GIVE_UP_SECONDS:
            raise TimeoutError(f"spread likes: {got} of {n} actors after {GIVE_UP_SECONDS:.0f} s")
        await asyncio.sleep(POLL_SECONDS)
    result["spread_rate"] = n / (time.perf_counter() - t0)
    print(f"   the same over {n:,} posts: {result['spread_rate']:,.0f} notifications/s", flush=True)
    return result


async def favourites(system: System, *, people: Sequence[str], tokens: Sequence[str], db: Any) -> dict[str, Any]:
    author = "bench-favourite-author"
    author_token = system.token(author, name="Favourite Author")
    address = f"{author}@tillit.test"
    post_id = await _post(system, author_token, "A post worth keeping")
    cap = int(system.env().get("EMAIL_HOURLY_CAP") or Settings().email_hourly_cap)
    from bench.run import settle

    await settle(system)
    smtp_before = sum(1 for m in system.smtp.messages if address in str(m.get("To", "")))
    t0 = time.perf_counter()
    burst = await _burst(system.ports["gateway"], "PUT", [f"/api/posts/{post_id}/favourite"] * len(people), tokens)
    first_sent: float | None = None
    while True:
        statuses = await _emails_of(db, author)
        if first_sent is None and statuses.get("sent"):
            first_sent = time.perf_counter()
        queued = sum(statuses.values())
        if queued >= len(people) and not statuses.get("pending") and not statuses.get("sending"):
            break
        if time.perf_counter() - t0 > GIVE_UP_SECONDS:
            print(f"   WARNING: favourite emails not settled after {GIVE_UP_SECONDS:.0f} s: {statuses}", flush=True)
            break
        await asyncio.sleep(0.05)
    settled = time.perf_counter() - t0
    delivered = sum(1 for m in system.smtp.messages if address in str(m.get("To", ""))) - smtp_before
    expected = {"sent": min(cap, len(people)), "digest": max(0, len(people) - cap)}
    result = {
        "favourites": len(people),
        "errors": burst["errors"],
        "error_samples": burst["error_samples"],
        "cap": cap,
        "emails": statuses,
        "expected": expected,
        "as_policy_says": statuses == expected,
        "smtp_received": delivered,
        "settled_s": settled,
        "first_sent_s": first_sent - t0 if first_sent else None,
        "actors": int(await db.fetchval(ACTORS_OF_POST, post_id, "post.favourited")),
        "groups": await _groups_of(db, post_id, "post.favourited"),
    }
    print(
        f"   {len(people)} favourites of one post: emails {statuses} (policy: {expected},"
        f" {'as it says' if result['as_policy_says'] else 'NOT as it says'}); {delivered} reached the SMTP server;"
        f" settled {settled:.1f} s after the first PUT",
        flush=True,
    )
    return result


# SSE -------------------------------------------------------------------------------------------------------


class SseClients:
    """The client process: opens the streams, then reports what each received, round by round."""

    def __init__(self, process: asyncio.subprocess.Process, opened: dict[str, Any]) -> None:
        self.process = process
        self.opened = opened

    @classmethod
    async def open(cls, port: int, tokens: Sequence[str], *, opening: int | None = None) -> SseClients:
        spec = {"port": port, "tokens": list(tokens), "opening": opening or SSE_OPENING, "timeout": GIVE_UP_SECONDS}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.notify",
            "--clients",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,
        )
        clients = cls(process, {})
        clients.opened = await clients._ask(spec)
        return clients

    async def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(orjson.dumps(command) + b"\n")
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the SSE client process ended (exit {await self.process.wait()})")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    async def wait_for(self, seqs: Sequence[int], *, timeout: float = 60.0) -> dict[str, Any]:
        """Until client i has received change seqs[i] (or the timeout): every message received since the last
        call, as [client, seq, monotonic time, event]."""
        return await self._ask({"wait": list(seqs), "timeout": timeout})

    async def close(self) -> dict[str, Any]:
        try:
            return await self._ask({"stop": True})
        finally:
            with contextlib.suppress(ProcessLookupError):
                await asyncio.wait_for(self.process.wait(), 30)


def _change_body(recipient_id: str, seq: int, *, view: NotificationView) -> bytes:
    change = NotificationChangedV1(recipient_id=recipient_id, seq=seq, items=[view], removed=[], unread=1)
    envelope = new_envelope(EventType.NOTIFICATION_CHANGED, source="notifications", subject=recipient_id, data=change)
    return envelope.model_dump_json().encode()


def _a_view() -> NotificationView:
    """A notification as a like leaves it: three names, a title, a link (about 600 bytes of JSON)."""
    now = datetime.now(UTC)
    post_id = uuid.uuid4()
    return NotificationView(
        id=uuid.uuid4(),
        kind="post.liked",
        post_id=post_id,
        actors=[PersonRef(id=f"bench-actor-{i}", name=f"Bench Actor {i}") for i in range(3)],
        actor_count=3,
        read=False,
        title="Bench Actor 0 and 2 others liked your post",
        url=f"http://tillit.test/posts/{post_id}",
        created_at=now,
        updated_at=now,
    )


async def _publish_changes(namespace: str, bodies: Sequence[bytes], *, rate: float | None) -> tuple[list[float], float]:
    """Publish to the events exchange, all at once (rate None) or one every 1/rate s; returns each message's
    time (when it was written to the broker's socket, or when it was due if paced) and the publishing time.

    aiormq rather than aio-pika: a burst goes out about twice as fast without aio-pika's Message layer
    (~150 against ~280 us of CPU per message here), so the burst is more of a burst."""
    connection = await aiormq.connect(AMQP_URL)
    try:
        # No confirms: the gateway's queue is not durable and nothing here waits for the broker's answer, so
        # a publish returns once its frames are written, and its timestamp is that moment.
        channel = await connection.channel(publisher_confirms=False)
        exchange = f"{namespace}.events"
        properties = aiormq.spec.Basic.Properties(content_type="application/json", message_type=CHANGED, app_id="bench")
        sent: list[float] = []
        start = time.monotonic()
        for i, body in enumerate(bodies):
            if rate is None:
                sent.append(time.monotonic())
            else:
                due = start + i / rate
                if (delay := due - time.monotonic()) > 0:
                    await asyncio.sleep(delay)
                sent.append(due)
            await channel.basic_publish(body, exchange=exchange, routing_key=CHANGED, properties=properties)
        return sent, time.monotonic() - start
    finally:
        await connection.close()


def _receipts(records: list[list[Any]], wanted: Sequence[int]) -> dict[int, float]:
    """client -> when it received change wanted[client]."""
    out = {}
    for client, seq, t, _event in records:
        if seq == wanted[client]:
            out[client] = t
    return out


async def _fan_out(
    system: System, clients: SseClients, users: Sequence[str], seqs: list[int], *, rate: float | None, label: str
) -> dict[str, Any]:
    view = _a_view()
    # A stream that never opened (seq -1) gets nothing and is waited for by nobody; the figures say how many.
    wanted = [s + 1 if s >= 0 else -1 for s in seqs]
    live = [i for i, w in enumerate(wanted) if w >= 0]
    bodies = [_change_body(users[i], wanted[i], view=view) for i in live]
    await asyncio.to_thread(procstat.wait_quiet, 10.0)
    cpu_from = procstat.snapshot()
    sent, publish_s = await _publish_changes(system.namespace, bodies, rate=rate)
    answer = await clients.wait_for(wanted, timeout=60)
    cpu_to = procstat.snapshot()
    cpu = procstat.usage(cpu_from, cpu_to, _roles(system, clients=clients.process.pid), database=system.database)
    # CPU time in ms per message delivered: percent of a core x the window's seconds x 10 / messages.
    cpu_ms = {g: round(pct * (cpu_to["t"] - cpu_from["t"]) * 10 / max(1, len(live)), 3) for g, pct in cpu.items()}
    got = _receipts(answer["records"], wanted)
    sent_at = dict(zip(live, sent, strict=True))
    latencies = [(got[i] - sent_at[i]) * 1e3 for i in got]
    span = max(got.values()) - min(sent) if got else None
    result = {
        "clients": len(live),
        "rate": rate,
        "delivered": len(got),
        "missing": len(live) - len(got),
        "publish_s": publish_s,
        "span_s": span,
        "delivered_per_s": len(got) / span if span else None,
        **_latencies(latencies),
        "cpu": cpu,
        "cpu_ms_per_message": {g: v for g, v in cpu_ms.items() if g != "machine_busy"},
        "ended_streams": answer.get("ended", 0),
    }
    seqs[:] = wanted
    print(
        f"   {label}: {len(got):,} of {len(live):,} delivered, p50 {_fmt(result['p50_ms'])} ms,"
        f" p99 {_fmt(result['p99_ms'])} ms, max {_fmt(result['max_ms'])} ms (published in {publish_s * 1e3:.0f} ms;"
        f" last one {(span or 0) * 1e3:.0f} ms after the first publish); CPU gateway {cpu.get('gateway')}"
        f" rabbitmq {cpu.get('rabbitmq')} clients {cpu.get('clients')}",
        flush=True,
    )
    return result


def _cpu_text(cpu: dict[str, float]) -> str:
    return ", ".join(f"{g} {v:.0f}" for g, v in cpu.items() if v >= 1)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


async def sse(system: System, users: Sequence[str], tokens: Sequence[str]) -> dict[str, Any]:
    port = system.ports["gateway"]
    await asyncio.to_thread(procstat.wait_quiet, 10.0)
    print(f"== notifications: {len(users):,} SSE streams ({SSE_OPENING} opening at a time)", flush=True)
    gateway_pid = system.processes["gateway"].pid
    rss_before = _rss_kb(gateway_pid)
    cpu_from = procstat.snapshot()
    clients = await SseClients.open(port, tokens)
    opened = clients.opened
    rss_open = _rss_kb(gateway_pid)
    open_cpu = procstat.usage(
        cpu_from, procstat.snapshot(), _roles(system, clients=clients.process.pid), database=system.database
    )
    try:
        print(
            f"   {opened['connected']:,} open in {opened['seconds']:.1f} s"
            f" ({opened['connected'] / opened['seconds']:,.0f} streams/s), {len(opened['failed'])} failed"
            f" {list(opened['failed'].values())[:2]}; first message p50 {_fmt(opened['first_p50_ms'])} ms"
            f" p99 {_fmt(opened['first_p99_ms'])} ms",
            flush=True,
        )
        if not opened["connected"]:
            raise RuntimeError(f"no stream opened: {list(opened['failed'].values())[:5]}")
        print(
            f"   CPU while opening: {_cpu_text(open_cpu)}; gateway memory {rss_before / 1024:.0f} ->"
            f" {rss_open / 1024:.0f} MB ({(rss_open - rss_before) / max(1, opened['connected']):.0f} kB per stream)",
            flush=True,
        )
        # Each stream also tells the notifications service the person is present, beside its first message:
        # let those calls finish before timing anything else.
        presence = await _wait_for_presence(system, users)
        print(f"   presence recorded for {presence:,} of them", flush=True)
        seqs = list(opened["seqs"])
        burst = await _fan_out(system, clients, users, seqs, rate=None, label="burst 1, one change per client")
        await asyncio.sleep(1.0)
        paced = await _fan_out(
            system, clients, users, seqs, rate=SSE_PACED_RATE, label=f"paced at {SSE_PACED_RATE:.0f}/s"
        )
        bursts = [burst]
        for k in range(2, BURSTS + 1):
            await asyncio.sleep(1.0)
            bursts.append(await _fan_out(system, clients, users, seqs, rate=None, label=f"burst {k}"))
    finally:
        closed = await clients.close()
    return {
        "clients": len(users),
        "connected": opened["connected"],
        "failed": len(opened["failed"]),
        "failed_samples": sorted(set(opened["failed"].values()))[:5],
        "opening": SSE_OPENING,
        "open": {
            "seconds": opened["seconds"],
            "rate": opened["connected"] / opened["seconds"],
            "first_p50_ms": opened["first_p50_ms"],
            "first_p99_ms": opened["first_p99_ms"],
            "cpu": open_cpu,
            "gateway_rss_mb": (rss_before / 1024, rss_open / 1024),
        },
        "bursts": bursts,
        "burst": _median_burst(bursts),
        "paced": paced,
        "ended_early": closed.get("ended", {}),
    }


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


async def _wait_for_presence(system: System, users: Sequence[str]) -> int:
    db = await system.db("notifications")
    try:
        t0 = time.perf_counter()
        query = "SELECT count(*) FROM presence WHERE recipient_id = ANY($1::text[])"
        while True:
            n = int(await db.fetchval(query, users))
            if n >= len(users) or time.perf_counter() - t0 > 30:
                return n
            await asyncio.sleep(0.1)
    finally:
        await db.close()


def _median_burst(bursts: list[dict[str, Any]]) -> dict[str, Any]:
    """The burst of median p99 (each burst's figures stay together)."""
    return sorted(bursts, key=lambda b: b["p99_ms"] or float("inf"))[len(bursts) // 2]


async def like_to_stream(
    system: System, *, likers: Sequence[str], liker_tokens: Sequence[str], n: int, rate: float
) -> dict[str, Any]:
    """n authors, a stream open each; each author's post liked once, paced: PUT -> the change at the stream."""
    from bench.run import create_posts, settle

    authors = [f"bench-sse-author-{i}" for i in range(n)]
    tokens = [system.token(a, name=f"Streaming Author {i}") for i, a in enumerate(authors)]
    posts = await create_posts(system, tokens, n, label="Streamed post")
    await settle(system)
    clients = await SseClients.open(system.ports["gateway"], tokens)
    pool = ConnectionPool(system.ports["gateway"], 16)
    try:
        if clients.opened["failed"]:
            raise RuntimeError(f"streams did not open: {clients.opened['failed']}")
        seqs = list(clients.opened["seqs"])
        await asyncio.to_thread(procstat.wait_quiet, 10.0)
        print(f"== notifications: like -> SSE, {n} authors streaming, one like each at {rate:.0f}/s", flush=True)
        sent: list[float] = [0.0] * n
        http_ms: list[float] = []
        errors: list[str] = []

        async def one(i: int) -> None:
            sent[i] = time.monotonic()
            try:
                reply = await pool.request("PUT", f"/api/posts/{posts[i]}/like", liker_tokens[i].encode())
            except HttpError as exc:
                errors.append(str(exc))
                return
            http_ms.append((time.monotonic() - sent[i]) * 1e3)
            if not liked(reply):
                errors.append(f"{reply.status} {reply.body[:200]!r}")

        start = time.monotonic()
        tasks = []
        for i in range(n):
            if (delay := start + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        wanted = [s + 1 for s in seqs]
        answer = await clients.wait_for(wanted, timeout=30)
    finally:
        await pool.close()
        await clients.close()
    got = _receipts(answer["records"], wanted)
    latencies = [(got[i] - sent[i]) * 1e3 for i in got]
    result = {
        "authors": n,
        "rate": rate,
        "missing": n - len(got),
        "errors": len(errors),
        "error_samples": errors[:3],
        **_latencies(latencies),
        "http_p50_ms": _pct(http_ms, 0.5),
        "http_p99_ms": _pct(http_ms, 0.99),
    }
    print(
        f"   like -> change at the author's stream: p50 {_fmt(result['p50_ms'])} ms, p99 {_fmt(result['p99_ms'])} ms,"
        f" max {_fmt(result['max_ms'])} ms; {result['missing']} missing, {len(errors)} errors; PUT p50"
        f" {_fmt(result['http_p50_ms'])} ms",
        flush=True,
    )
    return result


async def _has_stream(system: System) -> bool:
    async with system.client() as client:
        reply = await client.get("/api/stream")
    return reply.status_code != 404


async def run(system: System, *, parts: Sequence[str] = ("viral", "sse")) -> dict[str, Any]:
    """The notifications benchmarks on a running System; returns the figures for build/bench.json."""
    from bench.run import settle  # bench.run imports this module

    likers = [f"bench-viral-liker-{i}" for i in range(LIKERS)]
    liker_tokens = [system.token(u, name=f"Viral Liker {i}") for i, u in enumerate(likers)]
    out: dict[str, Any] = {"viral": None, "viral_direct": None, "favourites": None, "sse": None, "e2e": None}
    print(f"== notifications: {LIKERS:,} people sign in once", flush=True)
    print(f"   in {await sign_in_once(system.ports['gateway'], liker_tokens):.1f} s", flush=True)
    await settle(system)
    if "viral" in parts:
        db = await system.db("notifications")
        try:
            print(f"== notifications: a viral post, {LIKERS:,} likes in a burst through the gateway", flush=True)
            out["viral"] = await viral_post(system, likers=likers, liker_tokens=liker_tokens, db=db)
            out["viral_direct"] = await viral_direct(system, db, n=LIKERS)
            print(f"== notifications: {FAVOURITERS} favourites of one post, against the hourly email cap", flush=True)
            out["favourites"] = await favourites(
                system, people=likers[:FAVOURITERS], tokens=liker_tokens[:FAVOURITERS], db=db
            )
        finally:
            await db.close()
        await settle(system)
    if "sse" not in parts:
        return out
    if not await _has_stream(system):
        print("   the gateway has no GET /api/stream: SSE not measured", flush=True)
        return out
    users, tokens = likers[:SSE_CLIENTS], liker_tokens[:SSE_CLIENTS]
    out["sse"] = await sse(system, users, tokens)
    out["e2e"] = await like_to_stream(system, likers=likers, liker_tokens=liker_tokens, n=E2E_AUTHORS, rate=E2E_RATE)
    return out


# The SSE client process --------------------------------------------------------------------------------------


class _Streams:
    def __init__(self, count: int) -> None:
        self.first: list[float | None] = [None] * count
        self.seqs: list[int | None] = [None] * count
        self.last_seq = [-1] * count
        self.records: list[list[Any]] = []
        self.failed: dict[int, str] = {}
        self.ended: dict[int, str] = {}
        self.changed = asyncio.Event()


async def _stream(i: int, session: Any, url: str, token: str, streams: _Streams, opening: asyncio.Semaphore) -> None:
    import aiohttp

    await opening.acquire()
    released = False
    t0 = time.monotonic()
    try:
        async with session.get(url, headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}) as r:
            if r.status != 200:
                streams.failed[i] = f"{r.status} {(await r.read())[:200]!r}"
                return
            event, seq = "message", None
            async for raw in r.content:
                line = raw.rstrip(b"\r\n")
                if line:
                    if line.startswith(b"id:"):
                        seq = int(line[3:].strip())
                    elif line.startswith(b"event:"):
                        event = line[6:].strip().decode()
                    continue
                if seq is None:  # a ping, or the end of a comment
                    event = "message"
                    continue
                now = time.monotonic()
                if streams.seqs[i] is None:
                    streams.seqs[i] = seq
                    streams.first[i] = (now - t0) * 1e3
                    opening.release()
                    released = True
                else:
                    streams.records.append([i, seq, now, event])
                streams.last_seq[i] = seq
                streams.changed.set()
                event, seq = "message", None
            if released:
                streams.ended[i] = "the server ended the stream"
            else:
                streams.failed[i] = "the server ended the stream before its first message"
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        (streams.ended if released else streams.failed)[i] = repr(exc)
    finally:
        if not released:
            opening.release()
        streams.changed.set()


async def clients_main() -> None:
    import aiohttp

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def answer(payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    spec = orjson.loads(await reader.readline())
    tokens: list[str] = spec["tokens"]
    streams = _Streams(len(tokens))
    url = f"http://127.0.0.1:{spec['port']}/api/stream"
    opening = asyncio.Semaphore(spec["opening"])
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=False),
        timeout=aiohttp.ClientTimeout(total=None, connect=30, sock_read=None),
    )
    t0 = time.monotonic()
    tasks = [asyncio.create_task(_stream(i, session, url, t, streams, opening)) for i, t in enumerate(tokens)]
    deadline = t0 + spec["timeout"]
    while sum(s is not None for s in streams.seqs) + len(streams.failed) < len(tokens) and time.monotonic() < deadline:
        streams.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(streams.changed.wait(), 1.0)
    connected = sum(s is not None for s in streams.seqs)
    firsts = [f for f in streams.first if f is not None]
    failed = dict(streams.failed)
    failed.update({i: "no first message in time" for i, s in enumerate(streams.seqs) if s is None and i not in failed})
    answer(
        {
            "connected": connected,
            "seconds": time.monotonic() - t0,
            "seqs": [s if s is not None else -1 for s in streams.seqs],
            "failed": {str(k): v for k, v in failed.items()},
            "first_p50_ms": _pct(firsts, 0.5),
            "first_p99_ms": _pct(firsts, 0.99),
        }
    )
    while line := await reader.readline():
        command = orjson.loads(line)
        if command.get("stop"):
            break
        wanted: list[int] = command["wait"]
        deadline = time.monotonic() + command["timeout"]
        while any(streams.last_seq[i] < w for i, w in enumerate(wanted)) and time.monotonic() < deadline:
            streams.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(streams.changed.wait(), 0.5)
        records, streams.records = streams.records, []
        answer({"records": records, "ended": len(streams.ended)})
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()
    answer({"ended": {str(k): v for k, v in streams.ended.items()}})


async def _standalone(parts: Sequence[str]) -> dict[str, Any]:
    from bench.run import wait_for_connection_slots

    system = System(log_level="WARNING", extra_env=UNTHROTTLED)
    await wait_for_connection_slots(40)
    try:
        # Inside the try: a system that fails to become ready is still stopped, not left running.
        await system.start()
        return await run(system, parts=parts)
    except Exception:
        for service in system.processes:
            tail = [line[:300] for line in system.log_tail(service, 5).splitlines()]
            print(f"--- {service} log tail:", *tail, sep="\n  ", file=sys.stderr)
        raise
    finally:
        await system.stop()


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # the services need it, but the bench can do without
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main() -> None:
    if sys.argv[1:2] == ["--clients"]:
        _run(clients_main())
        return
    global SSE_OPENING
    ap = argparse.ArgumentParser(prog="python -m bench.notify", description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["viral", "sse"], help="one part only (the viral post and favourites, or SSE)")
    ap.add_argument("--opening", type=int, default=SSE_OPENING, help="SSE streams being opened at once")
    args = ap.parse_args()
    SSE_OPENING = args.opening
    result = _run(_standalone([args.only] if args.only else ["viral", "sse"]))
    out = os.path.join(ROOT, "build", "bench-notify.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2, default=str)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
