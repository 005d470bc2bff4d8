"""The public HTTP contract: shapes the gateway promises and the services answer with."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import Audience, EveryoneAudience
from shared.events import PostKind as EventPostKind
from shared.http import ProblemError

MAX_BODY_CHARS = 10_000
PostKind = EventPostKind
AudienceIn = Audience


def trimmed_text(value: str, *, most: int) -> str:
    """A text field as stored: trimmed, not empty, at most `most` characters (validators share it)."""
    trimmed = value.strip()
    if not trimmed:
        raise ValueError("must not be empty")
    if len(trimmed) > most:
        raise ValueError(f"must be at most {most} characters, got {len(trimmed)}")
    return trimmed


class Person(BaseModel):
    id: str
    name: str


class NextStep(BaseModel):
    field: str = Field(description="the profile field to fill in next, as PATCH /api/me names it")
    hint: str = Field(description="e.g. 'Add your expertise', in the reader's language")


class ProfileCompleteness(BaseModel):
    percent: int = Field(ge=0, le=100, description="how complete the profile is, by the weights in docs")
    next_step: NextStep | None = Field(description="the step worth most; null when the profile is complete")
    missing: list[str] = Field(description="every field still empty, the most valuable first")


class Me(Person):
    email: str | None = None
    locale: str | None = None
    completeness: ProfileCompleteness | None = Field(None, description="the profile-completeness bar")


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
    recipients: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, max_length=20, description="praise only: 1-20 person ids, each of whom must be in the audience"
    )

    @field_validator("body")
    @classmethod
    def body_length_after_trimming(cls, value: str) -> str:
        return trimmed_text(value, most=MAX_BODY_CHARS)


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
    comment_count: int = Field(0, description="comments and replies that everyone in the audience may see")
    recipients: list[Person] = Field(default_factory=list, description="praise: whom it praises")
    mentions: list[Person] = Field(
        default_factory=list, description="people @mentioned in the body who may see the post (others stay text)"
    )
    accepted_comment_id: uuid.UUID | None = Field(None, description="question: the accepted answer, if any")
    hidden_reason: str | None = Field(
        None, description="set when a moderator hid the post; only its author and moderators see it then"
    )


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


NotificationKind = Literal[
    "post.liked",
    "post.favourited",
    "person.followed",
    "post.commented",
    "thread.commented",
    "person.mentioned",
    "praise.received",
    "answer.accepted",
    "idea.status_changed",
    "campaign.closed",
    "qna.answered",
]


class Notification(BaseModel):
    id: uuid.UUID
    kind: NotificationKind
    post_id: uuid.UUID | None = Field(description="the post it is about; null for a follow")
    actors: list[Person] = Field(description="everyone in the group, newest first")
    actor_count: int
    read: bool
    title: str = Field(description="e.g. 'Kari and 3 others liked your post', in the reader's language")
    url: str = Field(description="where the notification leads on the intranet (absolute)")
    created_at: datetime
    updated_at: datetime = Field(description="the group's latest activity; the inbox is ordered by it")


class NotificationPage(BaseModel):
    items: list[Notification]
    next_cursor: str | None
    unread: int
    seq: int = Field(0, description="the newest change included; give it to GET /api/stream as Last-Event-ID")


class NotificationChanges(BaseModel):
    """What changed in the reader's notifications after a change number (the SSE resume)."""

    seq: int = Field(description="the newest change included (0: none yet)")
    items: list[Notification] = Field(description="notifications new or changed since, in change order")
    removed: list[uuid.UUID] = Field(description="notifications gone since")
    unread: int
    reset: bool = Field(
        False, description="true when the changes asked for are too old to replay: reload the inbox instead"
    )


# The kinds a person chooses a channel for (SETTINGS_KIND_OF says which notifications each governs).
SettingsKind = Literal["like", "favourite", "comment", "mention", "follow", "praise", "campaign_update"]
Channel = Literal["in_app", "email_now", "email_digest", "off"]
CHANNEL_DESCRIPTION = (
    "in_app: only in the inbox; email_now: also an email (a favourite at once, others after a short wait and only "
    "if still unread and you were not active); email_digest: also in the daily or weekly summary; off: nothing"
)
DEFAULT_CHANNELS: dict[str, str] = {
    "like": "in_app",
    "favourite": "email_now",
    "comment": "email_now",
    "mention": "email_now",
    "follow": "in_app",
    "praise": "email_now",
    "campaign_update": "email_digest",
}
# Which choice governs each kind of notification.
SETTINGS_KIND_OF: dict[str, str] = {
    "post.liked": "like",
    "post.favourited": "favourite",
    "person.followed": "follow",
    "post.commented": "comment",
    "thread.commented": "comment",
    "answer.accepted": "comment",
    "qna.answered": "comment",
    "person.mentioned": "mention",
    "praise.received": "praise",
    "idea.status_changed": "campaign_update",
    "campaign.closed": "campaign_update",
}
ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, 24-hour clock")]


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: ClockTime = Field(description="no email from this time (in your time zone)")
    end: ClockTime = Field(description="until this time; may be past midnight, e.g. 22:00 to 07:00")


class NotificationSettings(BaseModel):
    channels: dict[SettingsKind, Channel] = Field(description=CHANNEL_DESCRIPTION)
    digest: Literal["daily", "weekly"] = Field(description="how often the summary email comes, when it has content")
    digest_hour: int = Field(ge=0, le=23, description="the hour of the day it comes, in your time zone")
    digest_weekday: int = Field(ge=1, le=7, description="for a weekly summary: 1 = Monday ... 7 = Sunday")
    time_zone: str = Field(description="IANA time zone, e.g. Europe/Oslo")
    quiet_hours: QuietHours | None = Field(description="no email in this span; what falls in it waits")
    locale: Literal["nb", "en"] | None = Field(
        description="language of notifications and email; null: from your token or profile, else the default"
    )


class NotificationSettingsUpdate(BaseModel):
    """A PUT replaces the fields given; fields left out keep their value. `channels` may name some kinds."""

    model_config = ConfigDict(extra="forbid")

    channels: dict[SettingsKind, Channel] | None = Field(None, description=CHANNEL_DESCRIPTION)
    digest: Literal["daily", "weekly"] | None = None
    digest_hour: int | None = Field(None, ge=0, le=23)
    digest_weekday: int | None = Field(None, ge=1, le=7)
    time_zone: str | None = Field(None, max_length=64, description="IANA time zone, e.g. Europe/Oslo")
    quiet_hours: QuietHours | None = Field(None, description="null turns quiet hours off")
    locale: Literal["nb", "en"] | None = None

    @field_validator("time_zone")
    @classmethod
    def known_time_zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone") from exc
        return value


class Unsubscribe(BaseModel):
    """RFC 8058 one-click: the token from an email's List-Unsubscribe link, in the body or in the URL."""

    model_config = ConfigDict(extra="ignore")

    token: str = Field(min_length=1, max_length=2000)


class Unsubscribed(BaseModel):
    kind: SettingsKind | Literal["digest"] = Field(
        description="the kind of email turned off; digest: the summary email (every kind that went to it)"
    )
    channel: Channel = Field(description="what that kind is now: in_app")


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
