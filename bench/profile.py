"""Where the time goes under load: py-spy samples every service while the closed-loop like load runs.

    .venv/bin/pip install py-spy            # a profiling tool, deliberately not a dependency
    python -m bench.profile --seconds 15    # writes build/profile-<service>.txt (collapsed stacks)

Each file holds py-spy's collapsed stacks ("frame;frame;frame count"); the summary printed here is the
share of samples per frame, inclusive, for the frames that matter most.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import math
import shutil
import subprocess
import sys
from pathlib import Path

from bench.harness_env import UNTHROTTLED
from bench.run import BUILD, create_posts, roles, run_loadgen, settle
from tests.harness import System


def summarize(path: Path, top: int) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaf[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples", "  inclusive:"]
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    lines.append("  self:")
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in leaf.most_common(top)]
    return "\n".join(lines)


async def profile(args: argparse.Namespace) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    system = System(log_level="WARNING", extra_env=UNTHROTTLED)
    try:
        await system.start()
        authors = [system.token(f"prof-author-{i}", name=f"Author {i}") for i in range(4)]
        user_count = next(u for u in itertools.count(args.users) if math.gcd(u, args.posts) == 1)
        tokens = [system.token(f"prof-user-{i}", name=f"User {i}") for i in range(user_count)]
        posts = await create_posts(system, authors, args.posts, label="Profiled post")
        [warm_post] = await create_posts(system, authors, 1, label="Warm-up post")
        await settle(system)
        base = {"port": system.ports["gateway"], "connections": args.connections, "roles": roles(system)}
        await run_loadgen(
            {
                **base,
                "mode": "closed",
                "tokens": tokens,
                "posts": [warm_post],
                "start": 0,
                "count": len(tokens),
                "warmup": 0,
                "seconds": 600,
                "windows": 1,
            }
        )
        await settle(system)
        services = args.services.split(",")
        spies = [
            await asyncio.create_subprocess_exec(
                py_spy,
                "record",
                "--pid",
                str(system.processes[s].pid),
                "--duration",
                str(int(args.seconds)),
                "--rate",
                "100",
                "--nonblocking",
                "--function",
                "--format",
                "raw",
                "-o",
                str(BUILD / f"profile-{s}.txt"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for s in services
        ]
        load = {**base, "tokens": tokens, "posts": posts, "start": 0, "warmup": 0, "seconds": args.seconds}
        if args.rate:
            load.update({"mode": "open", "rate": args.rate, "windows": 1})
        else:
            load.update({"mode": "closed", "windows": 1})
        result = await run_loadgen(load)
        for spy in spies:
            await spy.wait()
        print(f"load: {result['windows'][0]['rate']:,.0f} likes/s, cpu {result['windows'][0]['cpu']}")
        for s in services:
            print(summarize(BUILD / f"profile-{s}.txt", args.top))
    finally:
        await system.stop()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--rate", type=float, help="open loop at this rate instead of closed loop")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--users", type=int, default=3000)
    ap.add_argument("--posts", type=int, default=1000)
    ap.add_argument("--services", default="gateway,reactions,posts,notifications")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    BUILD.mkdir(exist_ok=True)
    asyncio.run(profile(args))


if __name__ == "__main__":
    main()
