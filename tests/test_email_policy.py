"""Email that respects attention, over the running system: an email that waits is skipped when its notification
is read or its reader active in the meantime, and sent (telling of everyone in the group) when not; the headers
of a real email, and its one-click unsubscribe (RFC 8058) posted as a mail client does, through the gateway,
after which that kind emails no more. (tests/test_stream.py covers the unsubscribe page and the token's other
forms; services/notifications/tests/test_mail_policy.py the policy in detail, with a clock it moves.)"""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import urlsplit

from tests.harness import System, eventually, random_id


async def _post(system: System, token: str) -> str:
    async with system.client(token) as client:
        reply = await client.post(
            "/api/posts", json={"body": "Forslag: felles lunsj", "kind": "idea", "audience": {"type": "everyone"}}
        )
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


async def _favourite(system: System, fan: str, post_id: str) -> None:
    async with system.client(system.token(fan, name=f"Fan {fan}")) as client:
        reply = await client.put(f"/api/posts/{post_id}/favourite")
    assert reply.status_code == 200, reply.text


def _mails_to(system: System, address: str) -> list[EmailMessage]:
    return [m for m in system.smtp.messages if m["To"].addresses[0].addr_spec == address]


async def test_one_click_unsubscribe_from_a_favourite_email_stops_the_next_one(system: System) -> None:
    author, first_fan, second_fan = random_id("author"), random_id("fan"), random_id("fan")
    address = f"{author}@example.org"
    author_token = system.token(author, name="Åse Author", email=address)
    first_post = await _post(system, author_token)
    await _favourite(system, first_fan, first_post)

    async def caught() -> list[EmailMessage]:
        return _mails_to(system, address)

    [message] = await eventually(caught, message="favourite email caught")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"] and message["Date"] and message["From"]
    link = urlsplit(message["List-Unsubscribe"].strip().removeprefix("<").removesuffix(">"))
    assert (link.scheme, link.netloc, link.path) == ("http", "tillit.test", "/api/unsubscribe")
    html = message.get_body(("html",))
    assert html is not None and "http://tillit.test/settings/notifications" in html.get_content()

    # What a mail client does for List-Unsubscribe-Post (RFC 8058 section 3.2): no cookies, no sign-in.
    async with system.client() as client:
        reply = await client.post(
            f"{link.path}?{link.query}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"kind": "favourite", "channel": "in_app"}
    async with system.client(author_token) as client:
        chosen = (await client.get("/api/me/notification-settings")).json()
    assert chosen["channels"]["favourite"] == "in_app"

    second_post = await _post(system, author_token)
    await _favourite(system, second_fan, second_post)

    async def second_notification() -> list[dict]:
        async with system.client(author_token) as client:
            items = (await client.get("/api/notifications")).json()["items"]
        return [n for n in items if n["post_id"] == second_post]

    # The favourite still notifies in the app; the email was never queued (it is written with the
    # notification, in one transaction), so none can follow.
    await eventually(second_notification, message="the second favourite reaches the inbox")
    conn = await system.db("notifications")
    try:
        queued = await conn.fetchval("SELECT count(*) FROM emails WHERE recipient_id = $1", author)
    finally:
        await conn.close()
    assert queued == 1
    assert len(_mails_to(system, address)) == 1


async def _like(system: System, liker: str, post_id: str) -> None:
    async with system.client(system.token(liker, name=f"Liker {liker}")) as client:
        reply = await client.put(f"/api/posts/{post_id}/like")
    assert reply.status_code == 200, reply.text


async def test_a_like_email_waits_and_is_skipped_when_read_or_active_and_sent_when_not(system: System) -> None:
    reader, active, away = random_id("reader"), random_id("active"), random_id("away")
    tokens = {p: system.token(p, name=f"Author {p}", email=f"{p}@example.org") for p in (reader, active, away)}
    posts = {}
    for person, token in tokens.items():
        async with system.client(token) as client:
            chosen = await client.put("/api/me/notification-settings", json={"channels": {"like": "email_now"}})
        assert chosen.status_code == 200, chosen.text
        posts[person] = await _post(system, token)
    first, second = random_id("liker"), random_id("liker")
    for person in tokens:
        await _like(system, first, posts[person])
    await _like(system, second, posts[away])

    conn = await system.db("notifications")
    try:

        async def queued() -> bool:
            emails = await conn.fetchval(
                "SELECT count(*) FROM emails WHERE recipient_id = ANY($1::text[])", list(tokens)
            )
            likers = await conn.fetchval(
                """SELECT count(*) FROM notification_actors a JOIN notifications n ON n.id = a.notification_id
                   WHERE n.recipient_id = $1""",
                away,
            )
            return bool(emails == 3 and likers == 2)

        await eventually(queued, message="an email waits for each author, both likes in the third's group")
        # Within the window: the reader reads, the active one opens the inbox, the third does nothing.
        async with system.client(tokens[reader]) as client:
            assert (await client.post("/api/notifications/read", json={"all": True})).status_code == 204
        async with system.client(tokens[active]) as client:
            assert (await client.get("/api/notifications")).status_code == 200
        # The window (2 minutes here) ends now, rather than making the test wait for it.
        await conn.execute(
            "UPDATE emails SET next_attempt_at = now() WHERE recipient_id = ANY($1::text[])", list(tokens)
        )

        async def settled() -> dict:
            rows = await conn.fetch(
                """SELECT recipient_id, status, last_error FROM emails
                   WHERE recipient_id = ANY($1::text[]) AND status NOT IN ('pending', 'sending')""",
                list(tokens),
            )
            return {r["recipient_id"]: (r["status"], r["last_error"]) for r in rows} if len(rows) == 3 else {}

        outcome = await eventually(settled, message="every email decided")
    finally:
        await conn.close()
    assert outcome == {
        reader: ("skipped", "read in the app"),
        active: ("skipped", "active in the app"),
        away: ("sent", None),
    }
    assert not _mails_to(system, f"{reader}@example.org") and not _mails_to(system, f"{active}@example.org")
    [message] = _mails_to(system, f"{away}@example.org")
    # Written when sent, from the group as it is then: both likers, the newest named.
    assert message["Subject"] == f"Liker {second} and 1 other liked your post"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
