"""Notifications over the real services: grouping under concurrency, follows, per-person choices, languages,
and the numbered change stream that SSE resumes from (issue 4)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx

from shared.events import Envelope, EventType, PersonRef, PostFavouritedV1, PostUnfavouritedV1, new_envelope
from tests.harness import System, eventually, random_id
from tests.test_reliability import publish


async def _signed_in(system: System, person: str, **claims: Any) -> str:
    token = system.token(person, name=f"Name {person}", **claims)
    async with system.client(token) as client:
        assert (await client.get("/api/me")).status_code == 200
    return token


async def _post(system: System, token: str) -> dict[str, Any]:
    async with system.client(token) as client:
        reply = await client.post("/api/posts", json={"body": "Kaffe og kanelboller på kjøkkenet"})
    assert reply.status_code == 201, reply.text
    post: dict[str, Any] = reply.json()
    return post


async def _inbox(system: System, token: str) -> dict[str, Any]:
    async with system.client(token) as client:
        reply = await client.get("/api/notifications", params={"limit": 100})
    assert reply.status_code == 200, reply.text
    page: dict[str, Any] = reply.json()
    return page


def _service(system: System, token: str) -> httpx.AsyncClient:
    """The notifications service itself, for what the gateway reaches only through the stream."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{system.ports['notifications']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )


async def test_concurrent_likes_from_many_people_make_one_group_with_every_name(system: System) -> None:
    author = random_id("author")
    author_token = await _signed_in(system, author)
    post = await _post(system, author_token)
    likers = [random_id("liker") for _ in range(40)]

    async def like(liker: str) -> None:
        async with system.client(system.token(liker, name=f"Name {liker}")) as client:
            assert (await client.put(f"/api/posts/{post['id']}/like")).status_code == 200

    await asyncio.gather(*(like(liker) for liker in likers))

    async def all_in() -> dict[str, Any] | None:
        page = await _inbox(system, author_token)
        return page if page["items"] and page["items"][0]["actor_count"] == len(likers) else None

    page = await eventually(all_in, timeout=20, message="forty likes in one group")
    assert len(page["items"]) == 1 and page["unread"] == 1
    group = page["items"][0]
    assert sorted(actor["id"] for actor in group["actors"]) == sorted(likers)
    assert group["title"] == f"{group['actors'][0]['name']} and 39 others liked your post"
    assert group["url"] == f"http://tillit.test/posts/{post['id']}"
    assert group["post_id"] == post["id"] and group["kind"] == "post.liked"


async def test_titles_follow_the_readers_language(system: System) -> None:
    author = random_id("author")
    author_token = await _signed_in(system, author, locale="nb-NO")
    post = await _post(system, author_token)
    async with system.client(system.token(random_id("liker"), name="Kari")) as client:
        assert (await client.put(f"/api/posts/{post['id']}/favourite")).status_code == 200

    async def favourited() -> dict[str, Any] | None:
        page = await _inbox(system, author_token)
        return page["items"][0] if page["items"] else None

    notification = await eventually(favourited, message="the favourite notified")
    assert notification["title"] == "Kari la innlegget ditt til i favoritter"
    # A choice in the settings wins over the token's claim.
    async with system.client(author_token) as client:
        assert (await client.put("/api/me/notification-settings", json={"locale": "en"})).status_code == 200
    assert (await _inbox(system, author_token))["items"][0]["title"] == "Kari favourited your post"


async def test_follows_group_and_an_unfollow_leaves_the_unread_group(system: System) -> None:
    followed = random_id("followed")
    followed_token = await _signed_in(system, followed)
    followers = [random_id("follower") for _ in range(3)]
    for follower in followers:
        async with system.client(system.token(follower, name=f"Name {follower}")) as client:
            assert (await client.put(f"/api/people/{followed}/follow")).status_code == 200

    async def three() -> dict[str, Any] | None:
        page = await _inbox(system, followed_token)
        return page["items"][0] if page["items"] and page["items"][0]["actor_count"] == 3 else None

    group = await eventually(three, message="three follows in one group")
    assert group["kind"] == "person.followed" and group["post_id"] is None
    assert group["title"] == f"Name {followers[-1]} and 2 others followed you"
    async with system.client(system.token(followers[0])) as client:
        assert (await client.delete(f"/api/people/{followed}/follow")).status_code == 200

    async def two() -> dict[str, Any] | None:
        page = await _inbox(system, followed_token)
        return page["items"][0] if page["items"] and page["items"][0]["actor_count"] == 2 else None

    group = await eventually(two, message="the unfollow left the group")
    assert [a["id"] for a in group["actors"]] == [followers[2], followers[1]]


