"""Praise and questions over the real services (issue 5, parts 3 and 4): recipients checked against the audience,
received praise as each viewer may see it, and accepted answers by the question's author or a moderator."""

from __future__ import annotations

import asyncio
import uuid

from tests.harness import System, eventually, random_id
from tests.test_comments import Events, fields, ok, problem, signed_in


async def test_praise_names_known_recipients_who_would_see_it(system: System) -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    author, token = await signed_in(system, groups=[team])
    colleague, _ = await signed_in(system)
    cases = [
        ({"body": "Takk!", "kind": "praise"}, "at least one"),
        ({"body": "Takk!", "kind": "praise", "recipients": []}, "at least one"),
        ({"body": "Takk!", "kind": "praise", "recipients": [author]}, "yourself"),
        ({"body": "Takk!", "kind": "praise", "recipients": [random_id("ghost")]}, "no such person"),
        (
            {"body": "Takk!", "kind": "praise", "recipients": [colleague], "audience": {"type": "team", "team": team}},
            f"{colleague} would not see this praise",
        ),
        ({"body": "Takk!", "kind": "praise", "recipients": [colleague], "audience": {"type": "private"}}, "not see"),
        ({"body": "Takk!", "kind": "post", "recipients": [colleague]}, "only praise"),
        ({"body": "Takk!", "kind": "praise", "recipients": [f"p{i}" for i in range(21)]}, "at most 20"),
    ]
    for body, message in cases:
        found = await problem(system, token, "POST", "/api/posts", 422, json=body)
        assert fields(found) == ["body.recipients"], found
        assert message in found["errors"][0]["message"], found
    praise = await ok(
        system,
        token,
        "POST",
        "/api/posts",
        201,
        json={"body": "Godt jobba!", "kind": "praise", "recipients": [colleague]},
    )
    assert praise["recipients"] == [{"id": colleague, "name": f"Name {colleague}"}]
    # Narrowing the audience may not leave a recipient out.
    narrowed = await problem(
        system, token, "PATCH", f"/api/posts/{praise['id']}", 422, json={"audience": {"type": "private"}}
    )
    assert fields(narrowed) == ["body.audience"]


async def test_received_praise_is_listed_as_each_viewer_may_see_it(system: System) -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    author, author_token = await signed_in(system, groups=[team])
    praised, praised_token = await signed_in(system, groups=[team])
    _, outsider_token = await signed_in(system)
    async with Events(system, "post.created.v1").listening() as events:
        await asyncio.sleep(0.2)
        in_team = await ok(
            system,
            author_token,
            "POST",
            "/api/posts",
            201,
            json={
                "body": "Takk for hjelpen i teamet",
                "kind": "praise",
                "recipients": [praised],
                "audience": {"type": "team", "team": team},
            },
        )
        public = await ok(
            system,
            author_token,
            "POST",
            "/api/posts",
            201,
            json={"body": "Takk for foredraget", "kind": "praise", "recipients": [praised]},
        )
        envelope = await events.one("post.created.v1", public["id"])
    assert envelope["data"]["recipients"] == [{"id": praised, "name": f"Name {praised}"}]
    assert envelope["data"]["kind"] == "praise"
    await ok(system, author_token, "POST", "/api/posts", 201, json={"body": "Bare et innlegg"})

    mine = await ok(system, praised_token, "GET", f"/api/people/{praised}/praise")
    assert [p["id"] for p in mine["items"]] == [public["id"], in_team["id"]]
    theirs = await ok(system, outsider_token, "GET", f"/api/people/{praised}/praise")
    assert [p["id"] for p in theirs["items"]] == [public["id"]]
    paged = await ok(system, praised_token, "GET", f"/api/people/{praised}/praise", params={"limit": 1})
    rest = await ok(
        system,
        praised_token,
        "GET",
        f"/api/people/{praised}/praise",
        params={"limit": 1, "cursor": paged["next_cursor"]},
    )
    assert [p["id"] for p in paged["items"] + rest["items"]] == [public["id"], in_team["id"]]
    assert rest["next_cursor"] is None
    assert (await ok(system, author_token, "GET", f"/api/people/{author}/praise"))["items"] == []
    bad = await problem(system, praised_token, "GET", f"/api/people/{praised}/praise", 422, params={"cursor": "x"})
    assert fields(bad) == ["query.cursor"]


