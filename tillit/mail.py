"""`python -m tillit mail failed | retry | suppressed | unsuppress`: what operators do about email that failed.

It reads the notifications service's schema in DATABASE_URL, as the service does (docs/notifications.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Sequence

from services.notifications import emails
from shared import db
from shared.settings import get_settings

SCHEMA = "notifications"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="mail_command", required=True)
    failed = commands.add_parser("failed", help="list emails that failed for good: reason, recipient, attempts")
    failed.add_argument("--limit", type=int, default=50, help="the newest this many (default 50)")
    retry = commands.add_parser("retry", help="send failed emails again, with a fresh count of attempts")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", default=[], type=uuid.UUID, metavar="ID", help="ids from `mail failed`")
    which.add_argument("--all-failed", action="store_true", help="every failed email")
    commands.add_parser("suppressed", help="list addresses no email goes to (refused for good by their server)")
    unsuppress = commands.add_parser("unsuppress", help="let email go to an address again")
    unsuppress.add_argument("address")


async def _run(args: argparse.Namespace) -> int:
    conn = await db.connect(get_settings().database_url, schema=SCHEMA)
    try:
        if args.mail_command == "failed":
            rows = await emails.failed_emails(conn, limit=args.limit)
            if not rows:
                print("no failed emails")
            for r in rows:
                print(
                    f"{r['id']}  {r['created_at']:%Y-%m-%d %H:%M}  {r['kind']:<16} to {r['recipient_id']} "
                    f"<{r['address'] or '?'}>  attempts {r['attempts']}\n    {r['last_error']}"
                )
        elif args.mail_command == "retry":
            if not args.all_failed and not args.ids:
                print("give the ids of failed emails, or --all-failed", file=sys.stderr)
                return 2
            rows = await emails.retry_failed(conn, None if args.all_failed else args.ids)
            print(f"{len(rows)} email(s) queued again")
            if not args.all_failed and len(rows) < len(args.ids):
                missing = set(args.ids) - {r["id"] for r in rows}
                print(f"not failed (or unknown): {', '.join(map(str, sorted(missing)))}", file=sys.stderr)
            if await emails.suppressed_addresses(conn):
                print("note: an email to a suppressed address is skipped again (see `mail suppressed`)")
        elif args.mail_command == "suppressed":
            rows = await emails.suppressed_addresses(conn)
            if not rows:
                print("no suppressed addresses")
            for r in rows:
                print(f"{r['address']}  since {r['suppressed_at']:%Y-%m-%d %H:%M}  {r['reason']}")
        elif args.mail_command == "unsuppress":
            if await emails.unsuppress(conn, args.address):
                print(f"{args.address} gets email again")
            else:
                print(f"{args.address} was not suppressed", file=sys.stderr)
                return 1
    finally:
        await conn.close()
    return 0


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tillit mail", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    sys.exit(asyncio.run(_run(args)))
