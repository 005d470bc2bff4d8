"""`python -m bench`: the machine's raw limits first, then the real system under load, then the report.

    python -m bench                 # limits --quick (about a minute), then ours; about 5 minutes
    python -m bench --full          # limits without --quick: the figures to publish
    python -m bench --seconds 10    # shorter load phases

Phases, one after the other (never two heavy things at once on a 2-core machine):
1. ../shared/limits/measure.py in a subprocess (TILLIT_LIMITS_DIR overrides where it is).
2. tests.harness.System: every service as a process, a fresh database and broker namespace.
3. Warm-up: each user likes one post once, so the gateway has synced every profile before timing (a
   like by someone the gateway has never seen also writes their profile; that is sign-up, not a like).
4. Closed loop, 64 connections: the sustained rate. Then an open loop paced at half of it, during which
   1 in 20 likes is sampled for end-to-end latency (count visible; notification written).
5. Consumer drains: stop a service, queue a backlog, restart it, time it through the backlog.
6. Feeds (bench/feeds.py; --skip-feeds leaves it out): one post fanned out to 10,000 active followers, and
   home feed reads under concurrent load.
7. Notifications (bench/notify.py; --skip-notify leaves it out): a viral post (1,000 likes in a burst),
   favourites against the hourly email cap, and SSE delivery to 1,000 connected clients.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import drain, feeds, notify, procstat, report
from bench.e2e import NotificationWatch, Sampler
from bench.harness_env import UNTHROTTLED
from bench.httpload import ConnectionPool, percentile
from tests.harness import PG_ADMIN_URL, System
from tillit.catalog import all_consumers

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
DOCS = ROOT / "docs" / "benchmarks.md"


def limits_dir() -> Path:
    return Path(os.environ.get("TILLIT_LIMITS_DIR") or ROOT.parent / "shared" / "limits").resolve()


def measure_limits(*, full: bool, out: Path) -> dict[str, Any]:
    script = limits_dir() / "measure.py"
    if not script.exists():
        raise SystemExit(f"no {script}: set TILLIT_LIMITS_DIR to the folder of measure.py")
    command = [sys.executable, str(script), *([] if full else ["--quick"]), "--out", str(out)]
    print(f"== limits: {shlex.join(command)}", flush=True)
    done = subprocess.run(command, cwd=ROOT, check=False)
    if done.returncode == 2 or not out.exists():
        raise SystemExit(f"measure.py could not reach PostgreSQL or RabbitMQ (exit {done.returncode})")
    limits: dict[str, Any] = json.loads(out.read_text())
    return limits


# The system ----------------------------------------------------------------------------------------


async def create_posts(system: System, tokens: list[str], count: int, *, label: str) -> list[str]:
    """`count` posts, written round-robin by the authors of `tokens`, through the gateway."""
    gate = asyncio.Semaphore(8)
    clients = [system.client(token) for token in tokens]

    async def one(i: int) -> str:
        async with gate:
            reply = await clients[i % len(clients)].post(
                "/api/posts", json={"body": f"{label} {i}: what do you think?", "kind": "idea"}
            )
        if reply.status_code != 201:
            raise RuntimeError(f"creating a post failed: {reply.status_code} {reply.text}")
        return str(reply.json()["id"])

    try:
        return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        for client in clients:
            await client.aclose()


async def settle(system: System, *, timeout: float = 180) -> float:
    """Wait until every outbox is empty and no queue holds a ready message, twice in a row; returns the
    seconds waited. Phases start from a quiet system, so one phase's backlog does not slow the next."""
    queues = [q for q in system.queue_names() if not q.endswith((".dlq", ".unrouted"))]
    schemas = [name for name in system.processes if name != "gateway"]
    outboxes = " + ".join(f"(SELECT count(*) FROM {schema}.outbox)" for schema in schemas)
    t0 = time.perf_counter()
    db = await system.db("public")
    quiet = 0
    try:
        async with drain.QueueDepth() as depth:
            while time.perf_counter() - t0 < timeout:
                waiting = await db.fetchval(f"SELECT {outboxes}")
                for queue in queues:
                    waiting += await depth.ready(queue)
                quiet = quiet + 1 if waiting == 0 else 0
                if quiet >= 3:
                    return time.perf_counter() - t0
                await asyncio.sleep(0.2)
    finally:
        await db.close()
    raise TimeoutError(f"the system did not settle in {timeout} s")


