"""Notifications of the sharing features over the real services: comments (grouped, earlier commenters),
mentions only inside the audience, praise, accepted answers, an idea's status reaching every backer,
commenter and its author exactly once, a campaign's result, a Q&A answer (never for an anonymous asker),
and a hidden post taking its notifications with it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.harness import System, eventually, random_id


async def _person(system: System, prefix: str, **claims: Any) -> tuple[str, str]:
    person = random_id(prefix)
    token = system.token(person, name=f"Name {person}", **claims)
    async with system.client(token) as client:
        assert (await client.get("/api/me")).status_code == 200
    return person, token


async def _call(system: System, token: str, method: str, path: str, json: Any = None, status: int = 200) -> Any:
    async with system.client(token) as client:
        reply = await client.request(method, path, json=json)
    assert reply.status_code == status, f"{method} {path}: {reply.status_code} {reply.text}"
    return reply.json() if reply.content else None


async def _inbox(system: System, token: str) -> list[dict[str, Any]]:
    page = await _call(system, token, "GET", "/api/notifications?limit=100")
    items: list[dict[str, Any]] = page["items"]
    return items


async def _wait_for(system: System, token: str, kind: str, count: int = 1) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        items = [item for item in await _inbox(system, token) if item["kind"] == kind]
        return items if len(items) >= count else None

    items: list[dict[str, Any]] = await eventually(found, timeout=15, message=f"{count} {kind}")
    return items


async def _quiet(system: System) -> None:
    """Long enough for an event published now to have been applied (the pipeline takes milliseconds)."""
    await asyncio.sleep(1.5)


async def test_comments_notify_the_author_grouped_and_earlier_commenters(system: System) -> None:
    _author, author_token = await _person(system, "author")
    _first, first_token = await _person(system, "first")
    second, second_token = await _person(system, "second")
    post = await _call(system, author_token, "POST", "/api/posts", {"body": "Hva synes dere?"}, status=201)
    await _call(system, first_token, "POST", f"/api/posts/{post['id']}/comments", {"body": "Bra!"}, status=201)
    await _call(system, second_token, "POST", f"/api/posts/{post['id']}/comments", {"body": "Enig"}, status=201)

    async def both() -> list[dict[str, Any]] | None:
        items = await _wait_for(system, author_token, "post.commented")
        return items if items[0]["actor_count"] == 2 else None

    [group] = await eventually(both, message="two commenters in one group")
    assert group["title"] == f"Name {second} and 1 other commented on your post"
    [thread] = await _wait_for(system, first_token, "thread.commented")
    assert thread["title"] == f"Name {second} also commented on a post you commented on"
    assert [item["kind"] for item in await _inbox(system, second_token)] == []


async def test_a_mention_notifies_inside_the_audience_only(system: System) -> None:
    team = random_id("team")
    author, author_token = await _person(system, "author", groups=[team])
    member, member_token = await _person(system, "member", groups=[team])
    outsider, outsider_token = await _person(system, "outsider")
    post = await _call(
        system,
        author_token,
        "POST",
        "/api/posts",
        {"body": f"Til @{member} og @{outsider}", "audience": {"type": "team", "team": team}},
        status=201,
    )
    [mention] = await _wait_for(system, member_token, "person.mentioned")
    assert mention["title"] == f"Name {author} mentioned you" and mention["post_id"] == post["id"]
    await _quiet(system)
    assert await _inbox(system, outsider_token) == []


async def test_praise_notifies_each_recipient(system: System) -> None:
    author, author_token = await _person(system, "author", locale="nb")
    praised, praised_token = await _person(system, "praised", locale="nb")
    await _call(
        system,
        author_token,
        "POST",
        "/api/posts",
        {"body": "Takk for hjelpen med lanseringen!", "kind": "praise", "recipients": [praised]},
        status=201,
    )
    [praise] = await _wait_for(system, praised_token, "praise.received")
    assert praise["title"] == f"Name {author} ga deg ros"


async def test_an_accepted_answer_notifies_the_answerer(system: System) -> None:
    asker, asker_token = await _person(system, "asker")
    _answerer, answerer_token = await _person(system, "answerer")
    question = await _call(
        system, asker_token, "POST", "/api/posts", {"body": "Hvem kan Kafka?", "kind": "question"}, status=201
    )
    comment = await _call(
        system, answerer_token, "POST", f"/api/posts/{question['id']}/comments", {"body": "Jeg!"}, status=201
    )
    await _call(
        system, asker_token, "PUT", f"/api/posts/{question['id']}/accepted-answer", {"comment_id": comment["id"]}
    )
    [accepted] = await _wait_for(system, answerer_token, "answer.accepted")
    assert accepted["title"] == f"Name {asker} accepted your answer"


async def test_an_idea_status_reaches_every_backer_commenter_and_author_once(system: System) -> None:
    leader, leader_token = await _person(system, "leader", groups=["leaders"])
    _author, author_token = await _person(system, "author")
    backers = [await _person(system, "backer") for _ in range(3)]
    _commenter, commenter_token = await _person(system, "commenter")
    former, former_token = await _person(system, "former")
    closes_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    campaign = await _call(
        system,
        leader_token,
        "POST",
        "/api/campaigns",
        {"title": "Kantina", "question": "Hva vil dere spise?", "closes_at": closes_at},
        status=201,
    )
    idea = await _call(
        system, author_token, "POST", f"/api/campaigns/{campaign['id']}/ideas", {"body": "Taco fredag"}, status=201
    )
    idea_id = idea["id"] if "post" not in idea else idea["post"]["id"]
    for _, token in [*backers, (former, former_token)]:
        await _call(system, token, "PUT", f"/api/posts/{idea_id}/like")
    await _call(system, former_token, "DELETE", f"/api/posts/{idea_id}/like")
    await _call(system, commenter_token, "POST", f"/api/posts/{idea_id}/comments", {"body": "Ja!"}, status=201)
    # A backer who also commented is told once.
    await _call(system, backers[0][1], "POST", f"/api/posts/{idea_id}/comments", {"body": "Enig"}, status=201)
    await _quiet(system)  # the likes and comments reach the notifications service first

    await _call(
        system, leader_token, "PUT", f"/api/ideas/{idea_id}/status", {"status": "adopted", "reason": "Vi gjør det"}
    )
    told = [*(token for _, token in backers), commenter_token, author_token]
    for token in told:
        [status] = await _wait_for(system, token, "idea.status_changed")
        assert status["title"] == f"Name {leader} set an idea you took part in to “adopted”: Vi gjør det"
        assert status["post_id"] == idea_id
    await _quiet(system)
    assert [i for i in await _inbox(system, former_token) if i["kind"] == "idea.status_changed"] == []
    for token in told:
        assert len([i for i in await _inbox(system, token) if i["kind"] == "idea.status_changed"]) == 1

    # A second change is a second notification for each, on its own.
    await _call(
        system, leader_token, "PUT", f"/api/ideas/{idea_id}/status", {"status": "declined", "reason": "Likevel ikke"}
    )
    for token in told:
        await _wait_for(system, token, "idea.status_changed", count=2)

    await _call(system, leader_token, "POST", f"/api/campaigns/{campaign['id']}/close", status=200)
    for token in told:
        [closed] = await _wait_for(system, token, "campaign.closed")
        assert closed["title"] == "The campaign “Kantina” has closed with 1 ideas"
        assert closed["url"].endswith(f"/campaigns/{campaign['id']}")


async def test_a_qna_answer_tells_a_named_asker_and_nobody_for_an_anonymous_one(system: System) -> None:
    host, host_token = await _person(system, "host", groups=["leaders"])
    _named, named_token = await _person(system, "named")
    _hidden, hidden_token = await _person(system, "hidden")
    now = datetime.now(UTC)
    session = await _call(
        system,
        host_token,
        "POST",
        "/api/qna",
        {
            "title": "Spør ledelsen",
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
        },
        status=201,
    )
    asked = await _call(
        system, named_token, "POST", f"/api/qna/{session['id']}/questions", {"body": "Hva skjer?"}, status=201
    )
    anonymous = await _call(
        system,
        hidden_token,
        "POST",
        f"/api/qna/{session['id']}/questions",
        {"body": "Og lønna?", "anonymous": True},
        status=201,
    )
    for question in (asked, anonymous):
        await _call(
            system,
            host_token,
            "POST",
            f"/api/qna/{session['id']}/questions/{question['id']}/answer",
            {"answer": "Svar"},
        )
    [answered] = await _wait_for(system, named_token, "qna.answered")
    assert answered["title"] == f"Name {host} answered your question"
    assert answered["url"].endswith(f"/qna/{session['id']}") and answered["post_id"] is None
    await _quiet(system)
    assert await _inbox(system, hidden_token) == []


async def test_a_hidden_post_takes_its_notifications_with_it_until_restored(system: System) -> None:
    _author, author_token = await _person(system, "author")
    _liker, liker_token = await _person(system, "liker")
    _moderator, moderator_token = await _person(system, "moderator", groups=["moderators"])
    post = await _call(system, author_token, "POST", "/api/posts", {"body": "Noe som blir rapportert"}, status=201)
    await _call(system, liker_token, "PUT", f"/api/posts/{post['id']}/like")
    await _wait_for(system, author_token, "post.liked")

    await _call(system, moderator_token, "POST", f"/api/moderation/posts/{post['id']}/hide", {"reason": "Personvern"})

    async def gone() -> bool:
        page = await _call(system, author_token, "GET", "/api/notifications")
        return page["items"] == [] and page["unread"] == 0

    await eventually(gone, message="the hidden post's notification left the inbox")
    await _call(system, moderator_token, "POST", f"/api/moderation/posts/{post['id']}/restore", {"reason": "Rettet"})
    [back] = await _wait_for(system, author_token, "post.liked")
    assert back["post_id"] == post["id"]
