"""The HTTP shapes of the feeds service. Entries carry the post id only: the gateway composes the posts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.api import Person

EntryReason = Literal["own", "followed", "team", "liked_by_followed", "trending"]


class Entry(BaseModel):
    id: str = Field(description="stable within its feed")
    post_id: uuid.UUID
    reason: EntryReason = Field(description="why the post is in this feed")
    actors: list[Person] = Field(
        description="the author (own, followed, team), the followed people who liked it (liked_by_followed) "
        "or the people backing it (trending); newest first"
    )
    actor_count: int
    at: datetime = Field(
        description="home: when the entry was first made, which orders the feed and never moves; "
        "team: when the post was written; trending: its latest backing"
    )


class FeedPage(BaseModel):
    items: list[Entry]
    next_cursor: str | None
