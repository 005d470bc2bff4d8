"""The mailer's policy against a fresh database and a real SMTP server, with a clock the test moves: what is
sent, skipped, deferred, held back for the digest, summarised, retried and suppressed, and why."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import jwt
import pytest

from services.notifications import mailer as mailer_module
from services.notifications.mailer import Mailer
from services.notifications.unsubscribe import make_token, read_token, unsubscribe
from shared import db as shared_db
from shared.http import ProblemError
from shared.settings import Settings
from tests.harness import PG_ADMIN_URL, CapturingSmtp, drop_database

MIGRATIONS = Path(mailer_module.__file__).parent / "migrations"
SCHEMA = "notifications"
# A Wednesday in January: Oslo is UTC+1, New York UTC-5.
START = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class RefusingSmtp(CapturingSmtp):
    """Refuses every recipient with `reply` for the first `refusals` tries, then accepts."""

    def __init__(self, reply: str, refusals: int) -> None:
        super().__init__()
        self.reply = reply
        self.refusals = refusals
        self.tries = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        self.tries += 1
        if self.tries <= self.refusals:
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"


@dataclass
class World:
    pool: asyncpg.Pool
    dsn: str
    smtp: CapturingSmtp
    clock: Clock = field(default_factory=Clock)

    def settings(self, **overrides: Any) -> Settings:
        return Settings(
            database_url=self.dsn,
            smtp_url=self.smtp.url,
            public_url="http://tillit.test",
            **overrides,
        )

    def mailer(self, **overrides: Any) -> Mailer:
        return Mailer(pool=self.pool, settings=self.settings(**overrides), schema=SCHEMA, clock=self.clock)

    async def drain(self, mailer: Mailer) -> None:
        while await mailer.send_due():
            pass

    async def execute(self, sql: str, *args: Any) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(sql, *args)

    async def person(self, name: str, *, locale: str | None = None) -> str:
        person_id = f"{name.lower()}-{secrets.token_hex(3)}"
        await self.execute(
            "INSERT INTO people_directory (id, name, email, locale, version) VALUES ($1, $2, $3, $4, 1)",
            person_id,
            name,
            f"{person_id}@example.org",
            locale,
        )
        return person_id

    async def post(self, author: str, excerpt: str = "Lunch on Fridays?") -> uuid.UUID:
        post_id = uuid.uuid4()
        await self.execute(
            "INSERT INTO posts (id, author_id, excerpt, version) VALUES ($1, $2, $3, 1)", post_id, author, excerpt
        )
        return post_id

    async def group(
        self, recipient: str, kind: str, post_id: uuid.UUID | None, actors: list[str], *, at: datetime
    ) -> uuid.UUID:
        """A notification whose actors acted one second apart from `at`, the last one newest."""
        notification_id = uuid.uuid4()
        newest = at + timedelta(seconds=len(actors) - 1)
        await self.execute(
            """INSERT INTO notifications (id, recipient_id, kind, post_id, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            notification_id,
            recipient,
            kind,
            post_id,
            at,
            newest,
        )
        for i, actor in enumerate(actors):
            await self.join(notification_id, actor, at=at + timedelta(seconds=i))
        return notification_id

    async def join(self, notification_id: uuid.UUID, actor: str, *, at: datetime) -> None:
        await self.execute(
            "INSERT INTO notification_actors (notification_id, actor_id, acted_at) VALUES ($1, $2, $3)",
            notification_id,
            actor,
            at,
        )
        await self.execute(
            "UPDATE notifications SET updated_at = greatest(updated_at, $2) WHERE id = $1", notification_id, at
        )

    async def favourite_email(self, recipient: str, post_id: uuid.UUID, actor: str) -> uuid.UUID:
        """As the core queues a favourite: at once, no window."""
        email_id = uuid.uuid4()
        await self.execute(
            """INSERT INTO emails (id, dedupe_key, recipient_id, kind, post_id, actor_id, next_attempt_at, created_at)
               VALUES ($1, $2, $3, 'post.favourited', $4, $5, $6, $6)""",
            email_id,
            f"favourite:{post_id}:{actor}",
            recipient,
            post_id,
            actor,
            self.clock.now,
        )
        return email_id

    async def group_email(self, recipient: str, notification_id: uuid.UUID, kind: str = "post.liked") -> uuid.UUID:
        """As the core queues an email of a group: due after the window."""
        email_id = uuid.uuid4()
        await self.execute(
            """INSERT INTO emails (id, dedupe_key, recipient_id, kind, post_id, notification_id,
                                   next_attempt_at, created_at)
               SELECT $1, $2, $3, $4, n.post_id, n.id, $5::timestamptz + interval '2 minutes', $5
               FROM notifications n WHERE n.id = $6""",
            email_id,
            f"group:{notification_id}",
            recipient,
            kind,
            self.clock.now,
            notification_id,
        )
        return email_id

    async def choose(self, recipient: str, *, created_at: datetime = START - timedelta(days=30), **fields: Any) -> None:
        columns = ["recipient_id", "created_at", *fields]
        placeholders = ", ".join(f"${i + 1}" for i in range(len(columns)))
        await self.execute(
            f"INSERT INTO notification_settings ({', '.join(columns)}) VALUES ({placeholders})",
            recipient,
            created_at,
            *fields.values(),
        )

    async def email(self, email_id: uuid.UUID) -> asyncpg.Record:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM emails WHERE id = $1", email_id)
        assert row is not None
        return row

    async def emails_of(self, recipient: str) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await conn.fetch("SELECT * FROM emails WHERE recipient_id = $1 ORDER BY created_at", recipient)

    def mails_to(self, person: str) -> list[EmailMessage]:
        return [m for m in self.smtp.messages if m["To"].addresses[0].addr_spec == f"{person}@example.org"]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