async def test_the_asker_or_a_moderator_accepts_an_answer_which_is_listed_first(system: System) -> None:
    asker, asker_token = await signed_in(system)
    _, first_token = await signed_in(system)
    second, second_token = await signed_in(system)
    _, moderator_token = await signed_in(system, groups=[system.settings.moderator_group])
    question = await ok(
        system, asker_token, "POST", "/api/posts", 201, json={"body": "Hvor er nøkkelen?", "kind": "question"}
    )
    path = f"/api/posts/{question['id']}"
    early = await ok(system, first_token, "POST", f"{path}/comments", 201, json={"body": "I skuffen"})
    reply = await ok(
        system, second_token, "POST", f"{path}/comments", 201, json={"body": "Nei", "parent_id": early["id"]}
    )
    own = await ok(system, asker_token, "POST", f"{path}/comments", 201, json={"body": "Fant den ikke"})
    answer = await ok(system, second_token, "POST", f"{path}/comments", 201, json={"body": "Hos resepsjonen"})

    await problem(system, first_token, "PUT", f"{path}/accepted-answer", 403, json={"comment_id": answer["id"]})
    for comment_id in (reply["id"], own["id"], str(uuid.uuid4())):
        refused = await problem(
            system, asker_token, "PUT", f"{path}/accepted-answer", 422, json={"comment_id": comment_id}
        )
        assert fields(refused) == ["body.comment_id"]
    async with Events(system, "question.answer_accepted.v1").listening() as events:
        await asyncio.sleep(0.2)
        accepted = await ok(system, asker_token, "PUT", f"{path}/accepted-answer", json={"comment_id": answer["id"]})
        assert accepted["accepted_comment_id"] == answer["id"]
        envelope = await events.one("question.answer_accepted.v1", question["id"])
        assert envelope["data"]["comment_id"] == answer["id"] and envelope["data"]["answerer_id"] == second
        assert envelope["data"]["question_author_id"] == asker and envelope["data"]["accepted_by"] == asker
        version = envelope["data"]["version"]

        listed = await ok(system, first_token, "GET", f"{path}/comments")
        assert [c["id"] for c in listed["items"]] == [answer["id"], early["id"], own["id"]]
        assert [c["accepted"] for c in listed["items"]] == [True, False, False]
        paged = await ok(system, first_token, "GET", f"{path}/comments", params={"limit": 1})
        seen = [c["id"] for c in paged["items"]]
        while paged["next_cursor"]:
            paged = await ok(
                system, first_token, "GET", f"{path}/comments", params={"limit": 1, "cursor": paged["next_cursor"]}
            )
            seen += [c["id"] for c in paged["items"]]
        assert seen == [answer["id"], early["id"], own["id"]], "each comment once, the answer first"

        switched = await ok(system, moderator_token, "PUT", f"{path}/accepted-answer", json={"comment_id": early["id"]})
        assert switched["accepted_comment_id"] == early["id"]
        withdrawn = await ok(system, asker_token, "DELETE", f"{path}/accepted-answer")
        assert withdrawn["accepted_comment_id"] is None

        async def all_three() -> bool:
            return len(events.received) == 3

        await eventually(all_three, message="three acceptance events")
    last = events.received[-1]["data"]
    assert last["comment_id"] is None and last["answerer_id"] is None and last["version"] == version + 2

    post = await ok(system, asker_token, "POST", "/api/posts", 201, json={"body": "Ikke et spørsmål"})
    comment = await ok(system, first_token, "POST", f"/api/posts/{post['id']}/comments", 201, json={"body": "Ok"})
    await problem(
        system, asker_token, "PUT", f"/api/posts/{post['id']}/accepted-answer", 409, json={"comment_id": comment["id"]}
    )
