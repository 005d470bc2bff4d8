"""Event contracts: the envelope (after CloudEvents 1.0) and one pydantic model per event type.

Routing keys are the `EventType` strings. A breaking change is a new version (`.v2`), published beside
the old one until every consumer has moved.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class EventType(StrEnum):
    POST_CREATED = "post.created.v1"
    POST_DELETED = "post.deleted.v1"
    POST_LIKED = "post.liked.v1"
    POST_UNLIKED = "post.unliked.v1"
    POST_FAVOURITED = "post.favourited.v1"
    POST_UNFAVOURITED = "post.unfavourited.v1"
    PERSON_UPDATED = "person.updated.v1"
    PERSON_FOLLOWED = "person.followed.v1"
    PERSON_UNFOLLOWED = "person.unfollowed.v1"
    PERSON_MUTED = "person.muted.v1"
    PERSON_UNMUTED = "person.unmuted.v1"
    PERSON_BLOCKED = "person.blocked.v1"
    PERSON_UNBLOCKED = "person.unblocked.v1"
    TEAM_MEMBERSHIP_CHANGED = "team.membership_changed.v1"
    POST_AUDIENCE_CHANGED = "post.audience_changed.v1"
    NOTIFICATION_CHANGED = "notification.changed.v1"


class Contract(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PersonRef(Contract):
    id: str = Field(description="stable user id (the token's `sub`)", min_length=1, max_length=200)
    name: str = Field(description="display name at the time of the event", max_length=200)


class EveryoneAudience(Contract):
    type: Literal["everyone"] = Field(description="everyone in the organisation may see the post")


class TeamAudience(Contract):
    type: Literal["team"] = Field(description="the members of one team may see the post")
    team: str = Field(description="the team (a group from the identity provider)", min_length=1, max_length=200)


class FollowersAudience(Contract):
    type: Literal["followers"] = Field(description="the author's followers at the time of reading may see the post")


class PrivateAudience(Contract):
    type: Literal["private"] = Field(description="only the author may see the post (a draft)")


Audience = Annotated[EveryoneAudience | TeamAudience | FollowersAudience | PrivateAudience, Field(discriminator="type")]


class PostCreatedV1(Contract):
    post_id: uuid.UUID = Field(description="the new post")
    author: PersonRef = Field(description="who wrote it")
    kind: Literal["post", "question", "idea", "praise"] = Field(description="what sort of post")
    body: str = Field(description="the text, 1-10,000 characters", max_length=10_000)
    audience: Audience = Field(description="who may see the post")
    created_at: datetime = Field(description="when the post was written")
    version: int = Field(description="per-post version stamped by the posts service; higher wins", ge=1)


class PostDeletedV1(Contract):
    post_id: uuid.UUID = Field(description="the deleted post")
    author_id: str = Field(description="who wrote it")
    version: int = Field(description="per-post version stamped by the posts service; higher wins", ge=1)


class PostAudienceChangedV1(Contract):
    post_id: uuid.UUID = Field(description="the post whose audience the author widened or narrowed")
    author_id: str = Field(description="who wrote it")
    audience: Audience = Field(description="who may see the post from now on")
    version: int = Field(description="per-post version stamped by the posts service; higher wins", ge=1)


class ReactionChangedV1(Contract):
    """Common shape of like, unlike, favourite and unfavourite: the actor and the post's resulting counts."""

    post_id: uuid.UUID = Field(description="the post reacted to")
    post_author_id: str = Field(description="who wrote the post: the one to notify")
    actor: PersonRef = Field(description="who liked, unliked, favourited or unfavourited")
    like_count: int = Field(description="the post's likes after this change", ge=0)
    favourite_count: int = Field(description="the post's favourites after this change", ge=0)
    version: int = Field(description="per-post reaction version stamped by the reactions service; higher wins", ge=1)
    occurred_at: datetime = Field(description="when the reaction changed")


class PostLikedV1(ReactionChangedV1):
    pass


