"""Email that respects attention, over the running system: the headers of a real email, and its one-click
unsubscribe (RFC 8058) posted as a mail client does, through the gateway, after which that kind emails no more.
(tests/test_stream.py covers the unsubscribe page and the token's other forms.)"""

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
