"""Moderation without pre-censorship over the real services (issue 5, part 10): reports by anyone who may see the
content, moderators' queue, hiding with a reason only the author (and moderators) see, restoring, and the events."""

from __future__ import annotations

import asyncio

from tests.harness import System, eventually
from tests.test_comments import Events, fields, ok, problem, signed_in


async def test_a_reported_post_hidden_by_a_moderator_is_gone_for_others_and_restored(system: System) -> None:
    author, author_token = await signed_in(system)
    reporter, reporter_token = await signed_in(system)
    _, moderator_token = await signed_in(system, groups=[system.settings.moderator_group])
    post = await ok(
        system,
        author_token,
        "POST",
        "/api/posts",
        201,
        json={"body": f"Krangel med @{reporter}", "kind": "praise", "recipients": [reporter]},
    )
    path = f"/api/posts/{post['id']}"

    bad = await problem(system, reporter_token, "POST", f"{path}/reports", 422, json={"reason": " "})
    assert fields(bad) == ["body.reason"]
    report = await ok(system, reporter_token, "POST", f"{path}/reports", 202, json={"reason": "Ufint"})
    again = await ok(system, reporter_token, "POST", f"{path}/reports", 202, json={"reason": "Ufint igjen"})
    assert again["id"] == report["id"] and report["status"] == "open" and report["comment_id"] is None

    for route in ("GET /api/moderation/reports", f"POST /api/moderation/posts/{post['id']}/hide"):
        method, route_path = route.split(" ")
        refused = await problem(system, reporter_token, method, route_path, 403, json={"reason": "Nei"})
        assert refused["status"] == 403
    queue = await ok(system, moderator_token, "GET", "/api/moderation/reports", params={"limit": 100})
    mine = [r for r in queue["items"] if r["id"] == report["id"]]
    assert len(mine) == 1 and mine[0]["reporter"]["id"] == reporter and mine[0]["content"]["author"]["id"] == author
    assert mine[0]["reason"] == "Ufint" and mine[0]["content"]["hidden_reason"] is None

    no_reason = await problem(system, moderator_token, "POST", f"/api/moderation/posts/{post['id']}/hide", 422)
    assert fields(no_reason) == ["body.reason"]
    async with Events(system, "content.moderated.v1").listening() as events:
        await asyncio.sleep(0.2)
        hidden = await ok(
            system, moderator_token, "POST", f"/api/moderation/posts/{post['id']}/hide", json={"reason": "Personangrep"}
        )
        assert hidden["hidden_reason"] == "Personangrep"
        envelope = await events.one("content.moderated.v1", post["id"])
        assert envelope["data"] == {
            "post_id": post["id"],
            "comment_id": None,
            "author_id": author,
            "hidden": True,
            "reason": "Personangrep",
            "version": envelope["data"]["version"],
        }

        await problem(system, reporter_token, "GET", path, 404)
        await problem(system, reporter_token, "GET", f"{path}/comments", 404)
        await problem(system, reporter_token, "POST", f"{path}/comments", 404, json={"body": "Hei"})
        assert (await ok(system, reporter_token, "GET", f"/api/people/{reporter}/praise"))["items"] == []
        assert (await ok(system, author_token, "GET", path))["hidden_reason"] == "Personangrep"
        assert (await ok(system, moderator_token, "GET", path))["hidden_reason"] == "Personangrep"
        closed = await ok(
            system, moderator_token, "GET", "/api/moderation/reports", params={"status": "closed", "limit": 100}
        )
        assert [r["resolution"] for r in closed["items"] if r["id"] == report["id"]] == ["hidden"]

        restored = await ok(system, moderator_token, "POST", f"/api/moderation/posts/{post['id']}/restore")
        assert restored["hidden_reason"] is None
        await events.one("content.moderated.v1", post["id"])

        async def restored_event() -> bool:
            return any(not e["data"]["hidden"] for e in events.received)

        await eventually(restored_event, message="the restore published")
    assert (await ok(system, reporter_token, "GET", path))["hidden_reason"] is None
    assert [p["id"] for p in (await ok(system, reporter_token, "GET", f"/api/people/{reporter}/praise"))["items"]] == [
        post["id"]
    ]


async def test_a_hidden_comment_leaves_the_list_and_the_count_but_its_author_sees_why(system: System) -> None:
    _, author_token = await signed_in(system)
    commenter, commenter_token = await signed_in(system)
    _, reader_token = await signed_in(system)
    _, moderator_token = await signed_in(system, groups=[system.settings.moderator_group])
    post = await ok(system, author_token, "POST", "/api/posts", 201, json={"body": "Diskusjon"})
    comment = await ok(system, commenter_token, "POST", f"/api/posts/{post['id']}/comments", 201, json={"body": "Tull"})
    await ok(
        system,
        reader_token,
        "POST",
        f"/api/posts/{post['id']}/comments",
        201,
        json={"body": "Svar", "parent_id": comment["id"]},
    )
    report = await ok(
        system, reader_token, "POST", f"/api/comments/{comment['id']}/reports", 202, json={"reason": "Spam"}
    )
    assert report["comment_id"] == comment["id"] and report["post_id"] == post["id"]
    await problem(
        system, commenter_token, "POST", f"/api/moderation/comments/{comment['id']}/hide", 403, json={"reason": "x"}
    )
    hidden = await ok(
        system, moderator_token, "POST", f"/api/moderation/comments/{comment['id']}/hide", json={"reason": "Reklame"}
    )
    assert hidden["hidden_reason"] == "Reklame"

    assert (await ok(system, reader_token, "GET", f"/api/posts/{post['id']}/comments"))["items"] == []
    assert (await ok(system, reader_token, "GET", f"/api/posts/{post['id']}"))["comment_count"] == 0
    await problem(system, reader_token, "POST", f"/api/comments/{comment['id']}/reports", 404, json={"reason": "Spam"})
    own = await ok(system, commenter_token, "GET", f"/api/posts/{post['id']}/comments")
    assert [(c["id"], c["hidden_reason"]) for c in own["items"]] == [(comment["id"], "Reklame")]
    assert own["items"][0]["author"]["id"] == commenter

    await ok(system, moderator_token, "POST", f"/api/moderation/comments/{comment['id']}/restore")
    listed = await ok(system, reader_token, "GET", f"/api/posts/{post['id']}/comments")
    assert [c["id"] for c in listed["items"]] == [comment["id"]] and len(listed["items"][0]["replies"]) == 1
    assert listed["items"][0]["hidden_reason"] is None
    assert (await ok(system, reader_token, "GET", f"/api/posts/{post['id']}"))["comment_count"] == 2
    # A moderator deletes what should not stay at all.
    await ok(system, moderator_token, "DELETE", f"/api/comments/{comment['id']}", 204)
    assert (await ok(system, reader_token, "GET", f"/api/posts/{post['id']}/comments"))["items"] == []
