"""The public HTTP contract: shapes the gateway promises and the services answer with."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import Audience, EveryoneAudience
from shared.http import ProblemError

MAX_BODY_CHARS = 10_000
PostKind = Literal["post", "question", "idea", "praise"]
AudienceIn = Audience


class Person(BaseModel):
    id: str
    name: str


class Me(Person):
    email: str | None = None
    locale: str | None = None


Tag = Annotated[str, Field(min_length=1, max_length=50)]


class Profile(Person):
    title: str | None = None
    department: str | None = None
    location: str | None = None
    bio: str | None = None
    expertise: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    photo_url: str | None = None
    teams: list[str] = Field(default_factory=list)
    followers_count: int = 0
    following_count: int = 0
    following: bool = Field(False, description="whether you follow them")
    muted: bool = Field(False, description="whether you muted them (they are not told)")
    blocked: bool = Field(False, description="whether you blocked them")


class ProfileUpdate(BaseModel):
    """The fields a person edits on their own profile; name, email and teams come from the identity provider."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=200)
    department: str | None = Field(None, max_length=200)
    location: str | None = Field(None, max_length=200)
    bio: str | None = Field(None, max_length=2000)
    expertise: list[Tag] | None = Field(None, max_length=30)
    languages: list[Tag] | None = Field(None, max_length=20)
    photo_url: str | None = Field(None, max_length=2000, pattern=r"^https?://\S+$")


class CreatePost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(description="1-10,000 characters after trimming")
    kind: PostKind = "post"
    audience: AudienceIn = Field(default_factory=lambda: EveryoneAudience(type="everyone"))

    @field_validator("body")
    @classmethod
    def body_length_after_trimming(cls, value: str) -> str:
        trimmed = value.strip()
        if not trimmed:
            raise ValueError("must not be empty")
        if len(trimmed) > MAX_BODY_CHARS:
            raise ValueError(f"must be at most {MAX_BODY_CHARS} characters, got {len(trimmed)}")
        return trimmed


class ChangeAudience(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audience: AudienceIn


class Post(BaseModel):
    id: uuid.UUID
    author: Person
    kind: PostKind
    body: str
    audience: dict[str, Any]
    created_at: datetime
    like_count: int = 0
    favourite_count: int = 0
    liked_by_me: bool = False
    favourited_by_me: bool = False


class FeedEntry(BaseModel):
    id: str
    post: Post
    reason: Literal["own", "followed", "team", "liked_by_followed", "trending"] = Field(
        description="why the post is in this feed"
    )
    actors: list[Person] = Field(
        description="liked_by_followed: the people you follow who liked it, newest first; trending: its backers; "
        "own, followed and team: the author"
    )
    actor_count: int
    at: datetime = Field(
        description="home feed: when the entry came into it (pages are ordered by it and it never moves); "
        "team feed: when the post was written; trending: the latest backing"
    )


class FeedPage(BaseModel):
    items: list[FeedEntry]
    next_cursor: str | None


SEARCH_HEADLINE = "HTML: the matching words inside <mark>…</mark>, everything else escaped"


class PostSearchHit(BaseModel):
    post: Post
    headline: str = Field(description=SEARCH_HEADLINE)
    rank: float = Field(description="how well the post matches; results are ordered by it, then by recency")


class PersonSearchHit(BaseModel):
    person: Person
    title: str | None
    expertise: list[str]
    headline: str = Field(description=SEARCH_HEADLINE + "; name, title and expertise")
    rank: float


class SearchPage(BaseModel):
    items: list[PostSearchHit] | list[PersonSearchHit]
    next_cursor: str | None


class LikeState(BaseModel):
    liked: bool
    like_count: int


class FavouriteState(BaseModel):
    favourited: bool
    favourite_count: int


class MyReaction(BaseModel):
    liked: bool = False
    favourited: bool = False


class PersonPage(BaseModel):
    items: list[Person]
    next_cursor: str | None


class PostPage(BaseModel):
    items: list[Post]
    next_cursor: str | None


class FavouriteRef(BaseModel):
    post_id: uuid.UUID
    favourited_at: datetime


class FavouriteRefPage(BaseModel):
    items: list[FavouriteRef]
    next_cursor: str | None


class Notification(BaseModel):
    id: uuid.UUID
    kind: Literal["post.liked", "post.favourited"]
    post_id: uuid.UUID
    actors: list[Person] = Field(description="everyone in the group, newest first")
    actor_count: int
    read: bool
    created_at: datetime
    updated_at: datetime = Field(description="the group's latest activity; the inbox is ordered by it")


class NotificationPage(BaseModel):
    items: list[Notification]
    next_cursor: str | None
    unread: int


class MarkRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] | None = Field(None, max_length=500)
    all: bool | None = None

    @model_validator(mode="after")
    def exactly_one(self) -> MarkRead:
        if (self.ids is None) == (self.all is None) or self.all is False:
            raise ValueError('give either "ids": [...] or "all": true')
        return self


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts), default=str)).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, arity: int) -> list[Any] | None:
    """The parts of an opaque cursor; a cursor that was not ours is a 422 naming the field."""
    if cursor is None:
        return None
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) != arity:
            raise ValueError
        return parts
    except ValueError as exc:
        raise ProblemError(
            422,
            "Unprocessable Content",
            "invalid input in query.cursor",
            errors=[{"field": "query.cursor", "message": "not a cursor returned by this API", "type": "cursor"}],
        ) from exc
