"""Live notifications over Server-Sent Events (GET /api/stream): a change reaches the recipient's open streams
and nobody else's, a client that reconnects with Last-Event-ID gets exactly what it missed, every gateway
replica serves its own clients, and a broker outage ends streams so that their clients catch up."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import anyio
import httpx
import orjson
import pytest
import sse_starlette
from httpx_sse import ServerSentEvent, aconnect_sse

from services.gateway.stream import LiveNotifications, notification_events
from services.gateway.upstream import UpstreamReply, Upstreams
from shared.broker import Topology
from shared.events import EventType, NotificationChangedV1, NotificationView, PersonRef, new_envelope
from shared.settings import Settings
from tests.harness import AMQP_URL, ROOT, System, TcpProxy, eventually, free_port, random_id

# Longer than the 15 s between pings, so an idle stream is not a read timeout.
STREAM_TIMEOUT = httpx.Timeout(10, read=60)


class OpenStream:
    """One client's GET /api/stream, read in the background; `next()` is its next message (pings skipped)."""

    def __init__(
        self, base_url: str, token: str | None, headers: dict[str, str] | None, params: dict[str, Any]
    ) -> None:
        self.base_url = base_url
        self.token = token
        self.params = {k: str(v) for k, v in params.items()}
        self.headers = headers or {}
        self.messages: asyncio.Queue[ServerSentEvent | None] = asyncio.Queue()
        self.status: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> OpenStream:
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        headers = {**self.headers, **({"Authorization": f"Bearer {self.token}"} if self.token else {})}
        try:
            async with (
                httpx.AsyncClient(base_url=self.base_url, timeout=STREAM_TIMEOUT) as client,
                aconnect_sse(client, "GET", "/api/stream", params=self.params, headers=headers) as source,
            ):
                self.status.set_result(source.response.status_code)
                if source.response.status_code != 200:
                    return
                async for message in source.aiter_sse():
                    if message.data or message.event != "message":
                        await self.messages.put(message)
        except httpx.HTTPError:
            pass  # the server went away: the stream has ended, which `ended` says
        finally:
            self.ended.set()
            await self.messages.put(None)

    async def next(self, timeout: float = 15) -> ServerSentEvent:
        message = await asyncio.wait_for(self.messages.get(), timeout)
        assert message is not None, "the stream ended"
        return message

    async def assert_ends(self, timeout: float = 15) -> None:
        await asyncio.wait_for(self.ended.wait(), timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@contextlib.asynccontextmanager
async def streaming(
    base_url: str, token: str | None, *, headers: dict[str, str] | None = None, **params: Any
) -> AsyncIterator[OpenStream]:
    stream = OpenStream(base_url, token, headers, params).start()
    try:
        yield stream
    finally:
        await stream.close()


async def first_message(stream: OpenStream) -> ServerSentEvent:
    """The message every stream starts with; its id is where the client stands."""
    message = await stream.next()
    assert message.retry == 3000
    assert message.id is not None and int(message.id) >= 0
    return message


def data(message: ServerSentEvent) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(message.data)
    return parsed


async def create_post(system: System, token: str) -> str:
    async with system.client(token) as client:
        reply = await client.post("/api/posts", json={"body": "Hvem vil teste strømmen?", "kind": "question"})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


async def like(system: System, token: str, post_id: str) -> None:
    async with system.client(token) as client:
        reply = await client.put(f"/api/posts/{post_id}/like")
    assert reply.status_code == 200, reply.text


async def inbox(system: System, token: str) -> dict[str, Any]:
    async with system.client(token) as client:
        reply = await client.get("/api/notifications")
    assert reply.status_code == 200, reply.text
    page: dict[str, Any] = reply.json()
    return page


# End to end: a like on the author's open stream --------------------------------------------------------------


async def test_a_like_arrives_on_the_authors_open_stream_and_nowhere_else(system: System) -> None:
    author, liker = random_id("author"), random_id("liker")
    author_token = system.token(author, name="Åse Author")
    liker_token = system.token(liker, name="Lars Liker")
    post_id = await create_post(system, author_token)

    async with (
        streaming(system.base_url, None, access_token=author_token) as authors,
        streaming(system.base_url, liker_token) as likers,
    ):
        start = await first_message(authors)
        assert start.event == "unread"
        assert data(start) == {"seq": int(start.id), "unread": 0}
        liker_start = await first_message(likers)
        await like(system, liker_token, post_id)

        change = await authors.next()
        assert change.event == "notifications"
        assert int(change.id) == int(start.id) + 1
        body = data(change)
        assert body["seq"] == int(change.id) and body["unread"] == 1 and body["removed"] == []
        [item] = body["items"]
        assert item["kind"] == "post.liked" and item["post_id"] == post_id and item["read"] is False
        assert item["actors"] == [{"id": liker, "name": "Lars Liker"}] and item["actor_count"] == 1
        assert "Lars Liker" in item["title"]
        assert item["url"].endswith(f"/posts/{post_id}")
        # The stream's items are the inbox's: the same notification, field for field.
        assert (await inbox(system, author_token))["items"] == [item]

        # The liker's stream got nothing of the author's: its next message is its own, a new follower.
        async with system.client(author_token) as client:
            assert (await client.put(f"/api/people/{liker}/follow")).status_code == 200
        own = await likers.next()
        assert own.event == "notifications" and int(own.id) == int(liker_start.id) + 1
        [followed] = data(own)["items"]
        assert followed["kind"] == "person.followed" and followed["actors"][0]["id"] == author


# Resume: what a dropped connection missed, once ---------------------------------------------------------------


async def test_reconnecting_with_last_event_id_gets_exactly_what_was_missed(system: System) -> None:
    author = random_id("author")
    first_liker, second_liker, third_liker = (random_id("liker") for _ in range(3))
    author_token = system.token(author)
    post_id = await create_post(system, author_token)

    async with streaming(system.base_url, author_token) as stream:
        start = await first_message(stream)
        await like(system, system.token(first_liker, name="Første"), post_id)
        seen = await stream.next()
        assert int(seen.id) == int(start.id) + 1 and data(seen)["unread"] == 1
        [notification] = data(seen)["items"]

    # Offline: a second like joins the same notification, then the author reads everything elsewhere.
    await like(system, system.token(second_liker, name="Andre"), post_id)

    async def both_actors() -> dict[str, Any] | None:
        page = await inbox(system, author_token)
        return page if page["items"] and page["items"][0]["actor_count"] == 2 else None

    await eventually(both_actors, message="the second like reaches the inbox")
    async with system.client(author_token) as client:
        assert (await client.post("/api/notifications/read", json={"all": True})).status_code == 204
    offline = await inbox(system, author_token)
    assert offline["unread"] == 0 and offline["seq"] == int(seen.id) + 2

    async with streaming(system.base_url, author_token, headers={"Last-Event-ID": seen.id}) as stream:
        caught_up = await first_message(stream)
        assert caught_up.event == "notifications"
        assert int(caught_up.id) == offline["seq"]
        body = data(caught_up)
        assert body["unread"] == 0 and body["removed"] == []
        [item] = body["items"]
        assert item["id"] == notification["id"] and item["read"] is True and item["actor_count"] == 2
        assert [actor["name"] for actor in item["actors"]] == ["Andre", "Første"]
        assert body["items"] == offline["items"]

        # Nothing twice: the next message is the next change, not any of the two replayed.
        await like(system, system.token(third_liker, name="Tredje"), post_id)
        live = await stream.next()
        assert int(live.id) == offline["seq"] + 1
        assert data(live)["unread"] == 1 and data(live)["items"][0]["actors"][0]["name"] == "Tredje"

    # The query parameter resumes too (for clients that cannot set the header), and with nothing missed the
    # stream says where the client stands.
    async with streaming(system.base_url, author_token, last_event_id=live.id) as stream:
        current = await first_message(stream)
        assert current.event == "unread" and data(current) == {"seq": int(live.id), "unread": 1}


async def test_an_id_the_notifications_service_cannot_replay_asks_the_client_to_reload(system: System) -> None:
    token = system.token()
    async with streaming(system.base_url, token, last_event_id=10**9) as stream:
        reset = await first_message(stream)
    assert reset.event == "reset"
    assert data(reset) == {"seq": 0, "unread": 0} and reset.id == "0"


# Fan-in: a change on the exchange reaches its recipient's streams only ------------------------------------------


def change_of(recipient_id: str, seq: int, *, title: str = "", unread: int = 0) -> NotificationChangedV1:
    now = datetime.now(UTC)
    return NotificationChangedV1(
        recipient_id=recipient_id,
        seq=seq,
        items=[
            NotificationView(
                id=uuid.uuid4(),
                kind="post.liked",
                post_id=uuid.uuid4(),
                actors=[PersonRef(id="someone", name="Someone")],
                actor_count=1,
                read=False,
                title=title or f"change {seq}",
                url="http://tillit.test/posts/x",
                created_at=now,
                updated_at=now,
            )
        ],
        removed=[],
        unread=unread,
    )


def notification_changed(recipient_id: str, seq: int, *, title: str, unread: int) -> bytes:
    change = change_of(recipient_id, seq, title=title, unread=unread)
    envelope = new_envelope(EventType.NOTIFICATION_CHANGED, source="notifications", subject=recipient_id, data=change)
    return envelope.model_dump_json().encode()


@contextlib.asynccontextmanager
async def events_exchange(system: System) -> AsyncIterator[aio_pika.abc.AbstractExchange]:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        yield await channel.get_exchange(f"{system.namespace}.events")
    finally:
        await connection.close()


async def publish(exchange: aio_pika.abc.AbstractExchange, body: bytes) -> None:
    await exchange.publish(
        aio_pika.Message(body, content_type="application/json"), routing_key=EventType.NOTIFICATION_CHANGED.value
    )


async def test_a_change_on_the_exchange_reaches_exactly_its_recipients_streams(system: System) -> None:
    # People the notifications service has never heard of: their change numbers start at 0, and nothing but
    # this test's events changes them.
    kari, ola = random_id("kari"), random_id("ola")
    kari_token, ola_token = system.token(kari), system.token(ola)
    async with (
        events_exchange(system) as exchange,
        streaming(system.base_url, kari_token) as karis_laptop,
        streaming(system.base_url, kari_token) as karis_phone,
        streaming(system.base_url, ola_token) as olas,
    ):
        for stream in (karis_laptop, karis_phone, olas):
            assert data(await first_message(stream)) == {"seq": 0, "unread": 0}
        await publish(exchange, notification_changed(kari, 1, title="for Kari", unread=1))
        await publish(exchange, notification_changed(ola, 1, title="for Ola", unread=4))
        # A duplicate delivery of a change already sent is dropped.
        await publish(exchange, notification_changed(kari, 1, title="for Kari, again", unread=1))
        await publish(exchange, notification_changed(kari, 2, title="for Kari, next", unread=2))

        for stream in (karis_laptop, karis_phone):
            first, second = await stream.next(), await stream.next()
            assert (first.id, data(first)["items"][0]["title"], data(first)["unread"]) == ("1", "for Kari", 1)
            assert (second.id, data(second)["items"][0]["title"]) == ("2", "for Kari, next")
        only = await olas.next()
        assert (only.id, data(only)["items"][0]["title"], data(only)["unread"]) == ("1", "for Ola", 4)
        assert olas.messages.empty()


# Authentication -----------------------------------------------------------------------------------------------


async def test_a_stream_needs_a_valid_token(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=10) as client:
        for params, headers in (
            ({}, {}),
            ({"access_token": "not-a-token"}, {}),
            ({}, {"Authorization": "Bearer not-a-token"}),
        ):
            reply = await client.get("/api/stream", params=params, headers=headers)
            assert reply.status_code == 401, reply.text
            assert reply.headers["content-type"] == "application/problem+json"
            assert reply.json()["status"] == 401
        reply = await client.get("/api/stream", params={"access_token": system.token(), "last_event_id": "soon"})
        assert reply.status_code == 422
        assert reply.json()["errors"][0]["field"] == "query.last_event_id"


async def test_the_stream_is_event_stream_and_unbuffered(system: System) -> None:
    async with (
        httpx.AsyncClient(base_url=system.base_url, timeout=STREAM_TIMEOUT) as client,
        client.stream("GET", "/api/stream", params={"access_token": system.token()}) as reply,
    ):
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert reply.headers["cache-control"] == "no-cache"
        assert reply.headers["x-accel-buffering"] == "no"
        first = b""
        async for chunk in reply.aiter_bytes():
            first += chunk
            if b"\r\n\r\n" in first:
                break
    assert first.startswith(b"id: 0\r\nevent: unread\r\ndata: ")
    assert b"retry: 3000\r\n" in first


# Replicas: a gateway of the test's own beside the system's -----------------------------------------------------


@dataclass
class Replica:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    async def stop(self) -> None:
        """SIGTERM, as an orchestrator stops it; then wait for it to exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)


def _spawn_gateway(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "services.gateway"], cwd=ROOT, env=env, stdout=log, stderr=log)


@contextlib.asynccontextmanager
async def another_gateway(system: System, *, rabbitmq_url: str | None = None) -> AsyncIterator[Replica]:
    """A second gateway process for the same system, started as the harness starts the first
    (`python -m services.gateway`), optionally reaching RabbitMQ another way."""
    port = free_port()
    env = {**system.env(), "GATEWAY_PORT": str(port)}
    if rabbitmq_url:
        env["RABBITMQ_URL"] = rabbitmq_url
    log_path = system.log_dir / f"gateway-{port}.log"
    process = _spawn_gateway(env, log_path)
    replica = Replica(f"http://127.0.0.1:{port}", process, log_path)
    try:

        async def healthy() -> bool:
            assert process.poll() is None, log_path.read_text()
            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"{replica.base_url}/api/health")).status_code == 200
            return False

        await eventually(healthy, timeout=30, message="the second gateway starts")
        yield replica
    finally:
        await replica.stop()


async def test_each_gateway_replica_delivers_to_its_own_clients_and_stops_promptly(system: System) -> None:
    author, reader, liker = random_id("author"), random_id("reader"), random_id("liker")
    author_token, reader_token, liker_token = system.token(author), system.token(reader), system.token(liker)
    post_id = await create_post(system, author_token)

    async with (
        another_gateway(system) as second,
        streaming(system.base_url, author_token) as on_first,
        streaming(second.base_url, author_token) as on_second,
        streaming(second.base_url, reader_token) as readers,
    ):
        starts = [await first_message(s) for s in (on_first, on_second, readers)]
        await like(system, liker_token, post_id)
        # Each replica has its own queue: the one change reaches the author's streams on both.
        for stream in (on_first, on_second):
            change = await stream.next()
            assert int(change.id) == int(starts[0].id) + 1
            assert data(change)["items"][0]["actors"][0]["id"] == liker
        async with system.client(author_token) as client:
            assert (await client.put(f"/api/people/{reader}/follow")).status_code == 200
        followed = await readers.next()
        assert int(followed.id) == int(starts[2].id) + 1
        assert data(followed)["items"][0]["kind"] == "person.followed"

        # Stopping a replica ends its streams at once (their clients reconnect elsewhere), and it exits.
        stopping = time.monotonic()
        await second.stop()
        assert time.monotonic() - stopping < 5, "the open streams held the replica up"
        # Each stream ended properly, not cut off mid-response (uvicorn logs that as an error).
        assert '"level": "ERROR"' not in second.log_path.read_text()
        await on_second.assert_ends(timeout=1)
        await readers.assert_ends(timeout=1)
        assert not on_first.ended.is_set()


# A broker outage ------------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_broker_outage_ends_the_streams_and_their_clients_catch_up(system: System) -> None:
    author = random_id("author")
    author_token = system.token(author)
    post_id = await create_post(system, author_token)
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    try:
        async with another_gateway(system, rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/") as second:
            async with streaming(second.base_url, author_token) as stream:
                start = await first_message(stream)
                await proxy.cut()
                # The replica's queue went with its connection: changes from now on do not reach it.
                await stream.assert_ends(timeout=10)

            await like(system, system.token(random_id("liker")), post_id)
            await eventually(lambda: _seq_above(system, author_token, int(start.id)), message="the like lands")

            # Reconnecting while the broker is still away catches up from the notifications service ...
            async with streaming(second.base_url, author_token, last_event_id=start.id) as stream:
                caught_up = await first_message(stream)
                assert caught_up.event == "notifications" and int(caught_up.id) == int(start.id) + 1
                # ... and the stream ends once the replica consumes again, since until then it had no live changes.
                await proxy.restore()
                await stream.assert_ends(timeout=30)

            async with streaming(second.base_url, author_token, last_event_id=caught_up.id) as stream:
                assert (await first_message(stream)).event == "unread"
                await like(system, system.token(random_id("liker")), post_id)
                live = await stream.next()
                assert int(live.id) == int(caught_up.id) + 1 and data(live)["items"][0]["actor_count"] == 2
    finally:
        await proxy.close()


async def _seq_above(system: System, token: str, seq: int) -> bool:
    return int((await inbox(system, token))["seq"]) > seq


# Notification settings and unsubscribing through the gateway ---------------------------------------------------


async def test_notification_settings_are_read_and_changed_through_the_gateway(system: System) -> None:
    token = system.token()
    async with system.client(token) as client:
        defaults = (await client.get("/api/me/notification-settings")).json()
        assert defaults["channels"]["like"] == "in_app" and defaults["quiet_hours"] is None

        changed = await client.put(
            "/api/me/notification-settings",
            json={"channels": {"like": "email_now"}, "quiet_hours": {"start": "22:00", "end": "07:00"}},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["channels"]["like"] == "email_now"
        assert changed.json()["quiet_hours"] == {"start": "22:00", "end": "07:00"}

        # An explicit null is a change (quiet hours off); what is left out stays.
        quiet_off = (await client.put("/api/me/notification-settings", json={"quiet_hours": None})).json()
        assert quiet_off["quiet_hours"] is None and quiet_off["channels"]["like"] == "email_now"
        assert (await client.get("/api/me/notification-settings")).json() == quiet_off

        for body, field in (
            ({"time_zone": "Mars/Olympus_Mons"}, "body.time_zone"),
            ({"channels": {"like": "pigeon"}}, "body.channels.like"),
            ({"colour": "blue"}, "body.colour"),
        ):
            reply = await client.put("/api/me/notification-settings", json=body)
            assert reply.status_code == 422, reply.text
            assert reply.headers["content-type"] == "application/problem+json"
            assert reply.json()["errors"][0]["field"] == field
    async with system.client() as anonymous:
        assert (await anonymous.get("/api/me/notification-settings")).status_code == 401


async def _unsubscribe_link(system: System) -> tuple[str, str]:
    """(author's token, the List-Unsubscribe URL's path and query) of a real favourite email."""
    author, fan = random_id("author"), random_id("fan")
    author_token = system.token(author, email=f"{author}@example.org")
    post_id = await create_post(system, author_token)
    async with system.client(system.token(fan, name="Frida Fan")) as client:
        assert (await client.put(f"/api/posts/{post_id}/favourite")).status_code == 200

    async def mailed() -> list[Any]:
        return [m for m in system.smtp.messages if m["To"].addresses[0].addr_spec == f"{author}@example.org"]

    [message] = await eventually(mailed, timeout=30, message="the favourite email")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = httpx.URL(str(message["List-Unsubscribe"]).strip("<>"))
    assert link.path == "/api/unsubscribe"
    return author_token, f"{link.path}?{link.query.decode()}"


async def _favourite_channel(system: System, token: str) -> str:
    async with system.client(token) as client:
        return str((await client.get("/api/me/notification-settings")).json()["channels"]["favourite"])


async def test_an_unsubscribe_link_opens_a_page_that_asks_and_changes_nothing(system: System) -> None:
    author_token, link = await _unsubscribe_link(system)
    async with system.client() as client:
        norwegian = await client.get(link, headers={"Accept-Language": "en;q=0.5, nb-NO, nn;q=0.9"})
        english = await client.get(link, headers={"Accept-Language": "de, en-GB;q=0.8"})
        missing = await client.get("/api/unsubscribe")
    assert norwegian.status_code == 200 and norwegian.headers["content-type"].startswith("text/html")
    assert '<html lang="nb">' in norwegian.text and "Ja, meld meg av" in norwegian.text
    assert '<html lang="en">' in english.text and "Yes, unsubscribe" in english.text
    token = httpx.URL(link).params["token"]
    assert f'<form method="post" action="/api/unsubscribe?token={token}">' in english.text
    assert '<a href="/settings/notifications">' in english.text
    assert english.headers["referrer-policy"] == "no-referrer"
    # Mail scanners open links: opening this one must not unsubscribe.
    assert await _favourite_channel(system, author_token) == "email_now"
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "query.token"


async def test_one_click_unsubscribe_turns_that_email_off_without_signing_in(system: System) -> None:
    author_token, link = await _unsubscribe_link(system)
    token = httpx.URL(link).params["token"]
    async with system.client() as client:
        # RFC 8058: the mail client POSTs to the List-Unsubscribe URL with List-Unsubscribe=One-Click.
        one_click = await client.post(link, data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 200, one_click.text
        assert one_click.json() == {"kind": "favourite", "channel": "in_app"}
        assert await _favourite_channel(system, author_token) == "in_app"

        # The token may come in the body too; a repeated click changes nothing.
        as_json = await client.post("/api/unsubscribe", json={"token": token})
        as_form = await client.post("/api/unsubscribe", data={"token": token})
        assert as_json.json() == as_form.json() == {"kind": "favourite", "channel": "in_app"}

        # The page's button: a browser gets a page back, in its language.
        from_page = await client.post(
            link,
            data={"List-Unsubscribe": "One-Click"},
            headers={"Accept": "text/html,application/xhtml+xml", "Accept-Language": "nb"},
        )
        assert from_page.status_code == 200 and "favorittmarkeringer av innleggene dine" in from_page.text

        missing = await client.post("/api/unsubscribe", data={"List-Unsubscribe": "One-Click"})
        assert missing.status_code == 422 and missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["errors"][0]["field"] == "query.token"
        forged = await client.post("/api/unsubscribe", params={"token": token[:-4] + "AAAA"})
        assert forged.status_code == 400 and forged.headers["content-type"] == "application/problem+json"


# The stream's protocol on its own: a fake notifications service, changes handed to the replica's dispatch -------


class FakeNotificationsService(Upstreams):
    """Answers the stream's calls as the notifications service would, from `changes` by `after`."""

    def __init__(self, *, seq: int, unread: int, changes: dict[int, dict[str, Any]] | None = None) -> None:
        super().__init__(Settings())
        self.inbox: dict[str, Any] = {"items": [], "next_cursor": None, "unread": unread, "seq": seq}
        self.changes = changes or {}
        self.calls: list[tuple[str, str]] = []

    async def call(self, service: str, method: str, path: str, **kwargs: Any) -> UpstreamReply:
        self.calls.append((method, path))
        if path == "/notifications/presence":
            return UpstreamReply(204, b"", "application/json")
        if path == "/notifications":
            return UpstreamReply(200, orjson.dumps(self.inbox), "application/json")
        after = int(dict(kwargs["params"])["after"])
        return UpstreamReply(200, orjson.dumps(self.changes[after]), "application/json")


@contextlib.asynccontextmanager
async def a_stream(
    live: LiveNotifications, service: FakeNotificationsService, *, expires_in: float = 3600, **kwargs: Any
) -> AsyncIterator[tuple[AsyncGenerator[sse_starlette.ServerSentEvent, None], anyio.Event]]:
    shutdown = anyio.Event()
    events = notification_events(
        live,
        service,
        recipient_id="kari",
        token="token",
        last_event_id=kwargs.get("last_event_id"),
        expires_at=time.time() + expires_in,
        shutdown=shutdown,
    )
    try:
        yield events, shutdown
    finally:
        await events.aclose()


def unconnected_replica(capacity: int = 1000) -> LiveNotifications:
    return LiveNotifications(rabbitmq_url="amqp://unused", topology=Topology("unit"), capacity=capacity)


async def test_a_gap_in_the_live_changes_is_filled_from_the_notifications_service() -> None:
    live = unconnected_replica()
    missed = {"seq": 3, "items": [{"id": "n", "title": "two and three"}], "removed": ["gone"], "unread": 7}
    service = FakeNotificationsService(seq=0, unread=0, changes={1: {**missed, "reset": False}})
    async with a_stream(live, service) as (events, _):
        start = await anext(events)
        assert (start.event, start.id, start.retry) == ("unread", "0", 3000)
        live.dispatch(change_of("kari", 1))
        live.dispatch(change_of("ola", 2))  # someone else's: not this stream's business
        assert (await anext(events)).id == "1"
        live.dispatch(change_of("kari", 3))  # 2 never reached this replica
        filled = await anext(events)
        assert (filled.event, filled.id) == ("notifications", "3")
        assert orjson.loads(str(filled.data)) == {k: missed[k] for k in ("seq", "items", "removed", "unread")}
        # 2 arriving late, and 3 again, are already covered; 4 follows.
        for seq in (2, 3, 4):
            live.dispatch(change_of("kari", seq))
        assert (await anext(events)).id == "4"
    assert ("POST", "/notifications/presence") in service.calls
    assert live.open_streams == 0


async def test_a_resume_the_service_cannot_replay_is_a_reset() -> None:
    live = unconnected_replica()
    service = FakeNotificationsService(
        seq=0, unread=0, changes={5: {"seq": 9, "items": [], "removed": [], "unread": 2, "reset": True}}
    )
    async with a_stream(live, service, last_event_id=5) as (events, _):
        reset = await anext(events)
        assert (reset.event, reset.id, orjson.loads(str(reset.data))) == ("reset", "9", {"seq": 9, "unread": 2})
        live.dispatch(change_of("kari", 10))
        assert (await anext(events)).id == "10"


async def test_a_stream_ends_when_it_falls_behind_the_replica_loses_the_broker_or_the_server_stops() -> None:
    live = unconnected_replica(capacity=2)
    service = FakeNotificationsService(seq=0, unread=0)

    async with a_stream(live, service) as (events, _):
        await anext(events)
        for seq in (1, 2, 3):  # one more than the stream may hold
            live.dispatch(change_of("kari", seq))
        with pytest.raises(StopAsyncIteration):
            await anext(events)

    async with a_stream(live, service) as (events, _):
        await anext(events)
        live._on_channel_closed(None, ConnectionError("broker gone"))
        with pytest.raises(StopAsyncIteration):
            await anext(events)

    async with a_stream(live, service) as (events, shutdown):
        await anext(events)
        shutdown.set()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(events), 1)

    async with a_stream(live, service, expires_in=0.2) as (events, _):
        await anext(events)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(events), 2)
    assert live.open_streams == 0