@pytest.fixture
def smtp() -> Iterator[CapturingSmtp]:
    server = CapturingSmtp()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def database() -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    name = f"tillit_test_mail{secrets.token_hex(4)}"
    dsn = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    pool: asyncpg.Pool | None = None
    try:
        await shared_db.migrate(dsn, schema=SCHEMA, migrations=MIGRATIONS)
        pool = await shared_db.create_pool(dsn, schema=SCHEMA, size=4)
        yield dsn, pool
    finally:
        if pool is not None:
            await pool.close()
        await drop_database(name)


@pytest.fixture
def world(database: tuple[str, asyncpg.Pool], smtp: CapturingSmtp) -> World:
    dsn, pool = database
    return World(pool=pool, dsn=dsn, smtp=smtp)


async def test_over_the_hourly_cap_emails_wait_for_the_next_digest(world: World) -> None:
    author = await world.person("Author")
    post = await world.post(author)
    fans = [await world.person(f"Fan{i}") for i in range(5)]
    notification = await world.group(author, "post.favourited", post, fans, at=START)
    queued = [await world.favourite_email(author, post, fan) for fan in fans]
    mailer = world.mailer(email_hourly_cap=3)

    await world.drain(mailer)
    assert len(world.mails_to(author)) == 3
    held = [await world.email(e) for e in queued[3:]]
    assert [(e["status"], e["last_error"]) for e in held] == [("digest", "over the hourly cap of 3")] * 2

    # Before the digest hour (08:00 in Oslo, the default) nothing is summarised.
    world.clock.now = datetime(2026, 1, 15, 6, 59, tzinfo=UTC)
    assert await mailer.queue_due_digests() == 0
    world.clock.now = datetime(2026, 1, 15, 7, 0, 30, tzinfo=UTC)
    assert await mailer.queue_due_digests() == 1
    assert await mailer.queue_due_digests() == 0, "one digest per slot"
    [digest] = [e for e in await world.emails_of(author) if e["kind"] == "digest"]
    assert digest["items"] == [str(notification)]
    assert digest["dedupe_key"] == f"digest:{author}:2026-01-15T07:00:00+00:00"
    held = [await world.email(e) for e in queued[3:]]
    assert {(e["status"], e["last_error"]) for e in held} == {("cancelled", f"summarised in digest {digest['id']}")}

    await world.drain(mailer)
    message = world.mails_to(author)[-1]
    assert len(world.mails_to(author)) == 4
    assert message["Subject"] == "Your daily summary from Tillit: 1 new"
    assert "Fan4 and 4 others favourited your post" in text_of(message)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (await world.email(digest["id"]))["status"] == "sent"


async def test_the_cap_counts_the_last_hour_only(world: World) -> None:
    author = await world.person("Author")
    post = await world.post(author)
    mailer = world.mailer(email_hourly_cap=1)
    first = await world.favourite_email(author, post, await world.person("A"))
    await world.drain(mailer)
    world.clock.advance(minutes=61)
    second = await world.favourite_email(author, post, await world.person("B"))
    await world.drain(mailer)
    assert [(await world.email(e))["status"] for e in (first, second)] == ["sent", "sent"]