async def pg_activity(system: System) -> dict[str, int]:
    """Our database's transaction and row counters (pg_stat_database), to give PostgreSQL's work per like."""
    db = await system.db("public")
    try:
        row = await db.fetchrow(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_fetched"
            " FROM pg_stat_database WHERE datname = $1",
            system.database,
        )
    finally:
        await db.close()
    return dict(row) if row else {}


async def pg_activity_per_like(system: System, before: dict[str, int], likes: int) -> dict[str, float]:
    # The counters include the load generator's warm-up second, so this slightly overstates; it is the
    # order of magnitude that matters (how many transactions and rows one like costs in all).
    await asyncio.sleep(1.0)  # backends flush their statistics at most once a second
    after = await pg_activity(system)
    return {k: round((after[k] - before.get(k, 0)) / likes, 2) for k in after} if likes else {}


def roles(system: System) -> dict[str, str]:
    out = {str(p.pid): name for name, p in system.processes.items()}
    out[str(os.getpid())] = "bench"
    return out


async def run_loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.httpload", f.name, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        stdout, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"the load generator failed with exit code {process.returncode}")
        result: dict[str, Any] = json.loads(stdout)
        return result
    finally:
        os.unlink(f.name)


def summarize_load(result: dict[str, Any]) -> dict[str, Any]:
    windows = result["windows"]
    rates = [w["rate"] for w in windows]
    cpu_groups = windows[0]["cpu"].keys() if windows and windows[0]["cpu"] else []
    return {
        "rate": statistics.median(rates),
        "rate_min": min(rates),
        "rate_max": max(rates),
        "p50_ms": statistics.median(w["p50_ms"] for w in windows),
        "p99_ms": statistics.median(w["p99_ms"] for w in windows),
        "ok": result["ok"],
        "errors": result["errors"],
        "error_samples": result["error_samples"],
        "cpu": {g: statistics.median(w["cpu"].get(g, 0.0) for w in windows) for g in cpu_groups},
        "windows": windows,
    }


def summarize_samples(samples: list[Any]) -> dict[str, Any]:
    def pct(values: list[float], q: float) -> float | None:
        return percentile(sorted(values), q) if values else None

    http = [s.http_ms for s in samples if s.http_ms is not None]
    count = [s.count_ms for s in samples if s.count_ms is not None]
    notified = [s.notification_ms for s in samples if s.notification_ms is not None]
    return {
        "samples": len(samples),
        "missing": sum(1 for s in samples if s.error),
        "errors": [s.error for s in samples if s.error][:5],
        "http_p50_ms": pct(http, 0.5),
        "http_p99_ms": pct(http, 0.99),
        "count_p50_ms": pct(count, 0.5),
        "count_p99_ms": pct(count, 0.99),
        "count_max_ms": max(count) if count else None,
        "notification_p50_ms": pct(notified, 0.5),
        "notification_p99_ms": pct(notified, 0.99),
        "notification_max_ms": max(notified) if notified else None,
    }


async def consistency(system: System, posts: list[str]) -> dict[str, Any]:
    """Every like counted once everywhere: the source of truth, the posts projection, the inboxes."""
    db = await system.db("public")
    try:
        likes = await db.fetchval("SELECT count(*) FROM reactions.likes")
        counted = await db.fetchval("SELECT coalesce(sum(like_count), 0) FROM posts.post_counts")
        actors = await db.fetchval("SELECT count(*) FROM notifications.notification_actors")
        dead = 0
        async with drain.QueueDepth() as depth:
            for queue in system.queue_names():
                if queue.endswith(".dlq"):
                    dead += await depth.ready(queue)
    finally:
        await db.close()
    return {
        "like rows in reactions": likes,
        "sum of like counts in the posts projection": counted,
        "actors in notification groups": actors,
        "dead-lettered messages": dead,
    }


async def wait_for_connection_slots(needed: int, *, timeout: float = 600) -> None:
    """Other people's test runs share this PostgreSQL: start only when our services' pools can fill."""
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            free = await admin.fetchval(
                "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity"
            )
            if free >= needed or time.monotonic() > deadline:
                return
            print(f"   waiting for PostgreSQL connection slots: {free} free, {needed} wanted", flush=True)
            await asyncio.sleep(5)
    finally:
        await admin.close()


