"""HTTP shapes of comment likes, leaderboards and participation insight (docs/scores.md)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from shared.api import Person

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
SUPPRESSED = "fewer than 5 people"
LeaderboardKind = Literal["contributors", "builders"]


class CommentLikeState(BaseModel):
    liked: bool = Field(description="whether you like the comment now")
    like_count: int = Field(description="the comment's likes, exact", ge=0)


class LeaderboardEntry(BaseModel):
    person: Person
    score: int = Field(description="by the leaderboard's formula")
    posts: int = Field(description="posts written in the month that still stand")
    comments: int = Field(description="comments written in the month that still stand")
    likes_received: int = Field(description="likes given in the month to their posts and comments, by others")
    comments_on_others: int = Field(description="builders: their comments in the month on others' posts")
    likes_on_those: int = Field(description="builders: the likes (by others) those comments received")


class Leaderboard(BaseModel):
    month: str = Field(description="YYYY-MM, a UTC month")
    team: str | None = Field(description="the team; null for the whole organisation")
    kind: LeaderboardKind
    formula: str = Field(description="how the score is computed")
    items: list[LeaderboardEntry] = Field(description="highest score first; people with a score above zero")


class ShareOfMembers(BaseModel):
    share: float | None = Field(description="the share of the team's members, 0-1; null when suppressed")
    suppressed: str | None = Field(None, description=f'"{SUPPRESSED}" when the figure is not shown')


class TrendingIdea(BaseModel):
    post_id: uuid.UUID
    new_backers: int = Field(description="members of the team who backed (liked) it in the month; at least 5")


class QuestionResponse(BaseModel):
    questions: int | None = Field(description="questions the team's members asked in the month")
    answered: int | None = Field(description="of them, those someone else has commented on")
    median_minutes: float | None = Field(description="median minutes from a question to its first comment by another")
    suppressed: str | None = Field(None, description=f'"{SUPPRESSED}" when the figures are not shown')


class Participation(BaseModel):
    """What a leader sees of a team's month. Only aggregates over at least 5 people are shown."""

    team: str
    month: str = Field(description="YYYY-MM, a UTC month")
    members: int = Field(description="the team's members now")
    suppressed: str | None = Field(None, description=f'"{SUPPRESSED}" when the team is too small for any figure')
    posted: ShareOfMembers = Field(description="share of members who wrote a post in the month")
    commented: ShareOfMembers = Field(description="share of members who commented in the month")
    reacted: ShareOfMembers = Field(description="share who liked or favourited in the month: the silent majority")
    trending_ideas: list[TrendingIdea] = Field(description="ideas most backed by members in the month, at most 10")
    question_response: QuestionResponse