async def test_daily_digest_comes_at_each_persons_hour_in_their_time_zone(world: World) -> None:
    oslo, new_york = await world.person("Oslo"), await world.person("York", locale="en-US")
    liker, muted = await world.person("Kari"), await world.person("Muted")
    await world.choose(oslo, channels={"like": "email_digest"}, time_zone="Europe/Oslo", digest_hour=8, locale="nb")
    await world.choose(new_york, channels={"like": "email_digest"}, time_zone="America/New_York", digest_hour=8)
    await world.execute(
        "INSERT INTO relations (actor_id, kind, target_id, active, version) VALUES ($1, 'mute', $2, true, 1)",
        oslo,
        muted,
    )
    mailer = world.mailer()
    # The worker has been running: at 14:00 UTC on the 14th both people's last digest time has passed, with
    # nothing to say (the slot moves on, no email).
    world.clock.now = at = datetime(2026, 1, 14, 14, 0, tzinfo=UTC)
    assert await mailer.queue_due_digests() == 0
    groups = {}
    for person in (oslo, new_york):
        wanted = await world.group(person, "post.liked", await world.post(person), [liker], at=at)
        read = await world.group(person, "post.liked", await world.post(person), [liker], at=at)
        await world.execute("UPDATE notifications SET read_at = $2 WHERE id = $1", read, at)
        only_muted = await world.group(person, "post.liked", await world.post(person), [muted], at=at)
        in_app_kind = await world.group(person, "post.favourited", await world.post(person), [liker], at=at)
        groups[person] = (wanted, read, only_muted, in_app_kind)
    assert await mailer.queue_due_digests() == 0

    world.clock.now = datetime(2026, 1, 15, 7, 0, 1, tzinfo=UTC)  # 08:00 in Oslo, 02:00 in New York
    assert await mailer.queue_due_digests() == 1
    await world.drain(mailer)
    [to_oslo] = world.mails_to(oslo)
    assert not world.mails_to(new_york)
    assert to_oslo["Subject"] == "Din daglige oppsummering fra Tillit: 1 nye"
    assert "Kari likte innlegget ditt" in text_of(to_oslo)
    assert "Muted" not in text_of(to_oslo), "a muted actor is left out"
    [digest] = [e for e in await world.emails_of(oslo) if e["kind"] == "digest"]
    assert digest["items"] == [str(groups[oslo][0])], "read ones and email-now kinds left out"

    world.clock.now = datetime(2026, 1, 15, 13, 0, 1, tzinfo=UTC)  # 08:00 in New York
    assert await mailer.queue_due_digests() == 1
    await world.drain(mailer)
    [to_new_york] = world.mails_to(new_york)
    assert "Kari liked your post" in text_of(to_new_york)
    # The muted actor is only muted by Oslo: New York hears of them.
    assert "Muted liked your post" in text_of(to_new_york)

    # The next day, with nothing new, nobody gets a digest, and the slot still moves on.
    world.clock.now = datetime(2026, 1, 16, 13, 0, 1, tzinfo=UTC)
    assert await mailer.queue_due_digests() == 0
    async with world.pool.acquire() as conn:
        through = await conn.fetchval("SELECT digest_through FROM notification_settings WHERE recipient_id = $1", oslo)
    assert through == datetime(2026, 1, 15, 7, 0, tzinfo=UTC)


async def test_weekly_digest_comes_on_the_chosen_weekday(world: World) -> None:
    person, liker = await world.person("Weekly"), await world.person("Kari")
    # Wednesdays at 09:00 in Oslo (08:00 UTC); settings chosen on Monday 12 January.
    await world.choose(
        person,
        channels={"like": "email_digest", "follow": "email_digest"},
        digest="weekly",
        digest_weekday=3,
        digest_hour=9,
        time_zone="Europe/Oslo",
        created_at=datetime(2026, 1, 12, 9, 0, tzinfo=UTC),
    )
    liked = await world.group(person, "post.liked", await world.post(person), [liker], at=START)
    followed = await world.group(person, "person.followed", None, [liker], at=START + timedelta(hours=1))
    mailer = world.mailer()
    for day in (15, 16, 19, 20):  # Thursday, Friday, Monday, Tuesday
        world.clock.now = datetime(2026, 1, day, 8, 0, 1, tzinfo=UTC)
        assert await mailer.queue_due_digests() == 0, day
    world.clock.now = datetime(2026, 1, 21, 8, 0, 1, tzinfo=UTC)  # Wednesday
    assert await mailer.queue_due_digests() == 1
    await world.drain(mailer)
    [message] = world.mails_to(person)
    assert message["Subject"] == "Your weekly summary from Tillit: 2 new"
    text = text_of(message)
    assert text.index("Kari followed you") < text.index("Kari liked your post"), "newest first"
    assert f"http://tillit.test/people/{liker}" in text
    [digest] = [e for e in await world.emails_of(person) if e["kind"] == "digest"]
    assert digest["items"] == [str(followed), str(liked)]


