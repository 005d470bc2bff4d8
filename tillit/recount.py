"""`python -m tillit recount scores [--dry-run]`: recompute every contribution score from the stored facts,
report any difference from the incremental counters and fix it (docs/scores.md).

It reads the reactions service's schema in DATABASE_URL, as the service does; the service's consumers wait
while it runs, so it compares one state.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from services.reactions import scores
from shared import db
from shared.settings import get_settings

SCHEMA = "reactions"


async def _run(args: argparse.Namespace) -> int:
    conn = await db.connect(get_settings().database_url, schema=SCHEMA)
    try:
        report = await scores.recount(conn, fix=not args.dry_run)
    finally:
        await conn.close()
    print("\n".join(report.lines()))
    return 0 if report.matches or report.fixed else 1


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tillit recount", description=__doc__)
    what = parser.add_subparsers(dest="what", required=True)
    recount_scores = what.add_parser("scores", help="contribution scores and leaderboards")
    recount_scores.add_argument("--dry-run", action="store_true", help="report differences, change nothing")
    sys.exit(asyncio.run(_run(parser.parse_args(argv))))
