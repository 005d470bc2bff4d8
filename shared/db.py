"""PostgreSQL: the asyncpg pool every service uses, the database bootstrap and the migrations runner.

Each service owns one schema; its pool sets `search_path` to it, so its SQL never names the schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias
from urllib.parse import urlsplit

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from shared.retry import backoff_seconds

log = logging.getLogger(__name__)

# What repositories take: a connection of its own or one borrowed from a pool.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"


async def _register_json_codecs(conn: asyncpg.Connection) -> None:
    # asyncpg hands jsonb back as str unless told otherwise.
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def create_pool(dsn: str, *, schema: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min(2, size),
        max_size=size,
        init=_register_json_codecs,
        server_settings={"search_path": schema, "application_name": f"tillit-{schema}"},
    )
    assert pool is not None
    return pool


async def connect(dsn: str, *, schema: str) -> asyncpg.Connection:
    """A connection of its own, outside the pool (LISTEN needs one: the pool resets with UNLISTEN)."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema, "application_name": f"tillit-{schema}"})
    await _register_json_codecs(conn)
    return conn


async def ensure_database(dsn: str) -> bool:
    """Create the database named in `dsn` if it is missing; True if it was created."""
    name = urlsplit(dsn).path.lstrip("/") or "postgres"
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    admin = await asyncpg.connect(dsn, database="postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        log.info("created database %s", name)
        return True
    except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
        # Another replica created it at the same moment (PostgreSQL reports that race either way).
        return False
    finally:
        await admin.close()


async def listen_forever(dsn: str, channel: str, on_notify: Callable[[], None], *, retry_cap_seconds: float) -> None:
    """Call `on_notify` for every NOTIFY on `channel` until cancelled, reconnecting after the database
    goes away. It runs on a connection of its own: the pool resets connections with UNLISTEN. Callers
    also poll, which covers the time spent reconnecting; `on_notify` is called on every (re)connect so
    they catch up at once."""
    attempt = 0
    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn)
            closed = asyncio.Event()
            conn.add_termination_listener(lambda _conn, closed=closed: closed.set())
            await conn.add_listener(channel, lambda *_: on_notify())
            attempt = 0
            on_notify()
            await closed.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            attempt += 1
            log.warning("listener on %s reconnecting: %s", channel, exc)
            await asyncio.sleep(backoff_seconds(attempt, cap=retry_cap_seconds))
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close(timeout=1))


def _migration_files(*directories: Path) -> list[tuple[str, str]]:
    files: list[tuple[str, str]] = []
    for directory in directories:
        for path in sorted(directory.glob("*.sql")):
            files.append((f"{directory.parent.name}/{path.name}", path.read_text()))
    return files


class MigrationChanged(RuntimeError):
    pass


async def migrate(dsn: str, *, schema: str, migrations: Path) -> list[str]:
    """Apply the shared runtime's and the service's migrations to `schema`, each once, in order.

    An advisory lock lets replicas start together; a checksum per file catches an edited migration.
    """
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock(hashtext('tillit.migrate.' || $1))", schema)
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   name text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")}
        for name, sql in _migration_files(SHARED_MIGRATIONS, migrations):
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if name in done:
                if done[name] != checksum:
                    raise MigrationChanged(f"{schema}: {name} was edited after it was applied; add a new migration")
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", name, checksum)
            applied.append(name)
            log.info("applied migration", extra={"schema": schema, "migration": name})
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext('tillit.migrate.' || $1))", schema)
        await conn.close()
    return applied