async def bench_system(args: argparse.Namespace) -> dict[str, Any]:
    system = System(log_level="WARNING", extra_env={**UNTHROTTLED, **dict(kv.split("=", 1) for kv in args.env)})
    try:
        # The pools of the services on the like path grow to 10 under load; the others stay small.
        await wait_for_connection_slots(50)
        print("== starting the system", flush=True)
        await system.start()
        authors = [f"bench-author-{i}" for i in range(4)]
        author_tokens = [system.token(a, name=f"Author {i}") for i, a in enumerate(authors)]
        # Coprime counts make every (post, user) pair of the load distinct (see bench.httpload.Likes).
        user_count = next(u for u in itertools.count(args.users) if math.gcd(u, args.posts) == 1)
        users = [f"bench-user-{i}" for i in range(user_count)]
        user_tokens = [system.token(u, name=f"User {i}") for i, u in enumerate(users)]
        samplers = [f"bench-sampler-{i}" for i in range(200)]
        sampler_tokens = [system.token(u, name=f"Sampler {i}") for i, u in enumerate(samplers)]
        reader_token = system.token("bench-reader", name="Reader")
        if args.drains_only:
            return {"drains": await run_drains(system, authors, args.drain_events)}
        t = time.perf_counter()
        posts = await create_posts(system, author_tokens, args.posts, label="Bench post")
        print(f"   {len(posts)} posts created in {time.perf_counter() - t:.1f} s", flush=True)
        [warm_post] = await create_posts(system, author_tokens, 1, label="Warm-up post")
        await settle(system)
        port = system.ports["gateway"]
        base = {
            "port": port,
            "connections": args.connections,
            "roles": roles(system),
            "database": system.database,
        }

        everyone = [*user_tokens, *sampler_tokens, reader_token]
        print(f"== warm-up: {len(everyone)} users like one post each", flush=True)
        warm = await run_loadgen(
            {
                **base,
                "mode": "closed",
                "tokens": everyone,
                "posts": [warm_post],
                "start": 0,
                "count": len(everyone),
                "warmup": 0,
                "seconds": 600,
                "windows": 1,
            }
        )
        print(f"   {warm['ok']} liked, {warm['errors']} errors; settled in {await settle(system):.1f} s", flush=True)

        busy = {"closed": await asyncio.to_thread(procstat.wait_quiet, args.quiet_wait)}
        print(f"== closed loop: {args.connections} connections, {args.seconds:.0f} s", flush=True)
        pg_before = await pg_activity(system)
        closed_raw = await run_loadgen(
            {
                **base,
                "mode": "closed",
                "tokens": user_tokens,
                "posts": posts,
                "start": 0,
                "warmup": args.warmup,
                "seconds": args.seconds,
                "windows": args.windows,
            }
        )
        closed = summarize_load(closed_raw)
        closed["postgres_per_like"] = await pg_activity_per_like(system, pg_before, closed_raw["ok"])
        print(
            f"   {closed['rate']:,.0f} likes/s ({closed['rate_min']:,.0f}-{closed['rate_max']:,.0f}),"
            f" p50 {closed['p50_ms']:.1f} ms, p99 {closed['p99_ms']:.1f} ms, {closed['errors']} errors;"
            f" settled in {await settle(system):.1f} s",
            flush=True,
        )
        print(f"   CPU ms per like: {report.cpu_per_like_line(closed['cpu'], closed['rate'])}", flush=True)

        half = closed["rate"] / 2
        sample_rate = half / args.sample_every
        sample_posts = await create_posts(
            system, author_tokens, math.ceil(sample_rate * args.seconds) + 5, label="Sampled post"
        )
        await settle(system)
        busy["paced"] = await asyncio.to_thread(procstat.wait_quiet, args.quiet_wait)
        print(f"== paced: {half:,.0f} likes/s for {args.seconds:.0f} s, 1 in {args.sample_every} sampled", flush=True)
        watch_db = await system.db("notifications")
        watch = NotificationWatch(watch_db)
        http = ConnectionPool(port, 16)
        sampler = Sampler(
            http=http,
            watch=watch,
            posts=sample_posts,
            likers=[(u, t.encode()) for u, t in zip(samplers, sampler_tokens, strict=True)],
            reader_token=reader_token.encode(),
        )
        watch.start()
        try:
            paced_task = asyncio.create_task(
                run_loadgen(
                    {
                        **base,
                        "mode": "open",
                        "rate": half - sample_rate,
                        "tokens": user_tokens,
                        "posts": posts,
                        "start": closed_raw["next"],
                        "warmup": args.warmup,
                        "seconds": args.seconds,
                        "windows": args.windows,
                    }
                )
            )
            await asyncio.sleep(args.warmup)
            samples = await sampler.run(rate=sample_rate, seconds=args.seconds)
            paced_raw = await paced_task
        finally:
            await watch.stop()
            await http.close()
            await watch_db.close()
        if paced_raw["next"] > len(user_tokens) * len(posts):
            print("   WARNING: (post, user) pairs ran out; raise --users or --posts", flush=True)
        paced = summarize_load(paced_raw)
        # The sampled likes are part of the paced load too; they went out at an even rate.
        sampled_rate = len(samples) / args.seconds
        paced.update(
            {
                "offered_rate": half,
                "rate": paced["rate"] + sampled_rate,
                "rate_min": paced["rate_min"] + sampled_rate,
                "rate_max": paced["rate_max"] + sampled_rate,
            }
        )
        e2e = summarize_samples(samples)
        print(
            f"   {paced['rate']:,.0f} likes/s, p50 {paced['p50_ms']:.1f} ms, p99 {paced['p99_ms']:.1f} ms,"
            f" {paced['errors']} errors; like->count p50 {report.fmt(e2e['count_p50_ms'])} ms"
            f" p99 {report.fmt(e2e['count_p99_ms'])} ms; like->notification p50"
            f" {report.fmt(e2e['notification_p50_ms'])} ms p99 {report.fmt(e2e['notification_p99_ms'])} ms"
            f" ({e2e['samples']} samples, {e2e['missing']} missing)",
            flush=True,
        )
        await settle(system)
        checks = await consistency(system, posts)

        drains = await run_drains(system, authors, args.drain_events)
        feed_figures = None if args.skip_feeds else await feeds.run(system)
        notify_figures = None if args.skip_notify else await notify.run(system)
        return {
            "feeds": feed_figures,
            "notify": notify_figures,
            "closed": closed,
            "paced": paced,
            "e2e": e2e,
            "drains": drains,
            "consistency": checks,
            "warmup": {"likes": warm["ok"], "errors": warm["errors"]},
            "machine_busy_before": busy,
        }
    except Exception:
        for service in system.processes:
            tail = [line[:300] for line in system.log_tail(service, 5).splitlines()]
            print(f"--- {service} log tail:", *tail, sep="\n  ", file=sys.stderr)
        raise
    finally:
        await system.stop()