class PostUnlikedV1(ReactionChangedV1):
    pass


class PostFavouritedV1(ReactionChangedV1):
    pass


class PostUnfavouritedV1(ReactionChangedV1):
    pass


class PersonUpdatedV1(Contract):
    person_id: str = Field(description="stable user id (the token's `sub`)", min_length=1, max_length=200)
    name: str = Field(description="display name", max_length=200)
    email: str | None = Field(None, description="where email notifications go", max_length=320)
    locale: str | None = Field(None, description="preferred language, e.g. nb or en", max_length=35)
    title: str | None = Field(None, description="job title", max_length=200)
    department: str | None = Field(None, description="department", max_length=200)
    location: str | None = Field(None, description="where they work", max_length=200)
    bio: str | None = Field(None, description="a few words about themselves", max_length=2000)
    expertise: list[str] = Field(default_factory=list, description="expertise tags")
    languages: list[str] = Field(default_factory=list, description="languages they speak")
    photo_url: str | None = Field(None, description="URL of their photo", max_length=2000)
    version: int = Field(description="per-person version stamped by the people service; higher wins", ge=1)


class RelationChangedV1(Contract):
    """Common shape of follow, mute and block and their undoing: who did it to whom, and the pair's version."""

    actor_id: str = Field(description="who follows, mutes or blocks (or stops)", min_length=1, max_length=200)
    target_id: str = Field(description="whom", min_length=1, max_length=200)
    version: int = Field(description="per-pair version stamped by the people service; higher wins", ge=1)


class PersonFollowedV1(RelationChangedV1):
    pass


class PersonUnfollowedV1(RelationChangedV1):
    pass


class PersonMutedV1(RelationChangedV1):
    pass


class PersonUnmutedV1(RelationChangedV1):
    pass


class PersonBlockedV1(RelationChangedV1):
    pass


class PersonUnblockedV1(RelationChangedV1):
    pass


class TeamMembershipChangedV1(Contract):
    person_id: str = Field(description="whose teams changed", min_length=1, max_length=200)
    teams: list[str] = Field(description="every team the person belongs to now (from the token's groups)")
    version: int = Field(description="per-person team version stamped by the people service; higher wins", ge=1)


class NotificationView(Contract):
    """A notification as its recipient sees it, rendered in the recipient's language."""

    id: uuid.UUID = Field(description="the notification (one group of actors)")
    kind: str = Field(description="post.liked, post.favourited, person.followed, ...")
    post_id: uuid.UUID | None = Field(None, description="the post it is about, if any")
    actors: list[PersonRef] = Field(description="who acted, newest first (at most 20 here; the inbox lists all)")
    actor_count: int = Field(description="how many acted in all", ge=0)
    read: bool = Field(description="whether the recipient has read it")
    title: str = Field(description="e.g. 'Kari and 3 others liked your post', in the recipient's language")
    url: str = Field(description="where the notification leads, on the intranet")
    created_at: datetime = Field(description="when the group started")
    updated_at: datetime = Field(description="the group's latest activity")


class NotificationChangedV1(Contract):
    """One change to one person's notifications: what was added or updated, what was removed, and the unread
    count after it. What the gateway streams to the recipient's browsers (GET /api/stream)."""

    recipient_id: str = Field(description="whose notifications changed", min_length=1, max_length=200)
    seq: int = Field(description="per-recipient change number, rising by one per change; the SSE event id", ge=1)
    items: list[NotificationView] = Field(description="notifications new or changed by this change")
    removed: list[uuid.UUID] = Field(description="notifications that are gone (every actor took it back)")
    unread: int = Field(description="the recipient's unread notifications after this change", ge=0)