async def test_settings_default_merge_and_refuse_what_is_not_a_choice(system: System) -> None:
    person = random_id("person")
    token = await _signed_in(system, person)
    async with system.client(token) as client:
        defaults = (await client.get("/api/me/notification-settings")).json()
        assert defaults["channels"]["favourite"] == "email_now" and defaults["channels"]["like"] == "in_app"
        assert defaults["time_zone"] == "Europe/Oslo" and defaults["quiet_hours"] is None

        changed = await client.put(
            "/api/me/notification-settings",
            json={
                "channels": {"like": "email_digest"},
                "digest": "weekly",
                "digest_weekday": 5,
                "time_zone": "America/New_York",
                "quiet_hours": {"start": "22:00", "end": "07:00"},
            },
        )
        assert changed.status_code == 200, changed.text
        settings = changed.json()
        assert settings["channels"]["like"] == "email_digest" and settings["channels"]["favourite"] == "email_now"
        assert settings["quiet_hours"] == {"start": "22:00", "end": "07:00"} and settings["digest_weekday"] == 5

        # Fields left out keep their value; null turns quiet hours off.
        settings = (await client.put("/api/me/notification-settings", json={"quiet_hours": None})).json()
        assert settings["quiet_hours"] is None and settings["time_zone"] == "America/New_York"

        for body, field in [
            ({"time_zone": "Mars/Olympus"}, "body.time_zone"),
            ({"channels": {"like": "pigeon"}}, "body.channels.like"),
            ({"channels": {"gossip": "off"}}, "body.channels.gossip.[key]"),  # the key itself is wrong
            ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "body.quiet_hours.start"),
            ({"digest_hour": 24}, "body.digest_hour"),
        ]:
            reply = await client.put("/api/me/notification-settings", json=body)
            assert reply.status_code == 422, body
            assert reply.headers["content-type"].startswith("application/problem+json")
            assert field in [error["field"] for error in reply.json()["errors"]], reply.json()


async def test_a_kind_turned_off_makes_no_notification(system: System) -> None:
    author = random_id("author")
    author_token = await _signed_in(system, author)
    async with system.client(author_token) as client:
        reply = await client.put("/api/me/notification-settings", json={"channels": {"like": "off"}})
        assert reply.status_code == 200
    post = await _post(system, author_token)
    async with system.client(system.token(random_id("liker"))) as client:
        assert (await client.put(f"/api/posts/{post['id']}/like")).status_code == 200
        assert (await client.put(f"/api/posts/{post['id']}/favourite")).status_code == 200

    async def favourite_arrived() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = (await _inbox(system, author_token))["items"]
        return items if items else None

    # The favourite came through the same pipeline after the like: the like, turned off, left nothing.
    items = await eventually(favourite_arrived, message="the favourite notified")
    assert [item["kind"] for item in items] == ["post.favourited"]


async def test_changes_replay_what_a_reader_missed_in_order(system: System) -> None:
    author = random_id("author")
    author_token = await _signed_in(system, author)
    post = await _post(system, author_token)
    start = (await _inbox(system, author_token))["seq"]
    liker = random_id("liker")
    liker_token = system.token(liker, name="Liker")
    async with system.client(liker_token) as client:
        assert (await client.put(f"/api/posts/{post['id']}/like")).status_code == 200

    async with _service(system, author_token) as service:

        async def changed() -> dict[str, Any] | None:
            found: dict[str, Any] = (await service.get("/notifications/changes", params={"after": start})).json()
            return found if found["items"] else None

        changes = await eventually(changed, message="the like is a change")
        assert changes["seq"] > start and changes["unread"] == 1 and not changes["reset"]
        [notification] = changes["items"]
        assert notification["title"] == "Liker liked your post" and notification["read"] is False
        seen = changes["seq"]

        async with system.client(author_token) as client:
            assert (await client.post("/api/notifications/read", json={"all": True})).status_code == 204
        changes = (await service.get("/notifications/changes", params={"after": seen})).json()
        assert changes["seq"] == seen + 1 and changes["unread"] == 0
        assert [(n["id"], n["read"]) for n in changes["items"]] == [(notification["id"], True)]

        # Nothing after the newest; a number from the future (another database, say) asks for a reload.
        nothing = (await service.get("/notifications/changes", params={"after": changes["seq"]})).json()
        assert nothing["items"] == [] and nothing["removed"] == [] and not nothing["reset"]
        future = (await service.get("/notifications/changes", params={"after": changes["seq"] + 100})).json()
        assert future["reset"] is True


