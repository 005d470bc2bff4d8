"""Idea campaigns: a leader asks for input, people answer with ideas, likes back them, and the owner closes the
loop with a status and a reason for each idea. A campaign closes on its date and announces the ranking."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from pydantic import TypeAdapter

from services.posts import campaigns_repository as repository
from services.posts.repository import insert_post
from shared.api import Person, decode_cursor, encode_cursor
from shared.api_campaigns import (
    Campaign,
    CampaignPage,
    ChangeIdeaStatus,
    CreateCampaign,
    Idea,
    IdeaItem,
    IdeaPage,
)
from shared.auth import Claims
from shared.db import Connection
from shared.directory import remember_person
from shared.events import (
    Audience,
    CampaignClosedV1,
    CampaignInfo,
    EventType,
    IdeaStatusChangedV1,
    PersonRef,
    PostCreatedV1,
    RankedIdea,
    TeamAudience,
    new_envelope,
)
from shared.http import ProblemError
from shared.outbox import add_to_outbox
from shared.runtime import Janitor, Runtime

SOURCE = "posts"
# How often a replica looks for campaigns past their date; readers close a due campaign at once anyway.
CLOSER_INTERVAL_SECONDS = 5.0
CLOSER_BATCH = 50

_AUDIENCE: TypeAdapter[Audience] = TypeAdapter(Audience)


def campaign_not_found(campaign_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not Found", f"campaign {campaign_id} does not exist")


def require_leader(user: Claims, *, leader_group: str, what: str) -> None:
    if leader_group not in user.groups:
        raise ProblemError(403, "Forbidden", f"only leaders (group {leader_group!r}) can {what}")


def check_may_address(user: Claims, audience: Audience) -> None:
    # The token's groups are the identity provider's word on membership at this moment.
    if isinstance(audience, TeamAudience) and audience.team not in user.groups:
        raise ProblemError(
            422,
            "Unprocessable Content",
            "invalid input in body.audience.team: you can only address a team you belong to",
            errors=[{"field": "body.audience.team", "message": "you are not a member of this team", "type": "team"}],
        )


def check_in_future(moment: datetime, *, field: str) -> None:
    if moment <= datetime.now(UTC):
        raise ProblemError(
            422,
            "Unprocessable Content",
            f"invalid input in {field}",
            errors=[{"field": field, "message": "must be in the future", "type": "future"}],
        )


def _campaign(row: asyncpg.Record) -> Campaign:
    return Campaign(
        id=row["id"],
        title=row["title"],
        question=row["question"],
        owner=Person(id=row["owner_id"], name=row["owner_name"]),
        audience=row["audience"],
        created_at=row["created_at"],
        closes_at=row["closes_at"],
        closed_at=row["closed_at"],
        idea_count=row["idea_count"],
    )


def _idea_item(row: asyncpg.Record) -> IdeaItem:
    post = Idea(
        id=row["id"],
        author=Person(id=row["author_id"], name=row["author_name"]),
        kind=row["kind"],
        body=row["body"],
        audience=row["audience"],
        created_at=row["created_at"],
        like_count=row["like_count"],
        favourite_count=row["favourite_count"],
        campaign_id=row["campaign_id"],
    )
    return IdeaItem(
        post=post,
        backers=row["like_count"],
        status=row["status"],
        status_reason=row["status_reason"],
        status_changed_at=row["status_changed_at"],
    )


# Campaigns -----------------------------------------------------------------------------------------------


async def open_campaign(pool: asyncpg.Pool, *, owner: Claims, request: CreateCampaign, leader_group: str) -> Campaign:
    """A leader asks for ideas. The campaign is a post of kind `campaign` whose body is the question."""
    require_leader(owner, leader_group=leader_group, what="open an idea campaign")
    check_may_address(owner, request.audience)
    check_in_future(request.closes_at, field="body.closes_at")
    post_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await remember_person(conn, person_id=owner.sub, name=owner.name)
        row = await insert_post(
            conn,
            post_id=post_id,
            author_id=owner.sub,
            kind="campaign",
            body=request.question,
            audience=request.audience.model_dump(),
        )
        await repository.insert_campaign(conn, post_id=post_id, title=request.title, closes_at=request.closes_at)
        event = PostCreatedV1(
            post_id=post_id,
            author=PersonRef(id=owner.sub, name=owner.name),
            kind="campaign",
            body=request.question,
            audience=request.audience,
            created_at=row["created_at"],
            version=row["version"],
            campaign=CampaignInfo(title=request.title, closes_at=request.closes_at),
        )
        await add_to_outbox(conn, new_envelope(EventType.POST_CREATED, source=SOURCE, subject=str(post_id), data=event))
        stored = await repository.fetch_campaign(conn, post_id, viewer_id=owner.sub)
    assert stored is not None
    return _campaign(stored)


async def get_campaign(pool: asyncpg.Pool, campaign_id: uuid.UUID, *, viewer: Claims) -> Campaign:
    async with pool.acquire() as conn:
        await close_if_due(conn, campaign_id)
        row = await repository.fetch_campaign(conn, campaign_id, viewer_id=viewer.sub)
    if row is None:
        raise campaign_not_found(campaign_id)
    return _campaign(row)


async def list_campaigns(pool: asyncpg.Pool, *, viewer: Claims, cursor: str | None, limit: int) -> CampaignPage:
    """Open campaigns first, closing soonest first; then the closed, the latest closed first."""
    after = decode_cursor(cursor, arity=3)
    async with pool.acquire() as conn:
        await close_due_campaigns(conn)
        rows = await repository.list_campaigns(
            conn,
            viewer_id=viewer.sub,
            after=(int(after[0]), str(Decimal(after[1])), uuid.UUID(after[2])) if after else None,
            limit=limit + 1,
        )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["sort_state"], last["sort_key"], str(last["id"]))
    return CampaignPage(items=[_campaign(row) for row in rows[:limit]], next_cursor=next_cursor)


async def close_campaign(pool: asyncpg.Pool, campaign_id: uuid.UUID, *, user: Claims) -> Campaign:
    """The owner closes early; the result is announced as on the closing date."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await repository.lock_campaign(conn, campaign_id, viewer_id=user.sub, mode="update")
            if row is None:
                raise campaign_not_found(campaign_id)
            if row["owner_id"] != user.sub:
                raise ProblemError(403, "Forbidden", "only the campaign's owner can close it")
            if row["closed_at"] is not None:
                raise ProblemError(409, "Conflict", f"campaign {campaign_id} closed at {row['closed_at'].isoformat()}")
            await _close(conn, row)
        stored = await repository.fetch_campaign(conn, campaign_id, viewer_id=user.sub)
    assert stored is not None
    return _campaign(stored)


