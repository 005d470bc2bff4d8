"""Participation insight for leaders end to end: shares of a team's members who posted, commented and
reacted, trending ideas and response time to questions; nothing shown over fewer than 5 people; leaders only."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from tests.harness import System, eventually, random_id
from tests.test_comment_likes import comment_created, create_post, wait_for_comments
from tests.test_reliability import publish
from tests.test_scores import sign_in_to_team

SUPPRESSED = "fewer than 5 people"


async def insight(system: System, token: str, **params: str) -> tuple[int, Any]:
    async with system.client(token) as client:
        reply = await client.get("/api/insight/participation", params=params)
    return reply.status_code, reply.json()


async def test_a_leader_sees_a_team_of_six_and_nothing_of_a_team_of_four(system: System) -> None:
    team, small = random_id("team"), random_id("small")
    members = [random_id(f"m{i}") for i in range(6)]
    await sign_in_to_team(system, team, members)
    await sign_in_to_team(system, small, [random_id("s") for _ in range(4)])
    tokens = [system.token(m, groups=[team]) for m in members]
    leader = system.token(random_id("leader"), groups=["leaders"])

    # Five members ask a question each; the sixth answers them 1-5 minutes later. The first asker's own
    # comment, sooner, is no answer.
    questions = [await create_post(system, token, kind="question") for token in tokens[:5]]
    answers = []
    for minutes, question in enumerate(questions, start=1):
        asked = datetime.fromisoformat(question["created_at"])
        for author, after in ((members[5], minutes), *([(members[0], 0.5)] if question is questions[0] else [])):
            answers.append(
                comment_created(
                    post_id=uuid.UUID(question["id"]),
                    post_author_id=question["author"]["id"],
                    post_kind="question",
                    author_id=author,
                    created_at=asked + timedelta(minutes=after),
                )
            )
    await publish(system.namespace, answers)
    await wait_for_comments(system, [uuid.UUID(a.data["comment_id"]) for a in answers])

    # Five members back the first member's idea: the silent majority's voice.
    idea = await create_post(system, tokens[0], kind="idea")
    for token in tokens[1:6]:
        async with system.client(token) as client:
            assert (await client.put(f"/api/posts/{idea['id']}/like")).status_code == 200
    month = f"{datetime.fromisoformat(idea['created_at']):%Y-%m}"

    expected = {
        "team": team,
        "month": month,
        "members": 6,
        "suppressed": None,
        "posted": {"share": round(5 / 6, 4), "suppressed": None},
        "commented": {"share": round(2 / 6, 4), "suppressed": None},
        "reacted": {"share": round(5 / 6, 4), "suppressed": None},
        "trending_ideas": [{"post_id": idea["id"], "new_backers": 5}],
        "question_response": {"questions": 5, "answered": 5, "median_minutes": 3.0, "suppressed": None},
    }

    async def settled() -> Any:
        status, seen = await insight(system, leader, team=team, month=month)
        assert status == 200, seen
        return seen if seen == expected else None

    await eventually(settled, timeout=30, interval=0.2, message=f"participation of {team} settles on {expected}")

    status, hidden = await insight(system, leader, team=small, month=month)
    assert status == 200
    assert hidden["members"] == 4 and hidden["suppressed"] == SUPPRESSED
    for figure in ("posted", "commented", "reacted"):
        assert hidden[figure] == {"share": None, "suppressed": SUPPRESSED}
    assert hidden["trending_ideas"] == []
    assert hidden["question_response"] == {
        "questions": None,
        "answered": None,
        "median_minutes": None,
        "suppressed": SUPPRESSED,
    }


async def test_participation_insight_is_for_leaders_only(system: System) -> None:
    status, problem = await insight(system, system.token(groups=["staff"]), team="staff")
    assert status == 403, problem
    assert problem["status"] == 403
    status, _ = await insight(system, system.token(groups=["leaders"]))
    assert status == 422, "the team is required"
    status, _ = await insight(system, system.token(groups=["leaders"]), team="staff", month="2024-1")
    assert status == 422
