"""The HTTP contract of idea campaigns and live Q&A with a leader (docs/campaigns.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.api import Person, Post, trimmed_text
from shared.events import Audience, EveryoneAudience, FollowersAudience, IdeaStatus, PrivateAudience

MAX_QUESTION_CHARS = 10_000
MAX_IDEA_CHARS = 10_000
MAX_REASON_CHARS = 2_000
MAX_QNA_QUESTION_CHARS = 1_000
MAX_ANSWER_CHARS = 5_000


def _everyone_or_team(audience: Audience) -> Audience:
    if isinstance(audience, FollowersAudience | PrivateAudience):
        raise ValueError("must be everyone or a team you belong to")
    return audience


class CreateCampaign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="1-200 characters after trimming")
    question: str = Field(description="what the leader asks for input on; 1-10,000 characters after trimming")
    audience: Audience = Field(
        default_factory=lambda: EveryoneAudience(type="everyone"),
        description="everyone, or a team the leader belongs to; its ideas take the same audience",
    )
    closes_at: datetime = Field(description="when the campaign closes and announces its result; in the future")

    @field_validator("title")
    @classmethod
    def title_length(cls, value: str) -> str:
        return trimmed_text(value, most=200)

    @field_validator("question")
    @classmethod
    def question_length(cls, value: str) -> str:
        return trimmed_text(value, most=MAX_QUESTION_CHARS)

    @field_validator("audience")
    @classmethod
    def audience_kind(cls, value: Audience) -> Audience:
        return _everyone_or_team(value)

    @field_validator("closes_at")
    @classmethod
    def with_time_zone(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2030-01-31T16:00:00+01:00")
        return value


class Campaign(BaseModel):
    id: uuid.UUID = Field(description="the campaign, which is also its post's id")
    title: str
    question: str
    owner: Person = Field(description="the leader who opened it and sets its ideas' status")
    audience: dict[str, Any]
    created_at: datetime
    closes_at: datetime
    closed_at: datetime | None = Field(description="when it closed; null while open")
    idea_count: int = Field(description="ideas in it that you may see")


class CampaignPage(BaseModel):
    items: list[Campaign] = Field(description="open campaigns first (closing soonest first), then the closed, newest")
    next_cursor: str | None


class CreateIdea(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(description="1-10,000 characters after trimming")

    @field_validator("body")
    @classmethod
    def body_length(cls, value: str) -> str:
        return trimmed_text(value, most=MAX_IDEA_CHARS)


class Idea(Post):
    campaign_id: uuid.UUID = Field(description="the campaign it answers")


class IdeaItem(BaseModel):
    post: Idea
    backers: int = Field(description="distinct people who liked the idea; the ranking follows it")
    status: IdeaStatus
    status_reason: str | None = Field(description="the campaign owner's reason for the status")
    status_changed_at: datetime | None


class IdeaPage(BaseModel):
    items: list[IdeaItem] = Field(description="most backers first; ties: the older idea first")
    next_cursor: str | None


class ChangeIdeaStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: IdeaStatus
    reason: str | None = Field(
        None, validate_default=True, description="why; 1-2,000 characters, required for every status but new"
    )

    @field_validator("reason")
    @classmethod
    def reason_unless_new(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value.strip():
            return trimmed_text(value, most=MAX_REASON_CHARS)
        if info.data.get("status", "new") != "new":
            raise ValueError("a reason is required for every status but new")
        return None


class CreateQnaSession(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="1-200 characters after trimming")
    starts_at: datetime = Field(description="questions are taken from this time")
    ends_at: datetime = Field(description="until this time; after starts_at and in the future")
    audience: Audience = Field(
        default_factory=lambda: EveryoneAudience(type="everyone"), description="everyone, or a team the host is in"
    )

    @field_validator("title")
    @classmethod
    def title_length(cls, value: str) -> str:
        return trimmed_text(value, most=200)

    @field_validator("audience")
    @classmethod
    def audience_kind(cls, value: Audience) -> Audience:
        return _everyone_or_team(value)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def with_time_zone(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2030-01-31T16:00:00+01:00")
        return value

    @model_validator(mode="after")
    def ends_after_start(self) -> CreateQnaSession:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class QnaSession(BaseModel):
    id: uuid.UUID
    title: str
    host: Person = Field(description="the leader who answers")
    audience: dict[str, Any]
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    state: Literal["upcoming", "open", "ended"] = Field(description="whether questions are taken now")
    question_count: int
    answered_count: int


class AskQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(description="1-1,000 characters after trimming")
    anonymous: bool = Field(
        False, description="hide who asked from everyone, the host included; moderators alone can see it"
    )

    @field_validator("body")
    @classmethod
    def body_length(cls, value: str) -> str:
        return trimmed_text(value, most=MAX_QNA_QUESTION_CHARS)


class AnswerQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: str = Field(description="1-5,000 characters after trimming")

    @field_validator("answer")
    @classmethod
    def answer_length(cls, value: str) -> str:
        return trimmed_text(value, most=MAX_ANSWER_CHARS)


class QnaQuestion(BaseModel):
    id: uuid.UUID
    session_id: uuid.UUID
    body: str
    anonymous: bool
    asker: Person | None = Field(
        description="who asked; null for an anonymous question, except to moderators (see asker_moderator_only)"
    )
    asker_moderator_only: bool = Field(
        False,
        description="true when `asker` is shown only because you moderate: to stop abuse, never to be passed on",
    )
    mine: bool = Field(description="whether you asked it (shown to you alone)")
    upvotes: int
    upvoted_by_me: bool
    answer: str | None
    answered_at: datetime | None
    created_at: datetime


class QnaQuestionPage(BaseModel):
    items: list[QnaQuestion] = Field(
        description="unanswered first, most upvoted first, ties the older first; then the answered in the same order"
    )
    next_cursor: str | None


class UpvoteState(BaseModel):
    upvoted: bool
    upvotes: int