async def _close(conn: Connection, campaign: asyncpg.Record) -> None:
    """Close a locked campaign and announce every idea ranked, in one transaction: exactly once."""
    closed = await repository.mark_closed(conn, campaign["post_id"])
    if closed is None:
        return
    closed_at, version = closed
    ideas = [
        RankedIdea(post_id=i["post_id"], author_id=i["author_id"], backers=i["backers"], status=i["status"])
        for i in await repository.ranked_ideas(conn, campaign["post_id"])
    ]
    event = CampaignClosedV1(
        campaign_id=campaign["post_id"],
        owner_id=campaign["owner_id"],
        title=campaign["title"],
        closed_at=closed_at,
        ideas=ideas,
        version=version,
    )
    envelope = new_envelope(EventType.CAMPAIGN_CLOSED, source=SOURCE, subject=str(campaign["post_id"]), data=event)
    await add_to_outbox(conn, envelope)


async def close_if_due(conn: Connection, campaign_id: uuid.UUID) -> None:
    """A reader who finds a campaign past its date closes it, so nobody sees it open after its date."""
    if not await repository.is_due(conn, campaign_id):
        return
    async with conn.transaction():
        row = await repository.lock_campaign(conn, campaign_id, viewer_id=None, mode="update")
        if row is not None and row["closed_at"] is None and row["due"]:
            await _close(conn, row)


async def close_due_campaigns(conn: Connection) -> int:
    """Close campaigns past their date; replicas (and readers) share the work by skipping locked rows."""
    async with conn.transaction():
        due = await repository.claim_due_campaigns(conn, limit=CLOSER_BATCH)
        for campaign_id in due:
            row = await repository.lock_campaign(conn, campaign_id, viewer_id=None, mode="update")
            if row is not None:
                await _close(conn, row)
    return len(due)


