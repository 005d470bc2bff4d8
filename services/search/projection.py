"""What the search projection knows of a post, and how two partial views of one post combine.

Post events arrive in any order and more than once. Each event is turned into a partial `PostState`, and
`merge` combines states so that the result is the same whatever the order and however often an event is
applied (it is commutative, associative and idempotent). repository.upsert_posts applies the same rules in
SQL against what is already stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.events import ContentModeratedV1, Contract, PostAudienceChangedV1, PostCreatedV1, PostDeletedV1


@dataclass(frozen=True)
class PostState:
    post_id: uuid.UUID
    author_id: str
    # Known once post.created has been seen; posts are never edited, so the first one seen is the one.
    body: str | None
    created_at: datetime | None
    # The audience of the highest-versioned event that carried one (0: none seen yet).
    audience: dict[str, Any] | None
    audience_version: int
    # Deletion is final: no event brings a post back.
    deleted: bool
    version: int
    # A moderator's decision, from the highest-versioned content.moderated (0: none seen). Hidden text
    # stays stored, since a moderator may restore it, but no search finds it meanwhile.
    hidden: bool = False
    moderation_version: int = 0


def state_of(data: Contract) -> PostState | None:
    """The partial state one post event tells; None for an event that is not about a post's search state."""
    if isinstance(data, PostCreatedV1):
        return PostState(
            post_id=data.post_id,
            author_id=data.author.id,
            body=data.body,
            created_at=data.created_at,
            audience=data.audience.model_dump(),
            audience_version=data.version,
            deleted=False,
            version=data.version,
        )
    if isinstance(data, PostAudienceChangedV1):
        return PostState(
            post_id=data.post_id,
            author_id=data.author_id,
            body=None,
            created_at=None,
            audience=data.audience.model_dump(),
            audience_version=data.version,
            deleted=False,
            version=data.version,
        )
    if isinstance(data, PostDeletedV1):
        return PostState(
            post_id=data.post_id,
            author_id=data.author_id,
            body=None,
            created_at=None,
            audience=None,
            audience_version=0,
            deleted=True,
            version=data.version,
        )
    if isinstance(data, ContentModeratedV1) and data.comment_id is None:
        return PostState(
            post_id=data.post_id,
            author_id=data.author_id,
            body=None,
            created_at=None,
            audience=None,
            audience_version=0,
            deleted=False,
            version=data.version,
            hidden=data.hidden,
            moderation_version=data.version,
        )
    return None


def merge(a: PostState, b: PostState) -> PostState:
    assert a.post_id == b.post_id
    deleted = a.deleted or b.deleted
    newer_audience = a if a.audience_version >= b.audience_version else b
    newer_moderation = a if a.moderation_version >= b.moderation_version else b
    return PostState(
        post_id=a.post_id,
        author_id=a.author_id,
        # A deleted post's text leaves the index: nobody may find it again, and we should not keep it.
        body=None if deleted else (a.body if a.body is not None else b.body),
        created_at=a.created_at if a.created_at is not None else b.created_at,
        audience=newer_audience.audience,
        audience_version=newer_audience.audience_version,
        deleted=deleted,
        version=max(a.version, b.version),
        hidden=newer_moderation.hidden,
        moderation_version=newer_moderation.moderation_version,
    )