async def test_quiet_hours_defer_without_counting_an_attempt_then_send(world: World) -> None:
    author = await world.person("Author")
    post = await world.post(author)
    await world.choose(author, quiet_start=time(22), quiet_end=time(7), time_zone="Europe/Oslo")
    world.clock.now = datetime(2026, 1, 14, 22, 30, tzinfo=UTC)  # 23:30 in Oslo
    email_id = await world.favourite_email(author, post, await world.person("Night Owl"))
    mailer = world.mailer()

    await world.drain(mailer)
    row = await world.email(email_id)
    morning = datetime(2026, 1, 15, 6, 0, tzinfo=UTC)  # 07:00 in Oslo
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("pending", 0, morning)
    assert row["last_error"] == f"quiet hours until {morning.isoformat()}"
    assert not world.mails_to(author)

    world.clock.now = morning - timedelta(seconds=1)
    await world.drain(mailer)
    assert not world.mails_to(author)
    world.clock.now = morning
    await world.drain(mailer)
    [message] = world.mails_to(author)
    assert message["Subject"] == "Night Owl favourited your post"
    assert (await world.email(email_id))["attempts"] == 1


async def test_a_windowed_email_is_skipped_when_read_or_active_and_sent_when_neither(world: World) -> None:
    reader, active, away = [await world.person(n) for n in ("Reader", "Active", "Away")]
    kari, ola, per = [await world.person(n) for n in ("Kari", "Ola", "Per")]
    emails = {}
    groups = {}
    for person in (reader, active, away):
        await world.choose(person, channels={"like": "email_now"})
        groups[person] = await world.group(person, "post.liked", await world.post(person), [ola], at=world.clock.now)
        emails[person] = await world.group_email(person, groups[person])
    mailer = world.mailer()

    world.clock.advance(seconds=60)
    await world.drain(mailer)
    assert {(await world.email(e))["status"] for e in emails.values()} == {"pending"}, "the window is not over"
    await world.execute("UPDATE notifications SET read_at = $2 WHERE id = $1", groups[reader], world.clock.now)
    await world.execute("INSERT INTO presence VALUES ($1, $2)", active, world.clock.now)
    # Presence from before the email was queued does not count.
    await world.execute("INSERT INTO presence VALUES ($1, $2)", away, START - timedelta(minutes=5))
    # Two more like Away's post while the email waits: the email tells of all three.
    await world.join(groups[away], per, at=world.clock.now)
    await world.join(groups[away], kari, at=world.clock.now + timedelta(seconds=1))

    world.clock.advance(seconds=61)
    await world.drain(mailer)
    assert [((r := await world.email(emails[p]))["status"], r["last_error"]) for p in (reader, active, away)] == [
        ("skipped", "read in the app"),
        ("skipped", "active in the app"),
        ("sent", None),
    ]
    assert not world.mails_to(reader) and not world.mails_to(active)
    [message] = world.mails_to(away)
    assert message["Subject"] == "Kari and 2 others liked your post"


async def test_turned_off_suppressed_and_gone_are_recorded_not_sent(world: World) -> None:
    author = await world.person("Author")
    post = await world.post(author)
    turned_off = await world.favourite_email(author, post, await world.person("A"))
    await world.choose(author, channels={"favourite": "in_app"})
    other = await world.person("Other")
    await world.execute(
        "INSERT INTO suppressed_addresses (address, reason) VALUES ($1, 'bounced')", f"{other}@example.org"
    )
    suppressed = await world.favourite_email(other, await world.post(other), await world.person("B"))
    liked = await world.person("Liked")
    await world.choose(liked, channels={"like": "email_now"})
    group = await world.group(liked, "post.liked", await world.post(liked), [await world.person("C")], at=START)
    gone = await world.group_email(liked, group)
    await world.execute("DELETE FROM notifications WHERE id = $1", group)

    world.clock.advance(minutes=3)
    await world.drain(world.mailer())
    assert [((r := await world.email(e))["status"], r["last_error"]) for e in (turned_off, suppressed, gone)] == [
        ("skipped", "turned off"),
        ("skipped", "address suppressed"),
        ("cancelled", "the notification is gone"),
    ]
    assert not world.smtp.messages


