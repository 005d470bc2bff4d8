"""Closing a campaign over a real PostgreSQL: exactly one campaign.closed.v1 however many closers race (replicas'
jobs, readers who find it due, its owner), and no idea slips in between the ranking and the closing."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from services.posts import campaigns
from shared import db
from shared.api_campaigns import CreateCampaign
from shared.auth import Claims
from shared.events import EveryoneAudience
from shared.http import ProblemError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
LEADER = Claims(sub="leader-1", name="Leder", groups=["leaders"])


@pytest.fixture(scope="module")
async def posts_pool() -> AsyncIterator[asyncpg.Pool]:
    name = f"tillit_test_posts_{secrets.token_hex(4)}"
    dsn = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        await db.migrate(dsn, schema="posts", migrations=MIGRATIONS)
        pool = await db.create_pool(dsn, schema="posts", size=12)
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


async def _campaign(pool: asyncpg.Pool) -> uuid.UUID:
    request = CreateCampaign(
        title="Bedre møter",
        question="Hva gjør vi annerledes?",
        audience=EveryoneAudience(type="everyone"),
        closes_at=datetime.now(UTC) + timedelta(hours=1),
    )
    campaign = await campaigns.open_campaign(pool, owner=LEADER, request=request, leader_group="leaders")
    return campaign.id


async def _closed_events(pool: asyncpg.Pool, campaign_id: uuid.UUID) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT body FROM outbox WHERE routing_key = 'campaign.closed.v1'")
    events = [orjson.loads(bytes(row["body"])) for row in rows]
    return [e["data"] for e in events if e["data"]["campaign_id"] == str(campaign_id)]


async def test_racing_closers_announce_a_due_campaign_once(posts_pool: asyncpg.Pool) -> None:
    campaign_id = await _campaign(posts_pool)
    idea = await campaigns.add_idea(posts_pool, campaign_id, author=Claims(sub="a-1", name="A"), body="Idé")
    async with posts_pool.acquire() as conn:
        await conn.execute(
            "UPDATE campaigns SET closes_at = now() - interval '1 second' WHERE post_id = $1", campaign_id
        )

    async def job() -> None:
        async with posts_pool.acquire() as conn:
            await campaigns.close_due_campaigns(conn)

    async def reader() -> None:
        await campaigns.get_campaign(posts_pool, campaign_id, viewer=Claims(sub="r-1", name="R"))

    await asyncio.gather(*(job() for _ in range(4)), *(reader() for _ in range(4)))
    with pytest.raises(ProblemError) as closed:
        await campaigns.close_campaign(posts_pool, campaign_id, user=LEADER)
    assert closed.value.status == 409
    with pytest.raises(ProblemError) as refused:
        await campaigns.add_idea(posts_pool, campaign_id, author=Claims(sub="a-2", name="B"), body="For sent")
    assert refused.value.status == 409
    events = await _closed_events(posts_pool, campaign_id)
    assert len(events) == 1
    assert [i["post_id"] for i in events[0]["ideas"]] == [str(idea.id)]


async def test_no_idea_slips_in_between_the_ranking_and_the_closing(posts_pool: asyncpg.Pool) -> None:
    campaign_id = await _campaign(posts_pool)

    async def propose(n: int) -> uuid.UUID | None:
        try:
            idea = await campaigns.add_idea(posts_pool, campaign_id, author=Claims(sub=f"p-{n}", name="P"), body="Idé")
        except ProblemError as exc:
            assert exc.status == 409
            return None
        return idea.id

    async def close_soon() -> None:
        await asyncio.sleep(0.01)
        await campaigns.close_campaign(posts_pool, campaign_id, user=LEADER)

    results = await asyncio.gather(*(propose(n) for n in range(20)), close_soon())
    accepted = {str(r) for r in results if isinstance(r, uuid.UUID)}
    async with posts_pool.acquire() as conn:
        stored = {
            str(r["post_id"])
            for r in await conn.fetch("SELECT post_id FROM campaign_ideas WHERE campaign_id = $1", campaign_id)
        }
    announced = {i["post_id"] for i in (await _closed_events(posts_pool, campaign_id))[0]["ideas"]}
    assert accepted == stored == announced
