"""Live Q&A with a leader over the real system: questions in a window, anonymous to everyone but moderators,
idempotent upvotes that order the questions, and answers published without an anonymous asker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.harness import System, eventually, random_id
from tests.test_campaigns import EVERYONE, EventTap, Person


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def _open_qna(
    host: Person, *, starts_in: float = -1, ends_in: float = 3600, audience: dict[str, Any] = EVERYONE
) -> dict[str, Any]:
    reply = await host.call(
        "POST",
        "/api/qna",
        json={"title": "Spør ledelsen", "starts_at": _at(starts_in), "ends_at": _at(ends_in), "audience": audience},
    )
    assert reply.status_code == 201, reply.text
    session: dict[str, Any] = reply.json()
    return session


async def _ask(person: Person, session_id: str, body: str, *, anonymous: bool = False) -> dict[str, Any]:
    reply = await person.call("POST", f"/api/qna/{session_id}/questions", json={"body": body, "anonymous": anonymous})
    assert reply.status_code == 201, reply.text
    question: dict[str, Any] = reply.json()
    return question


async def _questions(person: Person, session_id: str, **params: str) -> list[dict[str, Any]]:
    reply = await person.call("GET", f"/api/qna/{session_id}/questions", params=params)
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


async def test_an_anonymous_asker_is_seen_by_moderators_only_and_never_published(system: System) -> None:
    host = await Person(system, "Leder", groups=["leaders"]).sign_in()
    moderator = await Person(system, "Moderator", groups=["moderators"]).sign_in()
    asker, other = await Person(system, "Spør").sign_in(), await Person(system, "Annen").sign_in()

    refused = await other.call(
        "POST", "/api/qna", json={"title": "x", "starts_at": _at(0), "ends_at": _at(60), "audience": EVERYONE}
    )
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"

    session = await _open_qna(host)
    assert session["state"] == "open" and session["host"] == {"id": host.id, "name": host.name}
    anonymous = await _ask(asker, session["id"], "Hvorfor ble bonusen kuttet?", anonymous=True)
    assert anonymous["asker"] is None and anonymous["mine"] is True and anonymous["anonymous"] is True
    named = await _ask(other, session["id"], "Når kommer ny kantine?")
    assert named["asker"] == {"id": other.id, "name": other.name}

    def shown(items: list[dict[str, Any]]) -> dict[str, Any]:
        return next(item for item in items if item["id"] == anonymous["id"])

    for viewer in (host, other, asker):
        seen = shown(await _questions(viewer, session["id"]))
        assert seen["asker"] is None and seen["asker_moderator_only"] is False
        assert asker.id not in str(seen)
    for_moderator = shown(await _questions(moderator, session["id"]))
    assert for_moderator["asker"] == {"id": asker.id, "name": asker.name}
    assert for_moderator["asker_moderator_only"] is True

    async with EventTap(system, "qna.question_answered.v1") as tap:
        await asyncio.sleep(0.3)
        path = f"/api/qna/{session['id']}/questions"
        not_host = await moderator.call("POST", f"{path}/{anonymous['id']}/answer", json={"answer": "Jeg svarer"})
        assert not_host.status_code == 403
        answered = await host.call("POST", f"{path}/{anonymous['id']}/answer", json={"answer": "Budsjettet."})
        assert answered.status_code == 200, answered.text
        assert answered.json()["answer"] == "Budsjettet." and answered.json()["asker"] is None
        again = await host.call("POST", f"{path}/{anonymous['id']}/answer", json={"answer": "Igjen"})
        assert again.status_code == 409
        assert (await host.call("POST", f"{path}/{named['id']}/answer", json={"answer": "Til høsten"})).is_success

        async def both() -> bool:
            return len(tap.about("session_id", session["id"])) >= 2

        await eventually(both, message="two answers published")
        await asyncio.sleep(1)
    events = {e["data"]["question_id"]: e for e in tap.about("session_id", session["id"])}
    assert len(events) == 2 and len(tap.about("session_id", session["id"])) == 2
    assert events[anonymous["id"]]["data"]["asker_id"] is None
    assert asker.id not in events[anonymous["id"]]["raw"]
    assert events[named["id"]]["data"]["asker_id"] == other.id
    assert events[named["id"]]["data"]["host"] == {"id": host.id, "name": host.name}


async def test_upvotes_are_idempotent_and_order_the_unanswered_questions(system: System) -> None:
    host = await Person(system, "Leder", groups=["leaders"]).sign_in()
    people = [await Person(system, f"P{i}").sign_in() for i in range(3)]
    session = await _open_qna(host)
    first = await _ask(people[0], session["id"], "Første spørsmål")
    second = await _ask(people[1], session["id"], "Andre spørsmål", anonymous=True)
    third = await _ask(people[2], session["id"], "Tredje spørsmål")
    path = f"/api/qna/{session['id']}/questions"

    for voter in (people[0], people[2], people[2]):
        reply = await voter.call("PUT", f"{path}/{second['id']}/upvote")
        assert reply.status_code == 200, reply.text
    assert reply.json() == {"upvoted": True, "upvotes": 2}
    own = await people[1].call("PUT", f"{path}/{second['id']}/upvote")
    assert own.status_code == 403 and own.headers["content-type"] == "application/problem+json"
    assert (await host.call("PUT", f"{path}/{third['id']}/upvote")).json() == {"upvoted": True, "upvotes": 1}
    assert (await host.call("DELETE", f"{path}/{first['id']}/upvote")).json() == {"upvoted": False, "upvotes": 0}
    assert (await host.call("PUT", f"{path}/{first['id']}/upvote")).json()["upvotes"] == 1
    assert (await host.call("DELETE", f"{path}/{first['id']}/upvote")).json() == {"upvoted": False, "upvotes": 0}
    assert (await host.call("DELETE", f"{path}/{first['id']}/upvote")).json() == {"upvoted": False, "upvotes": 0}

    listed = await _questions(people[2], session["id"])
    assert [(q["id"], q["upvotes"]) for q in listed] == [(second["id"], 2), (third["id"], 1), (first["id"], 0)]
    assert [q["upvoted_by_me"] for q in listed] == [True, False, False]

    assert (await host.call("POST", f"{path}/{second['id']}/answer", json={"answer": "Ja"})).status_code == 200
    assert [q["id"] for q in await _questions(host, session["id"])] == [third["id"], first["id"], second["id"]]
    assert [q["id"] for q in await _questions(host, session["id"], state="open")] == [third["id"], first["id"]]
    assert [q["id"] for q in await _questions(host, session["id"], state="answered")] == [second["id"]]
    page = await host.call("GET", path, params={"limit": 2})
    rest = await host.call("GET", path, params={"limit": 2, "cursor": page.json()["next_cursor"]})
    assert [q["id"] for q in page.json()["items"] + rest.json()["items"]] == [third["id"], first["id"], second["id"]]
    counts = (await host.call("GET", f"/api/qna/{session['id']}")).json()
    assert counts["question_count"] == 3 and counts["answered_count"] == 1


async def test_questions_are_taken_only_inside_the_window_and_the_audience(system: System) -> None:
    team = f"team-{random_id('t')}"
    host = await Person(system, "Leder", groups=["leaders", team]).sign_in()
    member = await Person(system, "Medlem", groups=[team]).sign_in()
    outsider = await Person(system, "Utenfor").sign_in()

    backwards = await host.call(
        "POST", "/api/qna", json={"title": "x", "starts_at": _at(60), "ends_at": _at(30), "audience": EVERYONE}
    )
    assert backwards.status_code == 422

    upcoming = await _open_qna(host, starts_in=3600, ends_in=7200)
    assert upcoming["state"] == "upcoming"
    early = await member.call("POST", f"/api/qna/{upcoming['id']}/questions", json={"body": "For tidlig?"})
    assert early.status_code == 409 and early.headers["content-type"] == "application/problem+json"

    short = await _open_qna(host, ends_in=4, audience={"type": "team", "team": team})

    async def member_sees() -> bool:
        return (await member.call("GET", f"/api/qna/{short['id']}")).status_code == 200

    await eventually(member_sees, message="the member's team reached the posts service")
    question = await _ask(member, short["id"], "Rekker jeg det?")
    assert (await outsider.call("GET", f"/api/qna/{short['id']}")).status_code == 404
    assert (await outsider.call("GET", f"/api/qna/{short['id']}/questions")).status_code == 404
    outside = await outsider.call("POST", f"/api/qna/{short['id']}/questions", json={"body": "Hei"})
    assert outside.status_code == 404

    async def ended() -> bool:
        return (await member.call("GET", f"/api/qna/{short['id']}")).json()["state"] == "ended"

    await eventually(ended, timeout=10, message="the window ends")
    late = await member.call("POST", f"/api/qna/{short['id']}/questions", json={"body": "For sent?"})
    assert late.status_code == 409
    vote = await host.call("PUT", f"/api/qna/{short['id']}/questions/{question['id']}/upvote")
    assert vote.status_code == 409
    # The host may still answer after the window.
    answer = await host.call("POST", f"/api/qna/{short['id']}/questions/{question['id']}/answer", json={"answer": "Ja"})
    assert answer.status_code == 200