async def test_an_email_waits_for_the_recipients_address_without_counting_attempts(world: World) -> None:
    author = await world.person("Author")
    await world.execute("UPDATE people_directory SET email = NULL WHERE id = $1", author)
    email_id = await world.favourite_email(author, await world.post(author), await world.person("Kari"))
    mailer = world.mailer()
    for _ in range(5):
        await world.drain(mailer)
        world.clock.advance(seconds=3)
    row = await world.email(email_id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 0, "waiting for the recipient's address")
    await world.execute("UPDATE people_directory SET email = $2 WHERE id = $1", author, f"{author}@example.org")
    await world.drain(mailer)
    assert ((await world.email(email_id))["attempts"], len(world.mails_to(author))) == (1, 1)

    # Without an address after ten minutes, the email fails with the reason.
    stranger = await world.person("Stranger")
    await world.execute("UPDATE people_directory SET email = NULL WHERE id = $1", stranger)
    lost = await world.favourite_email(stranger, await world.post(stranger), await world.person("Ola"))
    world.clock.advance(minutes=11)
    await world.drain(mailer)
    row = await world.email(lost)
    assert (row["status"], row["last_error"]) == ("failed", "no email address known for the recipient")


async def test_an_smtp_server_that_refuses_for_a_while_gets_exactly_one_message(
    database: tuple[str, asyncpg.Pool],
) -> None:
    smtp = RefusingSmtp("451 4.3.0 Try again later", refusals=3)
    smtp.start()
    try:
        world = World(pool=database[1], dsn=database[0], smtp=smtp)
        author = await world.person("Author")
        email_id = await world.favourite_email(author, await world.post(author), await world.person("Kari"))
        mailer = world.mailer()
        for _ in range(10):
            await world.drain(mailer)
            world.clock.advance(minutes=30)  # past any backoff
        assert smtp.tries == 4
        assert len(world.mails_to(author)) == 1
        row = await world.email(email_id)
        assert (row["status"], row["attempts"]) == ("sent", 4)
    finally:
        smtp.stop()


async def test_a_refused_address_is_suppressed_and_not_tried_again(database: tuple[str, asyncpg.Pool]) -> None:
    smtp = RefusingSmtp("550 5.1.1 No such user", refusals=100)
    smtp.start()
    try:
        world = World(pool=database[1], dsn=database[0], smtp=smtp)
        author = await world.person("Author")
        post = await world.post(author)
        first = await world.favourite_email(author, post, await world.person("Kari"))
        mailer = world.mailer()
        await world.drain(mailer)
        row = await world.email(first)
        assert row["status"] == "failed" and "550" in row["last_error"]
        async with world.pool.acquire() as conn:
            reason = await conn.fetchval(
                "SELECT reason FROM suppressed_addresses WHERE address = $1", f"{author}@example.org"
            )
        assert "No such user" in reason
        second = await world.favourite_email(author, post, await world.person("Ola"))
        world.clock.advance(hours=2)
        await world.drain(mailer)
        assert (await world.email(second))["status"] == "skipped"
        assert smtp.tries == 1 and not smtp.messages
    finally:
        smtp.stop()


async def test_two_mailers_at_once_send_each_email_once(world: World) -> None:
    author = await world.person("Author")
    post = await world.post(author)
    for i in range(12):
        await world.favourite_email(author, post, await world.person(f"Fan{i}"))
    first, second = world.mailer(email_hourly_cap=100), world.mailer(email_hourly_cap=100)
    await asyncio.gather(world.drain(first), world.drain(second))
    ids = [m["Message-ID"] for m in world.mails_to(author)]
    assert len(ids) == 12 == len(set(ids))