DATA_MODELS: dict[EventType, type[Contract]] = {
    EventType.POST_CREATED: PostCreatedV1,
    EventType.POST_DELETED: PostDeletedV1,
    EventType.POST_LIKED: PostLikedV1,
    EventType.POST_UNLIKED: PostUnlikedV1,
    EventType.POST_FAVOURITED: PostFavouritedV1,
    EventType.POST_UNFAVOURITED: PostUnfavouritedV1,
    EventType.PERSON_UPDATED: PersonUpdatedV1,
    EventType.PERSON_FOLLOWED: PersonFollowedV1,
    EventType.PERSON_UNFOLLOWED: PersonUnfollowedV1,
    EventType.PERSON_MUTED: PersonMutedV1,
    EventType.PERSON_UNMUTED: PersonUnmutedV1,
    EventType.PERSON_BLOCKED: PersonBlockedV1,
    EventType.PERSON_UNBLOCKED: PersonUnblockedV1,
    EventType.TEAM_MEMBERSHIP_CHANGED: TeamMembershipChangedV1,
    EventType.POST_AUDIENCE_CHANGED: PostAudienceChangedV1,
    EventType.NOTIFICATION_CHANGED: NotificationChangedV1,
}

# Who owns (and alone publishes) each event type.
PUBLISHERS: dict[EventType, str] = {
    EventType.POST_CREATED: "posts",
    EventType.POST_DELETED: "posts",
    EventType.POST_LIKED: "reactions",
    EventType.POST_UNLIKED: "reactions",
    EventType.POST_FAVOURITED: "reactions",
    EventType.POST_UNFAVOURITED: "reactions",
    EventType.PERSON_UPDATED: "people",
    EventType.PERSON_FOLLOWED: "people",
    EventType.PERSON_UNFOLLOWED: "people",
    EventType.PERSON_MUTED: "people",
    EventType.PERSON_UNMUTED: "people",
    EventType.PERSON_BLOCKED: "people",
    EventType.PERSON_UNBLOCKED: "people",
    EventType.TEAM_MEMBERSHIP_CHANGED: "people",
    EventType.POST_AUDIENCE_CHANGED: "posts",
    EventType.NOTIFICATION_CHANGED: "notifications",
}


class Envelope(BaseModel):
    """CloudEvents 1.0 attributes around the typed payload. `id` is also the AMQP message_id."""

    model_config = ConfigDict(extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, description="unique per event; consumers dedupe on it")
    type: EventType = Field(description="event type with its version; also the routing key")
    source: str = Field(description="the service that published the event", min_length=1)
    subject: str = Field(description="what the event is about, e.g. the post id", min_length=1)
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    def payload(self) -> Contract:
        """The data validated against the contract of this event type."""
        return DATA_MODELS[self.type].model_validate(self.data)


class Event(BaseModel):
    """An envelope whose data has been validated: what consumers receive."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    envelope: Envelope
    data: Contract

    @property
    def id(self) -> uuid.UUID:
        return self.envelope.id

    @property
    def type(self) -> EventType:
        return self.envelope.type


def new_envelope(event_type: EventType, *, source: str, subject: str, data: Contract) -> Envelope:
    if not isinstance(data, DATA_MODELS[event_type]):
        raise TypeError(f"{event_type} carries {DATA_MODELS[event_type].__name__}, not {type(data).__name__}")
    return Envelope(type=event_type, source=source, subject=subject, data=data.model_dump(mode="json"))


def parse_event(body: bytes) -> Event:
    """Validate a message body; raises pydantic.ValidationError or ValueError on a malformed event."""
    envelope = Envelope.model_validate_json(body)
    return Event(envelope=envelope, data=envelope.payload())


def newest_by_version(items: Iterable[T], *, key: Callable[[T], K], version: Callable[[T], int]) -> dict[K, T]:
    """Of several states of one subject (a batch may hold many), keep the one with the highest version:
    how every projection applies events that arrive in any order and more than once."""
    newest: dict[K, T] = {}
    for item in items:
        subject = key(item)
        seen = newest.get(subject)
        if seen is None or version(seen) < version(item):
            newest[subject] = item
    return newest
