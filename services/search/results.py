"""The HTTP shapes of search results.

They live with the service until the gateway exposes search; then they belong in shared/api.py beside the
other shapes the gateway promises.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from shared.api import Person

HEADLINE_DESCRIPTION = "HTML: the matching words inside <mark>…</mark>, everything else escaped"


class PostHit(BaseModel):
    post_id: uuid.UUID
    headline: str = Field(description=HEADLINE_DESCRIPTION)
    rank: float = Field(description="how well the post matches; results are ordered by it, then by recency")
    created_at: datetime


class PersonHit(BaseModel):
    person: Person
    title: str | None
    expertise: list[str]
    headline: str = Field(description=HEADLINE_DESCRIPTION + "; name, title and expertise")
    rank: float = Field(description="how well the person matches: name above expertise above title")


class PostHitPage(BaseModel):
    items: list[PostHit]
    next_cursor: str | None


class PersonHitPage(BaseModel):
    items: list[PersonHit]
    next_cursor: str | None
