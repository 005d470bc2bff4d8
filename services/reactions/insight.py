"""Participation insight for leaders: per team and month, aggregates over at least 5 people only."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import asyncpg

from services.reactions import repository
from services.reactions.scores import parse_month
from shared.api_insight import SUPPRESSED, Participation, QuestionResponse, ShareOfMembers, TrendingIdea
from shared.auth import Claims

# Nobody is singled out: a figure over fewer people than this is not shown.
MIN_PEOPLE = 5


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    first = parse_month(month)
    start = datetime(first.year, first.month, 1, tzinfo=UTC)
    end = datetime(first.year + first.month // 12, first.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def current_month() -> str:
    return f"{datetime.now(UTC):%Y-%m}"


async def participation(pool: asyncpg.Pool, *, team: str, month: str, viewer: Claims) -> Participation:
    start, end = _month_bounds(month)
    async with pool.acquire() as conn:
        members = await repository.team_members(conn, team)
        if len(members) < MIN_PEOPLE:
            hidden = ShareOfMembers(share=None, suppressed=SUPPRESSED)
            return Participation(
                team=team,
                month=month,
                members=len(members),
                suppressed=SUPPRESSED,
                posted=hidden,
                commented=hidden,
                reacted=hidden,
                trending_ideas=[],
                question_response=QuestionResponse(
                    questions=None, answered=None, median_minutes=None, suppressed=SUPPRESSED
                ),
            )
        counts = await repository.participants(conn, members=members, start=start, end=end)
        ideas = await repository.trending_ideas(
            conn, members=members, viewer_id=viewer.sub, start=start, end=end, min_backers=MIN_PEOPLE
        )
        questions = await repository.question_responses(conn, members=members, start=start, end=end)

    def share(people: int) -> ShareOfMembers:
        return ShareOfMembers(share=round(people / len(members), 4))

    return Participation(
        team=team,
        month=month,
        members=len(members),
        posted=share(counts["posted"]),
        commented=share(counts["commented"]),
        reacted=share(counts["reacted"]),
        trending_ideas=[TrendingIdea(post_id=r["post_id"], new_backers=r["new_backers"]) for r in ideas],
        question_response=_question_response(questions),
    )


def _question_response(questions: list[asyncpg.Record]) -> QuestionResponse:
    """Shown when at least 5 people asked; the median only when at least 5 askers were answered."""
    askers = {q["author_id"] for q in questions}
    if len(askers) < MIN_PEOPLE:
        return QuestionResponse(questions=None, answered=None, median_minutes=None, suppressed=SUPPRESSED)
    answered = [q for q in questions if q["minutes"] is not None]
    if len({q["author_id"] for q in answered}) < MIN_PEOPLE:
        return QuestionResponse(
            questions=len(questions), answered=len(answered), median_minutes=None, suppressed=SUPPRESSED
        )
    median = statistics.median(float(q["minutes"]) for q in answered)
    return QuestionResponse(questions=len(questions), answered=len(answered), median_minutes=round(median, 1))
