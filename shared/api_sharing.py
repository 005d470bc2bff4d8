"""The HTTP shapes of comments, accepted answers, reports and moderation (docs/sharing.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.api import Person, trimmed_text

MAX_COMMENT_CHARS = 5_000
MAX_REASON_CHARS = 1_000


class CreateComment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(description="1-5,000 characters after trimming; `@person-id` mentions someone")
    parent_id: uuid.UUID | None = Field(
        None, description="reply to this top-level comment of the same post (one level: a reply to a reply is a 422)"
    )

    @field_validator("body")
    @classmethod
    def body_length_after_trimming(cls, value: str) -> str:
        return trimmed_text(value, most=MAX_COMMENT_CHARS)


class Comment(BaseModel):
    id: uuid.UUID
    post_id: uuid.UUID
    parent_id: uuid.UUID | None = Field(description="the top-level comment this replies to; null for a top-level one")
    author: Person
    body: str
    created_at: datetime
    like_count: int = 0
    liked_by_me: bool = Field(False, description="not composed yet: always false for now")
    accepted: bool = Field(False, description="the accepted answer of a question")
    mentions: list[Person] = Field(default_factory=list, description="people @mentioned who may see the post")
    hidden_reason: str | None = Field(None, description="why a moderator hid it; only its author and moderators")


class CommentThread(Comment):
    replies: list[Comment] = Field(default_factory=list, description="every reply, oldest first")


class CommentPage(BaseModel):
    items: list[CommentThread] = Field(description="top-level comments, oldest first; an accepted answer first")
    next_cursor: str | None


class AcceptAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment_id: uuid.UUID = Field(description="a top-level comment on the question, not by the question's author")


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(description="1-1,000 characters after trimming")

    @field_validator("reason")
    @classmethod
    def reason_length_after_trimming(cls, value: str) -> str:
        return trimmed_text(value, most=MAX_REASON_CHARS)


ReportStatus = Literal["open", "closed"]


class Report(BaseModel):
    id: uuid.UUID
    post_id: uuid.UUID = Field(description="the post reported, or the post the comment is on")
    comment_id: uuid.UUID | None = Field(description="the comment reported, if a comment was")
    reason: str
    status: ReportStatus
    created_at: datetime


class ReportedContent(BaseModel):
    author: Person
    body: str
    hidden_reason: str | None = Field(description="set while the content is hidden")
    deleted: bool = Field(description="its author deleted it since")


class ModerationReport(Report):
    reporter: Person
    content: ReportedContent = Field(description="what was reported, as it is now")
    closed_at: datetime | None
    closed_by: str | None = Field(description="the moderator who closed it")
    resolution: Literal["hidden", "kept"] | None = Field(
        description="hidden: a moderator hid the content; kept: restored or found fine"
    )


class ModerationReportPage(BaseModel):
    items: list[ModerationReport] = Field(description="oldest first")
    next_cursor: str | None
