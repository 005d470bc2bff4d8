"""`python -m tests.chaos` (make chaos): the full chaos round, its report printed and kept in var/chaos/.

python -m tests.chaos               every fault, about ten minutes
python -m tests.chaos --bounded     the round CI runs (tests/test_chaos.py)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tests.chaos.report import as_json, render
from tests.chaos.run import bounded_plan, chaos_round, full_plan
from tests.harness import ROOT


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--bounded", action="store_true", help="the short round CI runs")
    parser.add_argument("--rate", type=float, default=30, help="requests per second of the load (full round)")
    args = parser.parse_args()
    plan = bounded_plan() if args.bounded else full_plan(rate=args.rate)
    command = "make chaos" if not args.bounded else "python -m tests.chaos --bounded"
    result = asyncio.run(chaos_round(plan))
    report = render(result, command=command)
    out = ROOT / "var" / "chaos"
    out.mkdir(parents=True, exist_ok=True)
    stamp = result.started.replace(" ", "T").replace(":", "").removesuffix("TUTC")
    Path(out / f"{plan.name}-{stamp}.md").write_text(report)
    Path(out / f"{plan.name}-{stamp}.json").write_text(as_json(result))
    print()
    print(report)
    print(f"kept in {out}/{plan.name}-{stamp}.md and .json")
    return 1 if result.lost or result.duplicated else 0


if __name__ == "__main__":
    sys.exit(main())
