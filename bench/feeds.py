"""Feeds: fan-out of one post to 10,000 active followers, and home feed reads under concurrent load.

    python -m bench.feeds                 # on a System of its own; the figures go to build/bench-feeds.json
    python -m bench.feeds --load SPEC     # the read load generator (bench.run / this module start it)

bench/run.py calls `run(system)` on the System it already started, after its own phases.

Set-up, kept cheap: the follows are `person.followed.v1` events published straight to the exchange (as
the people service would, persistent with publisher confirms), not 10,000 follows through the gateway;
the followers are then made active readers by inserting their `readers` rows (last_read_at and built_at
now) in the feeds schema: the state a first GET /feed leaves (a read records last_read_at, a build sets
built_at), without 10,000 feed builds. Nobody reads yet when the follows arrive, so applying them writes
no feed entries (an active reader's follow would place the author's recent posts, per follow).

Fan-out: one post by the author through the gateway (POST /api/posts); timed from the POST until
`SELECT count(*) FROM feed_entries WHERE post_id = $1` reaches the number of active followers (the
fan-out is one transaction, so the count goes from 0 to all at its commit; polled every 5 ms, once the
post's row, written in the same transaction, is in the feeds replica). Three posts, the median
quoted. The fan-out statement is also timed alone, in a transaction rolled back, to split the end-to-end
time into the statement and the rest (gateway, posts, outbox relay, broker, the consumer's batch).

Feed reads: readers whose home feeds hold 60 entries (they follow an author of 60 posts) read
GET /feed?limit=50 on the feeds service itself, then GET /api/feed?limit=50 through the gateway (which
also fetches the 50 posts from the posts service), each with CONNECTIONS keep-alive connections back to
back for SECONDS, from a raw HTTP client in its own process (bench/httpload.py's).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

from bench import drain, procstat
from bench.harness_env import UNTHROTTLED
from bench.httpload import Connection, HttpError, Recorder, cpu_marks, percentile, request_bytes
from services.feeds import repository
from services.feeds.service import trim_sample_mask
from services.feeds.settings import get_feed_settings
from shared.events import EventType, PersonFollowedV1, new_envelope
from tests.harness import System

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FOLLOWERS = 10_000
FAN_OUT_POSTS = 3
READERS = 16
READER_POSTS = 60
PAGE = 50
CONNECTIONS = 16
SECONDS = 10.0
WARMUP = 1.0
GIVE_UP_SECONDS = 120.0

AUTHOR = "bench-fanout-author"
FEED_AUTHOR = "bench-feed-author"


def follows_backlog(pairs: list[tuple[str, str]]) -> drain.Backlog:
    bodies = []
    for actor, target in pairs:
        data = PersonFollowedV1(actor_id=actor, target_id=target, version=1)
        envelope = new_envelope(EventType.PERSON_FOLLOWED, source="people", subject=actor, data=data)
        bodies.append((str(envelope.id), envelope.model_dump_json().encode()))
    return drain.Backlog(str(EventType.PERSON_FOLLOWED), bodies, [])


async def _wait_for(db: Any, query: str, args: list[Any], wanted: int, *, what: str, poll: float = 0.2) -> float:
    t0 = time.perf_counter()
    while (got := await db.fetchval(query, *args)) < wanted:
        if time.perf_counter() - t0 > GIVE_UP_SECONDS:
            raise TimeoutError(f"{what}: {got} of {wanted} after {GIVE_UP_SECONDS:.0f} s")
        await asyncio.sleep(poll)
    return time.perf_counter() - t0


async def _post(system: System, token: str, body: str) -> str:
    async with system.client(token) as client:
        reply = await client.post("/api/posts", json={"body": body, "kind": "idea"})
    if reply.status_code != 201:
        raise RuntimeError(f"creating a post failed: {reply.status_code} {reply.text}")
    return str(reply.json()["id"])


async def _entries(db: Any, post_id: str) -> int:
    """The post's feed entries. Counting while the fan-out is in flight would visit its 10,000 uncommitted
    rows at every poll and take PostgreSQL's CPU from it: the post's row in the feeds replica commits in the
    same transaction as the fan-out, so the entries are counted once that row is there."""
    if not await db.fetchval("SELECT EXISTS (SELECT 1 FROM posts WHERE id = $1::uuid)", post_id):
        return 0
    return int(await db.fetchval("SELECT count(*) FROM feed_entries WHERE post_id = $1::uuid", post_id))


async def fan_out(system: System, followers: list[str], author_token: str, db: Any) -> dict[str, Any]:
    roles = {p.pid: name for name, p in system.processes.items()}
    roles[os.getpid()] = "bench"
    reps = []
    for i in range(FAN_OUT_POSTS):
        await asyncio.to_thread(procstat.wait_quiet, 10.0)
        cpu_from = procstat.snapshot()
        t0 = time.perf_counter()
        post_id = await _post(system, author_token, f"Fan-out post {i}: one for all my followers")
        t_posted = time.perf_counter()
        while (count := await _entries(db, post_id)) < len(followers):
            if time.perf_counter() - t0 > GIVE_UP_SECONDS:
                raise TimeoutError(f"fan-out: {count} of {len(followers)} entries after {GIVE_UP_SECONDS:.0f} s")
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - t0
        cpu = procstat.usage(cpu_from, procstat.snapshot(), roles, database=system.database)
        reps.append(
            {
                "post_id": post_id,
                "entries": count,
                "seconds": seconds,
                "post_http_s": t_posted - t0,
                "rate": count / seconds,
                "cpu": cpu,
            }
        )
        print(
            f"   fan-out {i + 1}: {count:,} entries in {seconds:.3f} s = {count / seconds:,.0f} entries/s", flush=True
        )
    statement = await fan_out_statement(db, [r["post_id"] for r in reps])
    median = statistics.median(r["seconds"] for r in reps)
    entries = reps[0]["entries"]
    mid = sorted(reps, key=lambda r: r["seconds"])[len(reps) // 2]
    return {
        "followers": len(followers),
        "entries": entries,
        "seconds": median,
        "seconds_min": min(r["seconds"] for r in reps),
        "seconds_max": max(r["seconds"] for r in reps),
        "rate": entries / median,
        "rate_min": entries / max(r["seconds"] for r in reps),
        "rate_max": entries / min(r["seconds"] for r in reps),
        "statement_s": statement,
        "statement_rate": entries / statement if statement else None,
        "cpu": mid["cpu"],
        "reps": reps,
    }


async def fan_out_statement(db: Any, post_ids: list[str]) -> float:
    """The fan-out statement alone (as the consumer runs it, trim sampling included), for posts already
    fanned out: their entries are deleted and written again inside a transaction that is rolled back."""
    settings = get_feed_settings()
    times = []
    for post_id in post_ids:
        tx = db.transaction()
        await tx.start()
        try:
            await repository.drop_entries_of_posts(db, [uuid.UUID(post_id)])
            t0 = time.perf_counter()
            await repository.hold_fan_out_lock(db)
            await repository.fan_out_posts(
                db,
                [uuid.UUID(post_id)],
                active_window=settings.active_window,
                trim_mask=trim_sample_mask(settings.max_entries),
            )
            times.append(time.perf_counter() - t0)
        finally:
            await tx.rollback()
    return statistics.median(times)


async def read_load(
    system: System, *, port: int, path: str, tokens: list[str], connections: int, seconds: float
) -> dict[str, Any]:
    spec = {
        "port": port,
        "path": path,
        "tokens": tokens,
        "connections": connections,
        "warmup": WARMUP,
        "seconds": seconds,
        "roles": {str(p.pid): name for name, p in system.processes.items()},
        "database": system.database,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.feeds", "--load", f.name, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        stdout, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"the feed read load generator failed with exit code {process.returncode}")
        result: dict[str, Any] = json.loads(stdout)
    finally:
        os.unlink(f.name)
    print(
        f"   {path} on :{port}, {connections} connections: {result['rate']:,.0f} reads/s,"
        f" p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms,"
        f" {result['errors']} errors {result['error_samples'][:1]}",
        flush=True,
    )
    return result


async def run(system: System) -> dict[str, Any]:
    """Both feed benchmarks on a running System; returns the figures for build/bench.json and the report."""
    from bench.run import settle  # bench.run imports this module

    followers = [f"bench-follower-{i}" for i in range(FOLLOWERS)]
    readers = [f"bench-feed-reader-{i}" for i in range(READERS)]
    author_token = system.token(AUTHOR, name="Fan-out Author")
    feed_author_token = system.token(FEED_AUTHOR, name="Feed Author")
    reader_tokens = [system.token(r, name=f"Feed Reader {i}") for i, r in enumerate(readers)]
    db = await system.db("feeds")
    try:
        print(f"== feeds: {FOLLOWERS:,} follows of {AUTHOR} and {READERS} of {FEED_AUTHOR}, as events", flush=True)
        t = time.perf_counter()
        backlog = follows_backlog([(f, AUTHOR) for f in followers] + [(r, FEED_AUTHOR) for r in readers])
        rate = await drain.publish(system.namespace, backlog)
        applied = await _wait_for(
            db,
            "SELECT count(*) FROM relations WHERE kind = 'follow' AND active AND target_id = ANY($1::text[])",
            [[AUTHOR, FEED_AUTHOR]],
            len(backlog.bodies),
            what="follows applied by feeds",
        )
        # Every service keeps the graph: let the others finish too, so they do not compete with the timing.
        settled = await settle(system)
        await db.execute(
            """INSERT INTO readers (person_id, last_read_at, built_at)
               SELECT id, now(), now() FROM unnest($1::text[]) AS t(id)
               ON CONFLICT (person_id) DO UPDATE SET last_read_at = now(), built_at = now()""",
            followers,
        )
        print(
            f"   published at {rate:,.0f} msg/s, applied by feeds in {applied:.1f} s, all settled after"
            f" {settled:.1f} s more; {FOLLOWERS:,} readers rows inserted ({time.perf_counter() - t:.1f} s in all)",
            flush=True,
        )
        print(f"== feeds: fan-out of {FAN_OUT_POSTS} posts to {FOLLOWERS:,} active followers", flush=True)
        fanned = await fan_out(system, followers, author_token, db)
        print(
            f"   median {fanned['seconds']:.3f} s = {fanned['rate']:,.0f} entries/s; the statement alone"
            f" {fanned['statement_s']:.3f} s = {fanned['statement_rate']:,.0f} entries/s",
            flush=True,
        )

        t = time.perf_counter()
        gate = asyncio.Semaphore(8)

        async def one(i: int) -> str:
            async with gate:
                return await _post(system, feed_author_token, f"Feed post {i}: notes from the week")

        await asyncio.gather(*(one(i) for i in range(READER_POSTS)))
        await settle(system)
        async with system.client(reader_tokens[0]) as client:
            sizes = []
            for token in reader_tokens:  # each reader's first read builds their feed
                reply = await client.get(
                    "/api/feed", params={"limit": PAGE}, headers={"Authorization": f"Bearer {token}"}
                )
                reply.raise_for_status()
                sizes.append(len(reply.json()["items"]))
        if min(sizes) < PAGE:
            raise RuntimeError(f"a reader's feed holds fewer than {PAGE} entries: {sizes}")
        print(
            f"== feeds: reads of {PAGE} entries, {CONNECTIONS} connections, {READERS} readers"
            f" ({READER_POSTS} entries each, set up in {time.perf_counter() - t:.1f} s)",
            flush=True,
        )
        reads = {}
        for name, port, path, connections, seconds in (
            ("feeds", system.ports["feeds"], f"/feed?limit={PAGE}", CONNECTIONS, SECONDS),
            ("gateway", system.ports["gateway"], f"/api/feed?limit={PAGE}", CONNECTIONS, SECONDS),
            # One connection: the time of one read without queueing behind the others.
            ("feeds_alone", system.ports["feeds"], f"/feed?limit={PAGE}", 1, SECONDS / 2),
        ):
            await asyncio.to_thread(procstat.wait_quiet, 10.0)
            reads[name] = await read_load(
                system, port=port, path=path, tokens=reader_tokens, connections=connections, seconds=seconds
            )
            reads[name]["connections"] = connections
        return {
            "followers": FOLLOWERS,
            "fan_out": fanned,
            "reads": reads,
            "settings": {"page": PAGE, "readers": READERS, "entries_per_reader": READER_POSTS},
            "setup": "follows published as person.followed.v1 events; readers rows inserted directly",
        }
    finally:
        await db.close()


# The read load generator (its own process) ------------------------------------------------------------


async def _reads(conn: Connection, request: bytes, rec: Recorder) -> None:
    while (t0 := time.perf_counter()) < rec.stop_at:
        try:
            reply = await conn.roundtrip(request)
        except HttpError as exc:
            rec.record(t0, time.perf_counter(), False, str(exc))
            await asyncio.sleep(0.01)
            continue
        ok = reply.status == 200 and reply.body.count(b'"post_id"') + reply.body.count(b'"post":') >= PAGE
        rec.record(t0, time.perf_counter(), ok, f"{reply.status} {reply.body[:200]!r}")


async def load(spec: dict[str, Any]) -> dict[str, Any]:
    rec = Recorder(start=time.perf_counter(), warmup=spec["warmup"], window=spec["seconds"], windows=1)
    roles = {int(pid): role for pid, role in spec["roles"].items()}
    roles[os.getpid()] = "loadgen"
    marks = asyncio.create_task(cpu_marks(rec, roles, spec["database"]))
    tokens = itertools.cycle(t.encode() for t in spec["tokens"])
    conns = [Connection(spec["port"]) for _ in range(spec["connections"])]
    await asyncio.gather(*(_reads(c, request_bytes("GET", spec["path"], next(tokens)), rec) for c in conns))
    for conn in conns:
        conn.close()
    [cpu] = await marks
    every = sorted(rec.latencies[0])
    return {
        "path": spec["path"],
        "rate": len(every) / spec["seconds"],
        "ok": len(every),
        "errors": rec.errors[0],
        "error_samples": rec.error_samples,
        "p50_ms": percentile(every, 0.50),
        "p99_ms": percentile(every, 0.99),
        "max_ms": every[-1] if every else None,
        "cpu": cpu,
    }


async def _standalone() -> dict[str, Any]:
    system = System(log_level="WARNING", extra_env=UNTHROTTLED)
    await system.start()
    try:
        return await run(system)
    finally:
        await system.stop()


def main() -> None:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    if sys.argv[1:2] == ["--load"]:
        with open(sys.argv[2]) as f:
            result = runner(load(json.load(f)))
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        result = runner(_standalone())
        out = os.path.join(ROOT, "build", "bench-feeds.json")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            json.dump(result, f, indent=2, default=str)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
