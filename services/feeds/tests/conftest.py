import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from shared import db

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
async def feeds_pool() -> AsyncIterator[asyncpg.Pool]:
    """The feeds schema, migrated, in a database of this module's own; tests use random ids within it."""
    name = f"tillit_test_feeds_{secrets.token_hex(4)}"
    dsn = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        await db.migrate(dsn, schema="feeds", migrations=MIGRATIONS)
        pool = await db.create_pool(dsn, schema="feeds", size=4)
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
