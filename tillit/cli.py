"""`python -m tillit run | migrate | mailcatcher`."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import asyncpg

from shared import db
from shared.logs import configure_logging
from shared.settings import get_settings
from tillit.catalog import BACKEND_SERVICES

ROOT = Path(__file__).resolve().parent.parent
SERVICES = BACKEND_SERVICES
DEFAULT_CATCHER = "smtp://127.0.0.1:8025"


def _docker_engine_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0


def _how_to_start(what: str) -> str:
    if _docker_engine_available():
        return "start it with:  docker compose up -d rabbitmq postgres"
    if what == "PostgreSQL":
        return "start it with:  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
    return "start it with:  rabbitmq-server -detached"


async def _preflight() -> list[str]:
    settings = get_settings()
    problems = []
    pg = urlsplit(settings.database_url)
    try:
        conn = await asyncpg.connect(settings.database_url, database="postgres", timeout=5)
        await conn.close()
    except Exception as exc:
        problems.append(
            f"PostgreSQL is not reachable at {pg.hostname}:{pg.port or 5432} (DATABASE_URL): {exc}\n"
            f"  {_how_to_start('PostgreSQL')}"
        )
    amqp = urlsplit(settings.rabbitmq_url)
    try:
        connection = await aio_pika.connect(settings.rabbitmq_url, timeout=5)
        await connection.close()
    except Exception as exc:
        problems.append(
            f"RabbitMQ is not reachable at {amqp.hostname}:{amqp.port or 5672} (RABBITMQ_URL): {exc}\n"
            f"  {_how_to_start('RabbitMQ')}"
        )
    return problems


async def migrate_all() -> None:
    settings = get_settings()
    for service in SERVICES:
        applied = await db.migrate(
            settings.database_url, schema=service, migrations=ROOT / "services" / service / "migrations"
        )
        print(f"  {service}: {', '.join(applied) if applied else 'up to date'}")


def run() -> None:
    """Check the servers, migrate, then hand over to honcho, which stops every process on Ctrl-C or SIGTERM."""
    problems = asyncio.run(_preflight())
    if problems:
        print("make run cannot start:\n" + "\n".join(f"- {p}" for p in problems), file=sys.stderr)
        sys.exit(2)
    print("Database and migrations:")
    asyncio.run(migrate_all())
    settings = get_settings()
    env = dict(os.environ)
    # The Procfile says `python`: make that this environment's interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    processes = ["gateway", *SERVICES]
    mail_note = f"email goes to SMTP_URL ({urlsplit(settings.smtp_url).hostname})"
    if "SMTP_URL" not in os.environ:
        env["SMTP_URL"] = DEFAULT_CATCHER
        processes.append("mailcatcher")
        mail_note = f"email is caught locally: each message is saved in {ROOT / 'var' / 'mail'}"
    base = f"http://localhost:{settings.gateway_port}"
    sign_in = f'POST {base}/api/dev/sign-in {{"user_id": "demo-ada"}}' if settings.dev_signin_enabled else "off"
    print(
        f"""
Tillit is starting (namespace {settings.namespace!r}). Where to look:
  API docs          {base}/docs
  readiness         {base}/api/ready
  development login {sign_in}
  mail              {mail_note}
Ctrl-C stops everything.
""",
        flush=True,
    )
    honcho = Path(sys.executable).with_name("honcho")
    os.chdir(ROOT)
    os.execve(str(honcho), [str(honcho), "start", "--no-prefix", "-f", "Procfile", *processes], env)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tillit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the whole system in the foreground (what `make run` calls)")
    commands.add_parser("migrate", help="create the database if missing and apply every service's migrations")
    spec = commands.add_parser("asyncapi", help="write the AsyncAPI document of the events to docs/asyncapi.json")
    spec.add_argument("--check", action="store_true", help="only compare with the committed snapshot")
    catcher = commands.add_parser("mailcatcher", help="a development SMTP server that saves mail to var/mail")
    catcher.add_argument("--host", default="127.0.0.1")
    catcher.add_argument("--port", type=int, default=8025)
    catcher.add_argument("--folder", type=Path, default=ROOT / "var" / "mail")
    args = parser.parse_args()
    if args.command == "run":
        run()
    elif args.command == "migrate":
        asyncio.run(migrate_all())
    elif args.command == "asyncapi":
        from tillit.asyncapi import SNAPSHOT, render, system_asyncapi

        document = render(system_asyncapi())
        if args.check:
            same = SNAPSHOT.exists() and SNAPSHOT.read_bytes() == document
            verdict = "is current" if same else "differs from the code: run python -m tillit asyncapi"
            print(f"docs/asyncapi.json {verdict}")
            sys.exit(0 if same else 1)
        SNAPSHOT.write_bytes(document)
        print(f"wrote {SNAPSHOT}")
    elif args.command == "mailcatcher":
        from tillit.mailcatcher import serve

        configure_logging("mailcatcher")
        asyncio.run(serve(args.host, args.port, args.folder.absolute()))
