"""Event contracts: the envelope (after CloudEvents 1.0) and one pydantic model per event type.

Routing keys are the `EventType` strings. A breaking change is a new version (`.v2`), published beside
the old one until every consumer has moved.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared import tracing

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
    COMMENT_CREATED = "comment.created.v1"
    COMMENT_DELETED = "comment.deleted.v1"
    COMMENT_LIKED = "comment.liked.v1"
    COMMENT_UNLIKED = "comment.unliked.v1"
    ANSWER_ACCEPTED = "question.answer_accepted.v1"
    IDEA_STATUS_CHANGED = "idea.status_changed.v1"
    CAMPAIGN_CLOSED = "campaign.closed.v1"
    CONTENT_MODERATED = "content.moderated.v1"
    QNA_QUESTION_ANSWERED = "qna.question_answered.v1"


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


PostKind = Literal["post", "question", "idea", "praise", "campaign"]
IdeaStatus = Literal["new", "under_review", "adopted", "declined"]


class CampaignInfo(Contract):
    title: str = Field(description="the campaign's title; the post's body is its question", max_length=200)
    closes_at: datetime = Field(description="when the campaign closes and announces its result")


class PostCreatedV1(Contract):
    post_id: uuid.UUID = Field(description="the new post")
    author: PersonRef = Field(description="who wrote it")
    kind: PostKind = Field(description="what sort of post")
    body: str = Field(description="the text, 1-10,000 characters", max_length=10_000)
    audience: Audience = Field(description="who may see the post")
    created_at: datetime = Field(description="when the post was written")
    version: int = Field(description="per-post version stamped by the posts service; higher wins", ge=1)
    recipients: list[PersonRef] = Field(
        default_factory=list, description="praise: whom it praises (each may see the post)"
    )
    mentions: list[str] = Field(
        default_factory=list, description="people @mentioned in the body who may see the post (others stay text)"
    )
    campaign_id: uuid.UUID | None = Field(None, description="idea: the campaign it answers")
    campaign: CampaignInfo | None = Field(None, description="campaign: its title and closing time")


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


class CommentCreatedV1(Contract):
    comment_id: uuid.UUID = Field(description="the new comment")
    post_id: uuid.UUID = Field(description="the post it is on; comments follow the post's audience")
    post_author_id: str = Field(description="who wrote the post")
    post_kind: PostKind = Field(description="what sort of post it is on")
    parent_id: uuid.UUID | None = Field(None, description="the comment it replies to (one level), if any")
    author: PersonRef = Field(description="who wrote the comment")
    body: str = Field(description="the text, 1-5,000 characters", max_length=5_000)
    mentions: list[str] = Field(
        default_factory=list, description="people @mentioned who may see the post (others stay plain text)"
    )
    earlier_commenter_ids: list[str] = Field(
        default_factory=list, description="people who commented on the post before and may still see it"
    )
    created_at: datetime = Field(description="when it was written")
    version: int = Field(description="per-comment version stamped by the posts service; higher wins", ge=1)


class CommentDeletedV1(Contract):
    comment_id: uuid.UUID = Field(description="the deleted comment")
    post_id: uuid.UUID = Field(description="the post it was on")
    author_id: str = Field(description="who wrote it")
    version: int = Field(description="per-comment version; higher wins", ge=1)


class CommentReactionChangedV1(Contract):
    """A like of a comment given or taken back, with the comment's resulting count."""

    comment_id: uuid.UUID = Field(description="the comment liked or unliked")
    post_id: uuid.UUID = Field(description="the post it is on")
    comment_author_id: str = Field(description="who wrote the comment: the one to notify")
    actor: PersonRef = Field(description="who liked or unliked it")
    like_count: int = Field(description="the comment's likes after this change", ge=0)
    version: int = Field(description="per-comment reaction version stamped by the reactions service", ge=1)
    occurred_at: datetime = Field(description="when the reaction changed")


class CommentLikedV1(CommentReactionChangedV1):
    pass


class CommentUnlikedV1(CommentReactionChangedV1):
    pass


class AnswerAcceptedV1(Contract):
    post_id: uuid.UUID = Field(description="the question")
    question_author_id: str = Field(description="who asked")
    comment_id: uuid.UUID | None = Field(description="the accepted answer; null when the acceptance was withdrawn")
    answerer_id: str | None = Field(description="who wrote the accepted answer")
    accepted_by: str = Field(description="the question's author or a moderator")
    accepted_at: datetime = Field(description="when")
    version: int = Field(description="per-post version stamped by the posts service; higher wins", ge=1)