async def test_an_unlike_that_empties_a_group_is_replayed_as_removed(system: System) -> None:
    author = random_id("author")
    author_token = await _signed_in(system, author)
    post = await _post(system, author_token)
    async with system.client(system.token(random_id("liker"))) as client:
        assert (await client.put(f"/api/posts/{post['id']}/like")).status_code == 200

        async def grouped() -> dict[str, Any] | None:
            page = await _inbox(system, author_token)
            return page if page["items"] else None

        page = await eventually(grouped, message="the like notified")
        assert (await client.delete(f"/api/posts/{post['id']}/like")).status_code == 200

    async with _service(system, author_token) as service:

        async def removed() -> dict[str, Any] | None:
            found: dict[str, Any] = (await service.get("/notifications/changes", params={"after": page["seq"]})).json()
            return found if found["removed"] else None

        changes = await eventually(removed, message="the empty group is gone")
    assert changes["removed"] == [page["items"][0]["id"]] and changes["items"] == [] and changes["unread"] == 0


async def _events_of(system: System, routing_key: str) -> AsyncIterator[dict[str, Any]]:
    connection = await aio_pika.connect(system.rabbitmq_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{system.namespace}.events")
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=routing_key)
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    yield json.loads(message.body)
    finally:
        await connection.close()


async def test_each_change_is_published_once_numbered_for_its_recipient(system: System) -> None:
    author = random_id("author")
    author_token = await _signed_in(system, author)
    post = await _post(system, author_token)
    received: list[dict[str, Any]] = []
    subscribed = asyncio.Event()

    async def listen() -> None:
        events = _events_of(system, "notification.changed.v1")
        subscribed.set()
        async for envelope in events:
            if envelope["data"]["recipient_id"] == author:
                received.append(envelope)

    listener = asyncio.create_task(listen())
    await subscribed.wait()
    await asyncio.sleep(0.3)  # the queue is bound
    try:
        likers = [random_id("liker") for _ in range(3)]
        for liker in likers:
            async with system.client(system.token(liker, name=f"Name {liker}")) as client:
                assert (await client.put(f"/api/posts/{post['id']}/like")).status_code == 200

        async def all_three() -> bool:
            return bool(received) and received[-1]["data"]["items"][0]["actor_count"] == 3

        await eventually(all_three, message="the third like published")
    finally:
        listener.cancel()
    seqs = [envelope["data"]["seq"] for envelope in received]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "one number per change, none skipped or repeated"
    last = received[-1]
    assert last["type"] == "notification.changed.v1" and last["source"] == "notifications"
    assert last["data"]["unread"] == 1 and last["data"]["removed"] == []
    assert last["data"]["items"][0]["title"] == f"Name {likers[-1]} and 2 others liked your post"


def _favourite(*, post_id: str, author: str, actor: str, favourited: bool, version: int) -> Envelope:
    model, event_type = (
        (PostFavouritedV1, EventType.POST_FAVOURITED)
        if favourited
        else (PostUnfavouritedV1, EventType.POST_UNFAVOURITED)
    )
    data = model(
        post_id=uuid.UUID(post_id),
        post_author_id=author,
        actor=PersonRef(id=actor, name=f"Name {actor}"),
        like_count=0,
        favourite_count=1 if favourited else 0,
        version=version,
        occurred_at=datetime.now(UTC),
    )
    return new_envelope(event_type, source="reactions", subject=post_id, data=data)


async def test_a_favourite_delivered_again_or_repeated_never_sends_a_second_email(system: System) -> None:
    author = random_id("author")
    author_token = await _signed_in(system, author)
    post = await _post(system, author_token)
    actor = random_id("actor")
    favourite = _favourite(post_id=post["id"], author=author, actor=actor, favourited=True, version=1)

    def emails() -> list[Any]:
        return [m for m in system.smtp.messages if m["To"].addresses[0].addr_spec == f"{author}@tillit.test"]

    # The same event twice back to back (one batch, likely), then again once its email has gone.
    await publish(system.namespace, [favourite, favourite])

    async def sent() -> list[Any]:
        return emails()

    await eventually(sent, timeout=15, message="the favourite emails its author")
    await publish(system.namespace, [favourite])
    # Taken back and given again: new events, the same favourite of the same post by the same person.
    await publish(
        system.namespace,
        [
            _favourite(post_id=post["id"], author=author, actor=actor, favourited=False, version=2),
            _favourite(post_id=post["id"], author=author, actor=actor, favourited=True, version=3),
        ],
    )
    conn = await system.db("notifications")
    try:

        async def all_applied() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT version = 3 FROM reaction_states WHERE post_id = $1 AND actor_id = $2",
                    uuid.UUID(post["id"]),
                    actor,
                )
            )

        await eventually(all_applied, message="the repeat applied")
        duplicates = await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", favourite.id)
        assert duplicates == 1
    finally:
        await conn.close()
    await asyncio.sleep(1.5)  # the mailer polls every second: a second email would be out by now
    assert len(emails()) == 1
