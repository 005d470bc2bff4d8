"""A realistic intranet mix through the gateway, open loop at rising rates, until p99 passes 500 ms.

    python -m bench.mix            # limits --quick, then steps of 20 s: 10, 25, 50, 75, 100, 150, ... req/s
    python -m bench.mix --quick    # only http_like_bare as the limit, steps of 8 s, fewer of them

Writes build/bench-mix.json, docs/load.md and docs/load-latency.png (p50 and p99 against the achieved rate).

Method (kept in docs/load.md too):
1. The raw limits of ../shared/limits (measure.py in a subprocess, as bench/run.py runs it) before the system
   starts, so the two never share the 2 cores.
2. A System of its own (tests.harness), the gateway's write limit off, LOG_LEVEL=WARNING. 50 people, each
   following 5 others, and 200 posts by them through the gateway; one feed read each as a warm-up.
3. End-to-end latency at a modest rate: the mix at the first step's rate while a few dozen likes, each on a
   fresh post of its own, are timed until the like_count is visible through GET /api/posts/{id} and until
   the author's notification row exists (bench/e2e.py's Sampler).
4. Steps: requests are sent at fixed intervals (1/rate), each at its scheduled time whether or not earlier
   ones have been answered (open loop; one aiohttp session, a pool of up to 512 connections). A latency is
   counted from the scheduled time, so a client falling behind shows as latency, not as a lower rate.
   The mix: 45 % GET /api/feed, 15 % GET /api/posts/{id}, 15 % like or unlike (PUT/DELETE, toggled per
   person and post), 5 % favourite or unfavourite, 5 % comment, 5 % new post, 5 % GET /api/notifications,
   5 % GET /api/search?type=posts. Any answer other than 2xx, and any request unanswered after 10 s, is an
   error. The steps stop after the first one whose p99 passes 500 ms or whose errors pass 1 %.
5. RSS of every service process at the end (VmRSS of /proc/<pid>/status).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.e2e import NotificationWatch, Sampler
from bench.httpload import ConnectionPool, percentile
from bench.run import limits_dir, measure_limits, summarize_samples, wait_for_connection_slots
from tests.harness import System

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
DOCS = ROOT / "docs" / "load.md"
PLOT = ROOT / "docs" / "load-latency.png"

PEOPLE = 50
FOLLOWS_EACH = 5
POSTS = 200
E2E_SAMPLES = 40
P99_LIMIT_MS = 500.0
ERROR_LIMIT = 0.01
TIMEOUT_S = 10.0
PAUSE_S = 3.0

RATES = [10, 25, 50, 75, 100, 150, 200, 300, 400, 600, 800]
QUICK_RATES = [10, 25, 50, 100, 200, 400]

MIX = {
    "feed": 45,
    "post": 15,
    "like": 15,
    "favourite": 5,
    "comment": 5,
    "new_post": 5,
    "notifications": 5,
    "search": 5,
}
TOPICS = ["kaffe", "budget", "onboarding", "kubernetes", "sommerfest", "lunsj", "security", "roadmap", "hybrid"]


@dataclass
class World:
    users: list[str]
    tokens: dict[str, str]
    posts: list[tuple[str, str]]  # (post id, author)
    liked: set[tuple[str, str]] = field(default_factory=set)
    favourited: set[tuple[str, str]] = field(default_factory=set)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def other_post(self, user: str) -> str:
        while True:
            post_id, author = self.rng.choice(self.posts)
            if author != user:
                return post_id


@dataclass
class Result:
    endpoint: str
    scheduled: float
    done: float
    ok: bool
    detail: str = ""

    @property
    def ms(self) -> float:
        return (self.done - self.scheduled) * 1e3


def _request(world: World, endpoint: str, user: str, n: int) -> tuple[str, str, str, Any]:
    """(name as reported, method, path, JSON body) of one request of the mix."""
    rng = world.rng
    if endpoint == "feed":
        return "feed", "GET", "/api/feed?limit=20", None
    if endpoint == "post":
        return "post", "GET", f"/api/posts/{rng.choice(world.posts)[0]}", None
    if endpoint in ("like", "favourite"):
        post_id = world.other_post(user)
        state = world.liked if endpoint == "like" else world.favourited
        key = (user, post_id)
        if key in state:
            state.discard(key)
            return f"un{endpoint}", "DELETE", f"/api/posts/{post_id}/{endpoint}", None
        state.add(key)
        return endpoint, "PUT", f"/api/posts/{post_id}/{endpoint}", None
    if endpoint == "comment":
        body = {"body": f"Good point about {rng.choice(TOPICS)} ({n})"}
        return "comment", "POST", f"/api/posts/{world.other_post(user)}/comments", body
    if endpoint == "new_post":
        return "new_post", "POST", "/api/posts", {"body": f"Thoughts on {rng.choice(TOPICS)}, take {n}", "kind": "idea"}
    if endpoint == "notifications":
        return "notifications", "GET", "/api/notifications?limit=20", None
    return "search", "GET", f"/api/search?q={rng.choice(TOPICS)}&type=posts", None


async def _one(
    session: aiohttp.ClientSession, base: str, world: World, endpoint: str, n: int, scheduled: float
) -> Result:
    user = world.rng.choice(world.users)
    name, method, path, body = _request(world, endpoint, user, n)
    headers = {"Authorization": f"Bearer {world.tokens[user]}"}
    try:
        async with session.request(method, base + path, json=body, headers=headers) as reply:
            data = await reply.read()
            ok = 200 <= reply.status < 300
            if ok and name == "new_post":
                world.posts.append((json.loads(data)["id"], user))
            return Result(name, scheduled, time.perf_counter(), ok, "" if ok else f"{reply.status} {data[:200]!r}")
    except (TimeoutError, aiohttp.ClientError) as exc:
        return Result(name, scheduled, time.perf_counter(), False, f"{type(exc).__name__}: {exc}")


async def offer(session: aiohttp.ClientSession, base: str, world: World, rate: float, seconds: float) -> list[Result]:
    """Open loop: request i is sent at start + i / rate, answered or not; waits for the last answers."""
    names, weights = list(MIX), list(MIX.values())
    count = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        endpoint = world.rng.choices(names, weights)[0]
        tasks.append(asyncio.create_task(_one(session, base, world, endpoint, i, scheduled)))
    return list(await asyncio.gather(*tasks))


def _pct(values: list[float], q: float) -> float | None:
    return percentile(sorted(values), q) if values else None


def summarize_step(rate: float, seconds: float, results: list[Result]) -> dict[str, Any]:
    ok = [r for r in results if r.ok]
    start = min(r.scheduled for r in results)
    end = start + seconds
    # Achieved: the successful answers that came back within the step's time, per second.
    achieved = sum(1 for r in ok if r.done <= end) / seconds
    latencies = [r.ms for r in ok]
    per: dict[str, Any] = {}
    for name in sorted({r.endpoint for r in results}):
        mine = [r for r in results if r.endpoint == name]
        ms = [r.ms for r in mine if r.ok]
        per[name] = {
            "count": len(mine),
            "errors": sum(1 for r in mine if not r.ok),
            "p50_ms": _pct(ms, 0.5),
            "p99_ms": _pct(ms, 0.99),
        }
    errors = len(results) - len(ok)
    # An error counts as slower than any answer: p99 over all requests, errors at the top.
    all_ms = sorted(latencies) + [TIMEOUT_S * 1e3] * errors
    return {
        "offered": rate,
        "seconds": seconds,
        "requests": len(results),
        "achieved": achieved,
        "p50_ms": _pct(latencies, 0.5),
        "p99_ms": percentile(all_ms, 0.99) if all_ms else None,
        "errors": errors,
        "error_rate": errors / len(results) if results else 0.0,
        "error_samples": sorted({r.detail for r in results if not r.ok})[:5],
        "endpoints": per,
    }


def sustained(step: dict[str, Any]) -> bool:
    return step["p99_ms"] is not None and step["p99_ms"] < P99_LIMIT_MS and step["error_rate"] < ERROR_LIMIT


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# Set-up ---------------------------------------------------------------------------------------------


async def seed(system: System) -> tuple[World, list[str], list[tuple[str, bytes]], str]:
    rng = random.Random(42)
    users = [f"mix-{i:02d}" for i in range(PEOPLE)]
    tokens = {u: system.token(u, name=f"Mix Person {i}") for i, u in enumerate(users)}
    gate = asyncio.Semaphore(8)
    base = system.base_url

    async with aiohttp.ClientSession() as session:

        async def call(user: str, method: str, path: str, body: Any = None) -> Any:
            async with gate:
                headers = {"Authorization": f"Bearer {tokens[user]}"}
                async with session.request(method, base + path, json=body, headers=headers) as reply:
                    data = await reply.read()
                    if reply.status >= 300:
                        raise RuntimeError(f"{method} {path}: {reply.status} {data[:300]!r}")
                    return json.loads(data) if data else None

        # One feed read each first: the gateway syncs each profile on first sight.
        await asyncio.gather(*(call(u, "GET", "/api/feed?limit=5") for u in users))
        follows = [(u, t) for u in users for t in rng.sample([x for x in users if x != u], FOLLOWS_EACH)]
        await asyncio.gather(*(call(u, "PUT", f"/api/people/{t}/follow") for u, t in follows))

        async def post(i: int, author: str, body: str) -> tuple[str, str]:
            reply = await call(author, "POST", "/api/posts", {"body": body, "kind": "idea"})
            return str(reply["id"]), author

        posts = list(
            await asyncio.gather(
                *(
                    post(i, users[i % PEOPLE], f"{TOPICS[i % len(TOPICS)]}: idea {i}, what do you think?")
                    for i in range(POSTS)
                )
            )
        )
        # Fresh posts for the end-to-end samples, by an author outside the mix, liked by nobody else.
        e2e_author = "mix-e2e-author"
        tokens[e2e_author] = system.token(e2e_author, name="E2E Author")
        e2e_posts = [
            p for p, _ in await asyncio.gather(*(post(i, e2e_author, f"e2e sample {i}") for i in range(E2E_SAMPLES)))
        ]
        await asyncio.gather(*(call(u, "GET", "/api/feed?limit=20") for u in users))
    likers = [(u, tokens[u].encode()) for u in users[:10]]
    world = World(users=users, tokens=tokens, posts=posts)
    return world, e2e_posts, likers, tokens[users[-1]]


async def e2e_phase(
    system: System,
    session: aiohttp.ClientSession,
    world: World,
    posts: list[str],
    likers: Any,
    reader: str,
    rate: float,
) -> dict[str, Any]:
    watch_db = await system.db("notifications")
    watch = NotificationWatch(watch_db)
    http = ConnectionPool(system.ports["gateway"], 8)
    sampler = Sampler(http=http, watch=watch, posts=posts, likers=likers, reader_token=reader.encode())
    watch.start()
    seconds = 15.0
    try:
        background = asyncio.create_task(offer(session, system.base_url, world, rate, seconds + 2))
        samples = await sampler.run(rate=len(posts) / seconds, seconds=seconds)
        mix = summarize_step(rate, seconds + 2, await background)
    finally:
        await watch.stop()
        await http.close()
        await watch_db.close()
    return {"background_rate": rate, "background": mix, **summarize_samples(samples)}


# Limits ---------------------------------------------------------------------------------------------


def limits(args: argparse.Namespace) -> dict[str, Any]:
    if args.limits:
        result: dict[str, Any] = json.loads(args.limits.read_text())
        return result
    out = BUILD / "mix-limits.json"
    if not args.quick:
        return measure_limits(full=False, out=out)
    command = [
        sys.executable,
        str(limits_dir() / "measure.py"),
        "--quick",
        "--only",
        "http_like_bare",
        "--out",
        str(out),
    ]
    print(f"== limits: {' '.join(command)}", flush=True)
    subprocess.run(command, cwd=ROOT, check=False)
    if not out.exists():
        raise SystemExit("measure.py wrote no figures (PostgreSQL or RabbitMQ out of reach?)")
    result = json.loads(out.read_text())
    return result


# Main -----------------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    rates = args.rates or (QUICK_RATES if args.quick else RATES)
    seconds = args.seconds or (8.0 if args.quick else 20.0)
    env = {
        "RATE_LIMIT_WRITES_PER_MINUTE": "0",  # 0 turns the per-person write limit off
        "RATE_LIMIT_WRITE_BURST": "1000000",
        "LOG_LEVEL": "WARNING",
    }
    system = System(log_level="WARNING", extra_env=env)
    await wait_for_connection_slots(40)
    out: dict[str, Any] = {"rates": rates, "step_seconds": seconds, "steps": []}
    try:
        print("== starting the system", flush=True)
        await system.start()
        print(f"== seeding: {PEOPLE} people, {PEOPLE * FOLLOWS_EACH} follows, {POSTS} posts", flush=True)
        world, e2e_posts, likers, reader = await seed(system)
        connector = aiohttp.TCPConnector(limit=512)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            print(f"== end-to-end: {E2E_SAMPLES} sampled likes under the mix at {rates[0]} req/s", flush=True)
            out["e2e"] = await e2e_phase(system, session, world, e2e_posts, likers, reader, rates[0])
            e = out["e2e"]
            print(
                f"   count visible p50 {e['count_p50_ms']} ms, notification p50 {e['notification_p50_ms']} ms,"
                f" missing {e['missing']}",
                flush=True,
            )
            for rate in rates:
                await asyncio.sleep(PAUSE_S)
                results = await offer(session, system.base_url, world, rate, seconds)
                step = summarize_step(rate, seconds, results)
                out["steps"].append(step)
                print(
                    f"   {rate:>5} req/s offered: {step['achieved']:7.1f} achieved, p50 {step['p50_ms']:.1f} ms,"
                    f" p99 {step['p99_ms']:.1f} ms, errors {step['errors']}",
                    flush=True,
                )
                if not sustained(step):
                    break
        out["rss_kib"] = {name: rss_kib(p.pid) for name, p in system.processes.items()}
    finally:
        await system.stop()
    ok = [s for s in out["steps"] if sustained(s)]
    out["sustained"] = ok[-1] if ok else None
    return out


def plot(steps: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [s["achieved"] for s in steps]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.plot(x, [s["p50_ms"] for s in steps], "o-", label="p50")
    ax.plot(x, [s["p99_ms"] for s in steps], "s-", label="p99")
    ax.axhline(P99_LIMIT_MS, color="red", linestyle="--", linewidth=1, label="500 ms")
    for s in steps:
        ax.annotate(f"{s['offered']:g}", (s["achieved"], s["p99_ms"]), textcoords="offset points", xytext=(3, 5))
    ax.set_yscale("log")
    ax.set_xlabel("achieved rate, req/s (labels: offered)")
    ax.set_ylabel("gateway latency, ms")
    ax.set_title("Tillit intranet mix, open loop, rising rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _f(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def markdown(result: dict[str, Any], lim: dict[str, Any], command: str) -> str:
    steps = result["steps"]
    best = result["sustained"]
    bare = lim.get("results", {}).get("http_like_bare") or {}
    bare_rate = bare.get("value")
    lines = [
        "# Load: an intranet mix at rising rates",
        "",
        f"Last run: {result['finished_at']}, `{command}` ({result['duration_s']:.0f} s in all), on the shared",
        "2-core machine of ../shared/limits/RESULTS.md, every service one process (tests.harness.System).",
        "The machine is shared and was busy: load average "
        + ", ".join(f"{x:.1f}" for x in result["loadavg_at_start"])
        + " (1, 5, 15 min) at the start, on 2 cores;",
        "figures of another run can differ severalfold. Raw limits and mix ran in the same run, one after the other.",
        "",
        "![p50 and p99 against the achieved rate](load-latency.png)",
        "",
        "## Method",
        "",
        *[
            line[3:] if line.startswith("   ") else line
            for line in (__doc__ or "").split("Method (kept in docs/load.md too):\n")[1].splitlines()
        ],
        "",
        "## Highest sustained rate",
        "",
    ]
    if best:
        lines.append(
            f"**{best['achieved']:,.0f} req/s** achieved ({best['offered']:g} offered), p50 {_f(best['p50_ms'])} ms,"
            f" p99 {_f(best['p99_ms'])} ms, {best['errors']} errors of {best['requests']:,}."
        )
    else:
        lines.append("No step held p99 < 500 ms with < 1 % errors.")
    lines += ["", "Beside the raw limits measured in the same run (measure.py, " + lim.get("mode", "?") + " mode):", ""]
    lines += ["| figure | ours | limit | ratio |", "|---|---:|---:|---:|"]
    if best and bare_rate:
        lines.append(
            f"| highest sustained rate / `http_like_bare` | {best['achieved']:,.0f} req/s | {bare_rate:,.0f} req/s"
            f" | {best['achieved'] / bare_rate:.3f} |"
        )
    low = steps[0] if steps else None
    if low and bare.get("p50_ms"):
        lines.append(
            f"| p50 at {low['offered']:g} req/s / `http_like_bare` p50 (saturated) | {_f(low['p50_ms'])} ms"
            f" | {_f(bare['p50_ms'])} ms | {low['p50_ms'] / bare['p50_ms']:.2f} |"
        )
    for name in ("pg_like_tx", "pipeline_per_event"):
        other = lim.get("results", {}).get(name)
        if best and other and other.get("value"):
            lines.append(
                f"| highest sustained rate / `{name}` | {best['achieved']:,.0f} req/s | {other['value']:,.0f}"
                f" {other.get('unit', '')} | {best['achieved'] / other['value']:.3f} |"
            )
    lines += [
        "",
        "`http_like_bare` is one uvicorn process answering a like with one PostgreSQL transaction; a request of",
        "the mix crosses the gateway and one or more services (a feed read: feeds, then posts for the page),",
        "and the writes feed the event pipeline, all on the same 2 cores as the load generator.",
        "",
        "## Steps",
        "",
        "| offered req/s | achieved req/s | requests | p50 ms | p99 ms | errors | held |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in steps:
        lines.append(
            f"| {s['offered']:g} | {s['achieved']:,.1f} | {s['requests']:,} | {_f(s['p50_ms'])} | {_f(s['p99_ms'])}"
            f" | {s['errors']} | {'yes' if sustained(s) else 'no'} |"
        )
    names = sorted({n for s in steps for n in s["endpoints"]})
    lines += [
        "",
        "Per endpoint, p50 / p99 ms (errors, if any, in brackets):",
        "",
        "| offered | " + " | ".join(names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for s in steps:
        cells = []
        for n in names:
            e = s["endpoints"].get(n)
            if not e:
                cells.append("-")
                continue
            err = f" ({e['errors']})" if e["errors"] else ""
            cells.append(f"{_f(e['p50_ms'], 0)} / {_f(e['p99_ms'], 0)}{err}")
        lines.append(f"| {s['offered']:g} | " + " | ".join(cells) + " |")
    errs = [x for s in steps for x in s["error_samples"]][:5]
    if errs:
        lines += ["", "Errors seen (up to 5): " + "; ".join(f"`{x[:120]}`" for x in errs)]
    e = result["e2e"]
    lines += [
        "",
        "## End-to-end event latency",
        "",
        f"{e['samples']} likes, each on a fresh post of its own, sent over 15 s while the mix ran at"
        f" {e['background_rate']:g} req/s (its own p99 then: {_f(e['background']['p99_ms'])} ms); timed from",
        "just before the PUT. Polled every 10 ms (count) and 5 ms (notification).",
        "",
        "| from the like to | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|",
        f"| the PUT's answer | {_f(e['http_p50_ms'])} | {_f(e['http_p99_ms'])} | |",
        f"| like_count visible in GET /api/posts/{{id}} | {_f(e['count_p50_ms'])} | {_f(e['count_p99_ms'])}"
        f" | {_f(e['count_max_ms'])} |",
        f"| the author's notification written | {_f(e['notification_p50_ms'])} | {_f(e['notification_p99_ms'])}"
        f" | {_f(e['notification_max_ms'])} |",
        "",
        f"Missing: {e['missing']}.",
        "",
        "## Memory per service",
        "",
        "RSS (VmRSS) of each service process at the end of the run, after the last step:",
        "",
        "| process | RSS MiB |",
        "|---|---:|",
    ]
    rss = result["rss_kib"]
    for name, kib in sorted(rss.items(), key=lambda kv: -(kv[1] or 0)):
        lines.append(f"| {name} | {_f(kib / 1024 if kib else None)} |")
    total = sum(k for k in rss.values() if k)
    lines += [f"| **all** | **{total / 1024:,.0f}** |", ""]
    lines += ["Figures as JSON: build/bench-mix.json (raw limits: build/mix-limits.json)."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="http_like_bare only as the limit, shorter and fewer steps")
    ap.add_argument("--seconds", type=float, help="length of each step (default 20, --quick 8)")
    ap.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], help="comma-separated req/s")
    ap.add_argument("--limits", type=Path, help="reuse this limits JSON instead of measuring (not for publishing)")
    ap.add_argument("--no-docs", action="store_true", help="leave docs/load.md and the plot alone")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m bench.mix" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    lim = limits(args)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(bench(args))
    result["duration_s"] = time.perf_counter() - started
    result["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    result["command"] = command
    result["loadavg_at_start"] = load_at_start
    BUILD.mkdir(exist_ok=True)
    (BUILD / "bench-mix.json").write_text(json.dumps({"mix": result, "limits": lim}, indent=2, default=str) + "\n")
    best = result["sustained"]
    bare = (lim.get("results", {}).get("http_like_bare") or {}).get("value")
    print(f"highest sustained: {best['achieved']:.0f} req/s" if best else "no step held", flush=True)
    if best and bare:
        print(f"ratio to http_like_bare ({bare:,.0f} req/s): {best['achieved'] / bare:.3f}")
    if not args.no_docs and result["steps"]:
        plot(result["steps"], PLOT)
        DOCS.write_text(markdown(result, lim, command))
        print(f"wrote {DOCS} and {PLOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