async def run_drains(system: System, authors: list[str], n: int) -> list[dict[str, Any]]:
    async def counts_of(db: Any, post_ids: list[Any]) -> dict[str, Any]:
        row = await db.fetchrow(
            "SELECT count(*) AS posts, coalesce(sum(like_count), 0) AS likes FROM post_counts"
            " WHERE post_id = ANY($1::uuid[])",
            post_ids,
        )
        return dict(row)

    async def actors_of(db: Any, post_ids: list[Any]) -> dict[str, Any]:
        actors = await db.fetchval(
            "SELECT count(*) FROM notification_actors a JOIN notifications n ON n.id = a.notification_id"
            " WHERE n.post_id = ANY($1::uuid[])",
            post_ids,
        )
        return {"actors": actors}

    async def posts_of(db: Any, post_ids: list[Any]) -> dict[str, Any]:
        return {"posts": await db.fetchval("SELECT count(*) FROM posts WHERE id = ANY($1::uuid[])", post_ids)}

    results = []
    liked = drain.liked_backlog(n, authors=authors)
    measured = [("posts", "posts.reaction-counts", counts_of), ("notifications", "notifications.reactions", actors_of)]
    for service, consumer, verify in await _backlog(system, liked, measured):
        results.append(await _drain_one(system, service, consumer, n, lambda db, v=verify: v(db, liked.post_ids)))
    await _restart_the_others(system, measured)

    created = drain.created_backlog(n, authors=authors)
    measured = [("reactions", "reactions.posts", posts_of), ("notifications", "notifications.posts", posts_of)]
    for service, consumer, verify in await _backlog(system, created, measured):
        results.append(await _drain_one(system, service, consumer, n, lambda db, v=verify: v(db, created.post_ids)))
    await _restart_the_others(system, measured)
    return results