async def test_the_one_click_link_of_an_email_turns_that_kind_off(world: World) -> None:
    author = await world.person("Author")
    post = await world.post(author)
    settings = world.settings()
    await world.favourite_email(author, post, await world.person("Kari"))
    mailer = world.mailer()
    await world.drain(mailer)
    [message] = world.mails_to(author)
    link = message["List-Unsubscribe"].strip("<>")
    assert link.startswith("http://tillit.test/api/unsubscribe?token=")
    assert link in text_of(message) and "http://tillit.test/settings/notifications" in html_of(message)
    token = parse_qs(urlsplit(link).query)["token"][0]

    answer = await unsubscribe(world.pool, settings, token, clock=world.clock)
    assert (answer.kind, answer.channel) == ("favourite", "in_app")
    assert await unsubscribe(world.pool, settings, token, clock=world.clock) == answer, "a second click is the same"
    later = await world.favourite_email(author, post, await world.person("Ola"))
    await world.drain(mailer)
    assert (await world.email(later))["last_error"] == "turned off"
    assert len(world.mails_to(author)) == 1


async def test_unsubscribing_from_the_digest_takes_every_kind_out_of_it(world: World) -> None:
    person = await world.person("Person")
    await world.choose(person, channels={"like": "email_digest", "follow": "off"})
    settings = world.settings()
    token = make_token(settings, recipient_id=person, kind="digest", now=datetime.now(UTC))
    answer = await unsubscribe(world.pool, settings, token)
    assert (answer.kind, answer.channel) == ("digest", "in_app")
    async with world.pool.acquire() as conn:
        channels = await conn.fetchval("SELECT channels FROM notification_settings WHERE recipient_id = $1", person)
    # campaign_update goes to the digest by default; what was off stays off.
    assert channels == {"like": "in_app", "follow": "off", "campaign_update": "in_app"}


async def test_forged_expired_and_foreign_tokens_are_refused(world: World) -> None:
    settings = world.settings()
    now = datetime.now(UTC)
    valid = make_token(settings, recipient_id="ada", kind="like", now=now)
    assert read_token(settings, valid, now=now) == ("ada", "like")
    forged = make_token(
        world.settings(unsubscribe_secret="someone-else-with-a-secret-of-32-bytes"),
        recipient_id="ada",
        kind="like",
        now=now,
    )
    expired = make_token(settings, recipient_id="ada", kind="like", now=now - timedelta(days=61))
    foreign = jwt.encode(
        {"sub": "ada", "kind": "like", "aud": "tillit", "exp": now + timedelta(days=1)},
        settings.unsubscribe_secret,
        algorithm="HS256",
    )
    unknown = jwt.encode(
        {"sub": "ada", "kind": "spam", "aud": "tillit-unsubscribe", "exp": now + timedelta(days=1)},
        settings.unsubscribe_secret,
        algorithm="HS256",
    )
    for token, why in [
        (forged, "not valid"),
        (expired, "expired"),
        (foreign, "not an unsubscribe link"),
        (unknown, "unknown kind"),
        ("garbage", "not valid"),
    ]:
        with pytest.raises(ProblemError) as refused:
            await unsubscribe(world.pool, settings, token)
        assert refused.value.status == 400 and why in refused.value.detail, token
    async with world.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM notification_settings") == 0


async def _operator(world: World, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tillit",
        "mail",
        *args,
        env={**os.environ, "DATABASE_URL": world.dsn},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_operators_see_failures_clear_a_suppressed_address_and_retry(database: tuple[str, asyncpg.Pool]) -> None:
    smtp = RefusingSmtp("550 5.1.1 Mailbox unavailable", refusals=1)
    smtp.start()
    try:
        world = World(pool=database[1], dsn=database[0], smtp=smtp)
        author = await world.person("Author")
        email_id = await world.favourite_email(author, await world.post(author), await world.person("Kari"))
        mailer = world.mailer()
        await world.drain(mailer)
        assert (await world.email(email_id))["status"] == "failed"

        code, out = await _operator(world, "failed")
        assert code == 0 and str(email_id) in out and "Mailbox unavailable" in out and f"{author}@example.org" in out
        code, out = await _operator(world, "suppressed")
        assert code == 0 and f"{author}@example.org" in out
        code, out = await _operator(world, "unsuppress", f"{author.upper()}@example.org")
        assert code == 0, out
        code, out = await _operator(world, "unsuppress", f"{author}@example.org")
        assert code == 1 and "was not suppressed" in out
        code, out = await _operator(world, "retry", str(email_id))
        assert code == 0 and "1 email(s) queued again" in out

        world.clock.now = datetime.now(UTC)  # the operator's retry is due at the real now
        await world.drain(mailer)
        row = await world.email(email_id)
        assert (row["status"], row["attempts"]) == ("sent", 1)
        assert len(world.mails_to(author)) == 1
        code, out = await _operator(world, "failed")
        assert "no failed emails" in out
    finally:
        smtp.stop()