async def start_closer(runtime: Runtime) -> None:
    """The posts service's on_started hook: close campaigns on their date, every few seconds."""
    assert runtime.pool is not None
    runtime.background.append(
        Janitor(
            runtime.pool, name="campaign-closer", prune=close_due_campaigns, interval_seconds=CLOSER_INTERVAL_SECONDS
        )
    )


# Ideas ---------------------------------------------------------------------------------------------------


async def add_idea(pool: asyncpg.Pool, campaign_id: uuid.UUID, *, author: Claims, body: str) -> Idea:
    """An idea in an open campaign, with the campaign's audience."""
    async with pool.acquire() as conn:
        await close_if_due(conn, campaign_id)
        async with conn.transaction():
            campaign = await repository.lock_campaign(conn, campaign_id, viewer_id=author.sub, mode="share")
            if campaign is None:
                raise campaign_not_found(campaign_id)
            if campaign["closed_at"] is not None or campaign["due"]:
                raise ProblemError(409, "Conflict", f"campaign {campaign_id} is closed and takes no more ideas")
            post_id = uuid.uuid4()
            await remember_person(conn, person_id=author.sub, name=author.name)
            row = await insert_post(
                conn, post_id=post_id, author_id=author.sub, kind="idea", body=body, audience=campaign["audience"]
            )
            await repository.insert_idea(conn, post_id=post_id, campaign_id=campaign_id)
            event = PostCreatedV1(
                post_id=post_id,
                author=PersonRef(id=author.sub, name=author.name),
                kind="idea",
                body=body,
                audience=_AUDIENCE.validate_python(campaign["audience"]),
                created_at=row["created_at"],
                version=row["version"],
                campaign_id=campaign_id,
            )
            envelope = new_envelope(EventType.POST_CREATED, source=SOURCE, subject=str(post_id), data=event)
            await add_to_outbox(conn, envelope)
            stored = await repository.fetch_idea(conn, post_id, viewer_id=author.sub)
    assert stored is not None
    return _idea_item(stored).post


async def list_ideas(
    pool: asyncpg.Pool, campaign_id: uuid.UUID, *, viewer: Claims, cursor: str | None, limit: int
) -> IdeaPage:
    after = decode_cursor(cursor, arity=3)
    async with pool.acquire() as conn:
        if await repository.fetch_campaign(conn, campaign_id, viewer_id=viewer.sub) is None:
            raise campaign_not_found(campaign_id)
        rows = await repository.list_ideas(
            conn,
            campaign_id,
            viewer_id=viewer.sub,
            after=(int(after[0]), datetime.fromisoformat(after[1]), uuid.UUID(after[2])) if after else None,
            limit=limit + 1,
        )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["like_count"], last["created_at"].isoformat(), str(last["id"]))
    return IdeaPage(items=[_idea_item(row) for row in rows[:limit]], next_cursor=next_cursor)


async def change_status(pool: asyncpg.Pool, idea_id: uuid.UUID, *, user: Claims, request: ChangeIdeaStatus) -> IdeaItem:
    """The campaign's owner closes the loop on one idea. Setting the same status and reason again changes
    nothing and tells nobody again."""
    async with pool.acquire() as conn, conn.transaction():
        idea = await repository.lock_idea(conn, idea_id, viewer_id=user.sub)
        if idea is None:
            raise ProblemError(404, "Not Found", f"idea {idea_id} does not exist")
        if idea["owner_id"] != user.sub:
            raise ProblemError(403, "Forbidden", "only the campaign's owner can set an idea's status")
        if (idea["status"], idea["status_reason"]) != (request.status, request.reason):
            changed_at, version = await repository.set_idea_status(
                conn, idea_id, status=request.status, reason=request.reason
            )
            event = IdeaStatusChangedV1(
                post_id=idea_id,
                campaign_id=idea["campaign_id"],
                idea_author_id=idea["author_id"],
                status=request.status,
                reason=request.reason or "",
                changed_by=PersonRef(id=user.sub, name=user.name),
                changed_at=changed_at,
                version=version,
            )
            envelope = new_envelope(EventType.IDEA_STATUS_CHANGED, source=SOURCE, subject=str(idea_id), data=event)
            await add_to_outbox(conn, envelope)
        stored = await repository.fetch_idea(conn, idea_id, viewer_id=user.sub)
    assert stored is not None
    return _idea_item(stored)