async def _backlog(system: System, backlog: drain.Backlog, measured: list[Any]) -> list[Any]:
    """Stop every service that takes these events, not only the measured ones, so that no other consumer
    competes for the CPU during a drain; then queue the backlog."""
    takers = sorted(
        {s for s, consumers in all_consumers().items() for c in consumers if backlog.routing_key in c.event_types}
    )
    print(f"== drains: {len(backlog.bodies):,} {backlog.routing_key}; stopping {', '.join(takers)}", flush=True)
    drain.stop(system, *takers)
    print(f"   published at {await drain.publish(system.namespace, backlog):,.0f} msg/s", flush=True)
    return measured


async def _restart_the_others(system: System, measured: list[Any]) -> None:
    """Start what _backlog stopped besides the measured services, and let them drain, untimed."""
    stopped = [s for s, p in system.processes.items() if p.poll() is not None]
    for service in stopped:
        await system.restart(service)
    if stopped:
        print(f"   restarted {', '.join(stopped)}; settled in {await settle(system):.1f} s", flush=True)


async def _drain_one(system: System, service: str, consumer: str, n: int, verify: Any) -> dict[str, Any]:
    result = await drain.timed_restart(system, service=service, consumer=consumer, events=n, verify=verify)
    print(
        f"   {consumer}: {result['rate']:,.0f} events/s ({result['seconds']:.2f} s; started in"
        f" {result['startup_s']} s); effects {result['effects']}; CPU {service} {result['cpu'].get(service)}",
        flush=True,
    )
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="measure the limits without --quick (for published figures)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each load phase (default 20)")
    ap.add_argument("--warmup", type=float, default=2.0, help="uncounted start of each load phase")
    ap.add_argument("--windows", type=int, default=4, help="windows per load phase; figures are their median")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--users", type=int, default=3000, help="distinct users (pre-minted tokens) of the load")
    ap.add_argument("--posts", type=int, default=1000, help="posts the load likes (the limits use 1000 too)")
    ap.add_argument("--sample-every", type=int, default=20, help="1 in N paced likes is timed end to end")
    ap.add_argument("--drain-events", type=int, default=20_000, help="backlog per consumer drain")
    ap.add_argument("--quiet-wait", type=float, default=30.0, help="at most this long for a quiet machine per phase")
    ap.add_argument("--limits", type=Path, help="reuse this limits JSON instead of measuring (not for publishing)")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the services (experiments)",
    )
    ap.add_argument("--rewrite-docs", action="store_true", help="only rewrite docs/benchmarks.md from build/bench.json")
    ap.add_argument("--skip-feeds", action="store_true", help="leave out the feeds phase (fan-out and feed reads)")
    ap.add_argument(
        "--skip-notify", action="store_true", help="leave out the notifications phase (viral post, emails, SSE)"
    )
    ap.add_argument("--drains-only", action="store_true", help="only the consumer drains (experiments; no report)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rewrite_docs:
        saved = json.loads((BUILD / "bench.json").read_text())
        DOCS.write_text(report.markdown(saved["bench"], saved["limits"]))
        print(f"rewrote {DOCS.relative_to(ROOT)} from build/bench.json")
        return 0
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    BUILD.mkdir(exist_ok=True)
    if args.limits:
        limits = json.loads(args.limits.read_text())
    else:
        limits = measure_limits(full=args.full, out=BUILD / "limits.json")
    try:
        import uvloop
    except ImportError:  # the services need it, but the bench can do without
        bench = asyncio.run(bench_system(args))
    else:
        bench = uvloop.run(bench_system(args))
    if args.drains_only:
        (BUILD / "bench-drains.json").write_text(json.dumps(bench, indent=2, default=str) + "\n")
        return 0
    bench.update(
        {
            "command": "make bench"
            if argv is None and not sys.argv[1:]
            else " ".join(["python -m bench", shlex.join(sys.argv[1:])]),
            "started_at": started.isoformat(timespec="seconds"),
            "duration_s": time.perf_counter() - t0,
            "host": platform.node(),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "limits_file": str(args.limits or BUILD / "limits.json"),
        }
    )
    bench["aims"] = report.aims(bench, limits)
    print()
    print(report.table(bench, limits))
    print()
    for aim in bench["aims"]:
        print(f"aim {'met   ' if aim['met'] else 'MISSED'}  {aim['aim']}: {aim['figure']}")
    (BUILD / "bench.json").write_text(json.dumps({"bench": bench, "limits": limits}, indent=2, default=str) + "\n")
    if not args.no_docs:
        DOCS.parent.mkdir(exist_ok=True)
        DOCS.write_text(report.markdown(bench, limits))
        print(f"wrote {DOCS.relative_to(ROOT)} and build/bench.json")
    return 0
