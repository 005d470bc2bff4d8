"""The first recognition loop end to end through the gateway: post -> like/favourite -> counters,
notifications and email, over the real RabbitMQ and PostgreSQL."""

import uuid

from tests.harness import System, eventually, random_id


async def _post(system: System, token: str, body: str = "Halvferdig idé: kan vi dele ukeplanen?") -> dict:
    async with system.client(token) as client:
        reply = await client.post("/api/posts", json={"body": body, "kind": "idea", "audience": {"type": "everyone"}})
    assert reply.status_code == 201, reply.text
    return reply.json()


async def test_a_like_reaches_counters_and_the_authors_inbox(system: System) -> None:
    author, liker = random_id("author"), random_id("liker")
    author_token, liker_token = system.token(author, name="Åse Author"), system.token(liker, name="Lars Liker")
    post = await _post(system, author_token, "  Del gjerne innspill  ")
    assert post["body"] == "Del gjerne innspill"
    assert post["author"] == {"id": author, "name": "Åse Author"}
    assert (post["like_count"], post["liked_by_me"]) == (0, False)

    async with system.client(liker_token) as client:
        first = await client.put(f"/api/posts/{post['id']}/like")
        second = await client.put(f"/api/posts/{post['id']}/like")
    assert first.json() == {"liked": True, "like_count": 1}
    assert second.json() == {"liked": True, "like_count": 1}, "liking twice is one like"

    async def counted() -> dict | None:
        async with system.client(liker_token) as client:
            seen = (await client.get(f"/api/posts/{post['id']}")).json()
        return seen if seen["like_count"] == 1 else None

    seen = await eventually(counted, message="like count reaches the post")
    assert seen["liked_by_me"] is True and seen["favourited_by_me"] is False

    async def inbox() -> dict | None:
        async with system.client(author_token) as client:
            page = (await client.get("/api/notifications")).json()
        return page if page["items"] else None

    page = await eventually(inbox, message="notification reaches the author")
    assert page["unread"] == 1
    [notification] = page["items"]
    assert notification["kind"] == "post.liked"
    assert notification["post_id"] == post["id"]
    assert notification["actors"] == [{"id": liker, "name": "Lars Liker"}]
    assert notification["actor_count"] == 1 and notification["read"] is False

    async with system.client(liker_token) as client:
        likers = (await client.get(f"/api/posts/{post['id']}/likes")).json()
    assert likers == {"items": [{"id": liker, "name": "Lars Liker"}], "next_cursor": None}
    # A like notifies in-app only.
    assert not [m for m in system.smtp.messages if post["id"] in str(m.get_body(("plain",)))]


async def test_a_favourite_emails_the_author_who_favourited_which_post(system: System) -> None:
    author, fan = random_id("author"), random_id("fan")
    author_token = system.token(author, name="Åse Author", email=f"{author}@example.org")
    fan_token = system.token(fan, name="Frida Fan")
    post = await _post(system, author_token, "Forslag: felles lunsj på fredager")

    async with system.client(fan_token) as client:
        reply = await client.put(f"/api/posts/{post['id']}/favourite")
        assert reply.json() == {"favourited": True, "favourite_count": 1}
        # Taking it back and giving it again does not send a second email.
        await client.delete(f"/api/posts/{post['id']}/favourite")
        await client.put(f"/api/posts/{post['id']}/favourite")

    def mails() -> list:
        return [m for m in system.smtp.messages if m["To"].addresses[0].addr_spec == f"{author}@example.org"]

    async def caught() -> list:
        return mails()

    [message] = await eventually(caught, message="favourite email caught")
    assert "Frida Fan" in message["Subject"]
    assert message["Message-ID"] and message["Date"] and "Tillit" in message["From"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    link = f"http://tillit.test/posts/{post['id']}"
    for part in (text, html):
        assert "Frida Fan" in part and "Forslag: felles lunsj" in part and link in part

    async with system.client(fan_token) as client:
        favourites = (await client.get("/api/me/favourites")).json()
    assert [item["id"] for item in favourites["items"]] == [post["id"]]
    assert favourites["items"][0]["favourited_by_me"] is True

    async def favourite_notification() -> list:
        async with system.client(author_token) as client:
            items = (await client.get("/api/notifications")).json()["items"]
        return [n for n in items if n["kind"] == "post.favourited" and n["actor_count"] == 1]

    await eventually(favourite_notification, message="favourite notification")
    assert len(mails()) == 1


async def test_likes_group_into_one_notification_newest_first_and_mark_read(system: System) -> None:
    author = random_id("author")
    author_token = system.token(author)
    post = await _post(system, author_token)
    likers = [random_id("liker") for _ in range(3)]
    for liker in likers:
        async with system.client(system.token(liker, name=f"Name {liker}")) as client:
            assert (await client.put(f"/api/posts/{post['id']}/like")).status_code == 200

    async def grouped() -> dict | None:
        async with system.client(author_token) as client:
            page = (await client.get("/api/notifications")).json()
        return page if page["items"] and page["items"][0]["actor_count"] == 3 else None

    page = await eventually(grouped, message="three likes in one group")
    assert len(page["items"]) == 1 and page["unread"] == 1
    assert [a["id"] for a in page["items"][0]["actors"]] == list(reversed(likers))

    async with system.client(author_token) as client:
        assert (await client.post("/api/notifications/read", json={"all": True})).status_code == 204
        page = (await client.get("/api/notifications")).json()
    assert page["unread"] == 0 and page["items"][0]["read"] is True


async def test_no_notification_for_your_own_post_and_unlike_leaves_the_group(system: System) -> None:
    author, other = random_id("author"), random_id("other")
    author_token, other_token = system.token(author), system.token(other)
    post = await _post(system, author_token)
    async with system.client(author_token) as client:
        assert (await client.put(f"/api/posts/{post['id']}/like")).json() == {"liked": True, "like_count": 1}
    async with system.client(other_token) as client:
        assert (await client.put(f"/api/posts/{post['id']}/like")).json()["like_count"] == 2
        assert (await client.delete(f"/api/posts/{post['id']}/like")).json() == {"liked": False, "like_count": 1}
        assert (await client.delete(f"/api/posts/{post['id']}/like")).json() == {"liked": False, "like_count": 1}

    async def settled() -> dict | None:
        async with system.client(author_token) as client:
            seen = (await client.get(f"/api/posts/{post['id']}")).json()
        return seen if seen["like_count"] == 1 else None

    await eventually(settled, message="count settles at the author's own like")
    conn = await system.db("notifications")
    try:

        async def applied() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) = 1 FROM reaction_states WHERE post_id = $1", uuid.UUID(post["id"])
                )
            )

        await eventually(applied, message="unlike applied")
    finally:
        await conn.close()
    async with system.client(author_token) as client:
        page = (await client.get("/api/notifications")).json()
    assert page["items"] == [] and page["next_cursor"] is None and page["unread"] == 0