class IdeaStatusChangedV1(Contract):
    post_id: uuid.UUID = Field(description="the idea")
    campaign_id: uuid.UUID = Field(description="its campaign")
    idea_author_id: str = Field(description="who proposed it")
    status: IdeaStatus = Field(description="the idea's status from now on")
    reason: str = Field(description="why, in the campaign owner's words", max_length=2000)
    changed_by: PersonRef = Field(description="the campaign's owner")
    changed_at: datetime = Field(description="when")
    version: int = Field(description="per-post version stamped by the posts service; higher wins", ge=1)


class RankedIdea(Contract):
    post_id: uuid.UUID = Field(description="the idea")
    author_id: str = Field(description="who proposed it")
    backers: int = Field(description="distinct people who liked it", ge=0)
    status: IdeaStatus = Field(description="its status when the campaign closed")


class CampaignClosedV1(Contract):
    campaign_id: uuid.UUID = Field(description="the campaign (its post id)")
    owner_id: str = Field(description="who opened it")
    title: str = Field(description="its title", max_length=200)
    closed_at: datetime = Field(description="when it closed")
    ideas: list[RankedIdea] = Field(description="every idea, most backed first")
    version: int = Field(description="per-post version stamped by the posts service; higher wins", ge=1)


class ContentModeratedV1(Contract):
    """A moderator hid or restored a post or a comment. Hidden content leaves feeds, search and notifications;
    its author still sees it, with the reason."""

    post_id: uuid.UUID = Field(description="the post, or the post the comment is on")
    comment_id: uuid.UUID | None = Field(None, description="the comment, when a comment was moderated")
    author_id: str = Field(description="who wrote the content")
    hidden: bool = Field(description="true: hidden; false: restored")
    reason: str = Field(description="the moderator's reason, shown to the author", max_length=2000)
    version: int = Field(description="per-post (or per-comment) version; higher wins", ge=1)


class QnaQuestionAnsweredV1(Contract):
    session_id: uuid.UUID = Field(description="the live Q&A session")
    question_id: uuid.UUID = Field(description="the question answered")
    asker_id: str | None = Field(description="who asked; null for an anonymous question, which nobody is told of")
    host: PersonRef = Field(description="the leader who answered")
    answered_at: datetime = Field(description="when")


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
    EventType.COMMENT_CREATED: CommentCreatedV1,
    EventType.COMMENT_DELETED: CommentDeletedV1,
    EventType.COMMENT_LIKED: CommentLikedV1,
    EventType.COMMENT_UNLIKED: CommentUnlikedV1,
    EventType.ANSWER_ACCEPTED: AnswerAcceptedV1,
    EventType.IDEA_STATUS_CHANGED: IdeaStatusChangedV1,
    EventType.CAMPAIGN_CLOSED: CampaignClosedV1,
    EventType.CONTENT_MODERATED: ContentModeratedV1,
    EventType.QNA_QUESTION_ANSWERED: QnaQuestionAnsweredV1,
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
    EventType.COMMENT_CREATED: "posts",
    EventType.COMMENT_DELETED: "posts",
    EventType.COMMENT_LIKED: "reactions",
    EventType.COMMENT_UNLIKED: "reactions",
    EventType.ANSWER_ACCEPTED: "posts",
    EventType.IDEA_STATUS_CHANGED: "posts",
    EventType.CAMPAIGN_CLOSED: "posts",
    EventType.CONTENT_MODERATED: "posts",
    EventType.QNA_QUESTION_ANSWERED: "posts",
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
    # The Distributed Tracing extension of CloudEvents: the W3C trace context of the request or event that led
    # to this one (also the AMQP header `traceparent`). Left out of the JSON when there is none.
    traceparent: str | None = Field(
        None,
        description="W3C traceparent of the trace this event belongs to (CloudEvents Distributed Tracing extension)",
        max_length=512,
        exclude_if=lambda value: value is None,
    )
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
    return Envelope(
        type=event_type,
        source=source,
        subject=subject,
        data=data.model_dump(mode="json"),
        traceparent=tracing.current_traceparent(),
    )


# A JSON \u0000 escape (not an escaped backslash followed by "u0000"). PostgreSQL cannot store U+0000 in
# text: an event carrying one would fail its handler at every delivery, so it is malformed from the start.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def parse_event(body: bytes) -> Event:
    """Validate a message body; raises pydantic.ValidationError or ValueError on a malformed event."""
    if _NUL_ESCAPE.search(body):
        raise ValueError("the event carries a U+0000 character, which no text column can store")
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