async def test_a_deleted_post_cannot_be_liked_and_leaves_inboxes(system: System) -> None:
    author, liker = random_id("author"), random_id("liker")
    author_token, liker_token = system.token(author), system.token(liker)
    post = await _post(system, author_token)
    async with system.client(liker_token) as client:
        await client.put(f"/api/posts/{post['id']}/like")

    async def notified() -> bool:
        async with system.client(author_token) as client:
            return bool((await client.get("/api/notifications")).json()["items"])

    await eventually(notified, message="like notified")
    async with system.client(author_token) as client:
        assert (await client.delete(f"/api/posts/{post['id']}")).status_code == 204
        assert (await client.get(f"/api/posts/{post['id']}")).status_code == 404

    async def gone() -> bool:
        async with system.client(liker_token) as client:
            reply = await client.put(f"/api/posts/{post['id']}/like")
        return reply.status_code == 404

    await eventually(gone, message="a deleted post cannot be liked")

    async def inbox_empty() -> bool:
        async with system.client(author_token) as client:
            return (await client.get("/api/notifications")).json()["items"] == []

    await eventually(inbox_empty, message="notifications of a deleted post go")


async def test_cursor_pages_of_likers_and_favourites(system: System) -> None:
    author_token = system.token()
    post = await _post(system, author_token)
    likers = [random_id("liker") for _ in range(5)]
    for liker in likers:
        async with system.client(system.token(liker)) as client:
            await client.put(f"/api/posts/{post['id']}/like")
    seen: list[str] = []
    cursor = None
    async with system.client(author_token) as client:
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await client.get(f"/api/posts/{post['id']}/likes", params=params)).json()
            seen += [p["id"] for p in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == list(reversed(likers))

    fan_token = system.token()
    posts = [await _post(system, author_token, f"post {i}") for i in range(3)]
    async with system.client(fan_token) as client:
        for p in posts:
            await client.put(f"/api/posts/{p['id']}/favourite")
        first = (await client.get("/api/me/favourites", params={"limit": 2})).json()
        second = (await client.get("/api/me/favourites", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [p["id"] for p in first["items"] + second["items"]] == [p["id"] for p in reversed(posts)]
    assert second["next_cursor"] is None


async def test_me_is_created_from_the_token(system: System) -> None:
    user = random_id("me")
    async with system.client(system.token(user, name="Mona Me", email="mona@example.org", locale="nb")) as client:
        reply = await client.get("/api/me")
    assert reply.status_code == 200
    me = reply.json()
    assert {k: me[k] for k in ("id", "name", "email", "locale")} == {
        "id": user,
        "name": "Mona Me",
        "email": "mona@example.org",
        "locale": "nb",
    }
    assert me["completeness"]["percent"] == 0
