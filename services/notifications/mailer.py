"""Sends the emails the notifications service queued, when the recipient still wants them, at least once and,
in practice, exactly once; and queues each person's digest when it is due.

An email row is written in the transaction that applies the event (the inbox dedupes redeliveries).
The mailer leases due rows with FOR UPDATE SKIP LOCKED, decides (the policy below), sends, and marks them
sent. Only a crash between the SMTP server accepting a message and the mark committing can send one twice;
the Message-ID is derived from the row, so the copy carries the same Message-ID and mail clients fold them.

The policy, in order, each outcome kept on the row (status, and the reason in last_error):
turned off or unsubscribed -> skipped; address suppressed -> skipped; for an email that waited its window:
notification gone -> cancelled, read -> skipped, active in the app since -> skipped; quiet hours -> waits
until they end (not an attempt); over the hourly cap -> 'digest', summarised in the next digest; else sent,
rendered from the notification as it is now. Every decision reads the mailer's clock, so tests choose the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiosmtplib
import asyncpg

from services.notifications import emails
from services.notifications.changes import url_of
from services.notifications.templates import (
    DigestItem,
    EmailLinks,
    RenderedEmail,
    language_of,
    notification_title,
    render_digest,
    render_notification_email,
)
from services.notifications.unsubscribe import DIGEST, make_token, preferences_url, unsubscribe_url
from shared.api import DEFAULT_CHANNELS, SETTINGS_KIND_OF
from shared.db import Connection, listen_forever
from shared.settings import Settings

log = logging.getLogger(__name__)

# A header longer than 78 characters with nowhere to fold must stay intact (a long unsubscribe URL).
EMAIL_POLICY = SMTP.clone(max_line_length=998)
MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=2)
RECIPIENT_GRACE = timedelta(minutes=10)
POLL_SECONDS = 1.0
DIGEST_CHECK_SECONDS = 30.0
CAP_SPAN = timedelta(hours=1)
# A digest reaches back at most this far (a weekly one covers 7 days, and a day to spare).
DIGEST_LOOKBACK = timedelta(days=8)
DIGEST_LISTED = 50


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SmtpTarget:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {parts.scheme}://")
        query = parse_qs(parts.query)
        return cls(
            hostname=parts.hostname or "127.0.0.1",
            port=parts.port or (465 if parts.scheme == "smtps" else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=parts.scheme == "smtps",
            start_tls=query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"),
        )


class PermanentFailure(Exception):
    """The SMTP server refused the message for good (5xx): retrying would not help."""


class AddressRefused(PermanentFailure):
    """The SMTP server refused the recipient's address for good: no more mail to it until an operator says."""


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(1800, 5 * 2 ** max(0, attempts - 1)))


def time_zone(name: str | None, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def quiet_until(now: datetime, *, start: time | None, end: time | None, zone: ZoneInfo) -> datetime | None:
    """When quiet hours (start to end in the person's time zone, perhaps past midnight) end, if `now` is in them."""
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(zone)
    clock = local.time()
    if start < end:
        if not start <= clock < end:
            return None
        ends_on = local.date()
    else:
        if end <= clock < start:
            return None
        ends_on = local.date() + timedelta(days=1) if clock >= start else local.date()
    return datetime.combine(ends_on, end, tzinfo=zone).astimezone(UTC)


def latest_digest_slot(now: datetime, *, frequency: str, hour: int, weekday: int, zone: ZoneInfo) -> datetime:
    """The latest time at or before `now` a digest was due: `hour` o'clock in the person's time zone, every day
    or (weekly) on `weekday`, 1 = Monday."""
    today = now.astimezone(zone).date()
    for days_back in range(8):
        day = today - timedelta(days=days_back)
        if frequency == "weekly" and day.isoweekday() != weekday:
            continue
        slot = datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC)
        if slot <= now:
            return slot
    raise AssertionError("a week always holds a slot")


def digest_period(frequency: str) -> timedelta:
    return timedelta(days=7) if frequency == "weekly" else timedelta(days=1)


@dataclass
class MailerStats:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    deferred_quiet: int = 0
    retried: int = 0
    over_cap: int = 0
    suppressed: int = 0
    digests_queued: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class Mailer:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        settings: Settings,
        schema: str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._schema = schema
        self._clock = clock
        self._smtp = SmtpTarget.from_url(settings.smtp_url)
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = MailerStats()

    @property
    def sent(self) -> int:
        return self.stats.sent

    @property
    def failed(self) -> int:
        return self.stats.failed

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="mailer"),
            asyncio.create_task(self._run_digests(), name="mailer-digests"),
            asyncio.create_task(
                listen_forever(
                    self._settings.database_url, f"{self._schema}.emails", self._wake.set, retry_cap_seconds=5
                ),
                name="mailer-listen",
            ),
        ]

    async def stop(self) -> None:
        """Finish the email being sent, then stop; a leased row goes back to the queue when its lease ends."""
        self._stopping = True
        self._wake.set()
        run, digests, listen = self._tasks
        for task in (listen, digests):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(run, timeout=10)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                handled = await self.send_due()
            except Exception as exc:
                log.warning("mailer could not take due emails: %r", exc)
                handled = 0
                await asyncio.sleep(POLL_SECONDS)
            if handled:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _run_digests(self) -> None:
        while not self._stopping:
            try:
                await self.queue_due_digests()
            except Exception as exc:
                log.warning("mailer could not queue digests: %r", exc)
            await asyncio.sleep(DIGEST_CHECK_SECONDS)

    # Sending.

    async def send_due(self, limit: int = 20) -> int:
        """Decide on and send what is due now; the number of emails taken."""
        async with self._pool.acquire() as conn:
            due = await emails.claim_due(conn, now=self._clock(), limit=limit, lease=LEASE)
        for row in due:
            if self._stopping:
                break
            try:
                await self._handle(row)
            except Exception:
                # The lease gives the row back later; the others need not wait for it.
                log.exception("email could not be handled", extra={"email_id": str(row["id"])})
        return len(due)

    async def _handle(self, row: asyncpg.Record) -> None:
        email_id: uuid.UUID = row["id"]
        now = self._clock()
        async with self._pool.acquire() as conn:
            person = await emails.recipient(conn, row["recipient_id"])
            settings_kind = DIGEST if row["kind"] == DIGEST else SETTINGS_KIND_OF.get(row["kind"])
            if settings_kind is None:
                await self._settle(conn, email_id, "failed", f"no email for kind {row['kind']}")
                return
            channels = {**DEFAULT_CHANNELS, **(person["channels"] or {})}
            if settings_kind != DIGEST and channels.get(settings_kind) != "email_now":
                await self._settle(conn, email_id, "skipped", "turned off")
                return
            if not person["address"]:
                # The person's profile event may still be on its way. Waiting for it is no attempt at sending.
                if now - row["created_at"] > RECIPIENT_GRACE:
                    await self._settle(conn, email_id, "failed", "no email address known for the recipient")
                else:
                    await emails.defer(
                        conn,
                        email_id,
                        until=now + timedelta(seconds=2),
                        reason="waiting for the recipient's address",
                        count_attempt=False,
                    )
                return
            if person["suppressed"]:
                await self._settle(conn, email_id, "skipped", "address suppressed")
                return
            content = await self._content(conn, row, person, settings_kind, now)
            if isinstance(content, tuple):
                status, reason = content
                await self._settle(conn, email_id, status, reason)
                return
            zone = time_zone(person["time_zone"], self._settings.default_time_zone)
            until = quiet_until(now, start=person["quiet_start"], end=person["quiet_end"], zone=zone)
            if until is not None:
                await emails.defer(
                    conn, email_id, until=until, reason=f"quiet hours until {until.isoformat()}", count_attempt=False
                )
                self.stats.deferred_quiet += 1
                return
            if settings_kind != DIGEST:
                cap = self._settings.email_hourly_cap
                if await emails.count_sent_since(conn, row["recipient_id"], since=now - CAP_SPAN) >= cap:
                    await self._settle(conn, email_id, "digest", f"over the hourly cap of {cap}")
                    self.stats.over_cap += 1
                    return
        message = self._compose(
            email_id,
            to=(person["name"] or "", person["address"]),
            rendered=content,
            kind=row["kind"],
            unsubscribe=make_token(self._settings, recipient_id=row["recipient_id"], kind=settings_kind, now=now),
            now=now,
        )
        await self._send(row, message, address=person["address"])

    async def _content(
        self, conn: Connection, row: asyncpg.Record, person: asyncpg.Record, settings_kind: str, now: datetime
    ) -> RenderedEmail | tuple[str, str]:
        """The email as it reads now, or (status, reason) when there is nothing left worth sending."""
        language = language_of(person["chosen_locale"] or person["profile_locale"], self._settings.default_locale)
        base = self._settings.public_url.rstrip("/")
        if settings_kind == DIGEST:
            items = [uuid.UUID(item) for item in row["items"] or []]
            # Read since the digest was queued, or gone: left out. A kind with no email (yet) is left out too.
            found = [
                g
                for g in await emails.groups(conn, items)
                if g["read_at"] is None
                and g["actor_count"] > 0
                and not g["post_deleted"]
                and g["kind"] in SETTINGS_KIND_OF
            ]
            if not found:
                return ("skipped", "read in the app")
            listed = [
                DigestItem(
                    title=notification_title(
                        g["kind"],
                        newest_actor=g["newest_actor_name"] or g["newest_actor_id"],
                        actor_count=g["actor_count"],
                        language=language,
                        detail=g["detail"],
                    ),
                    url=self._target(g),
                    excerpt=g["excerpt"],
                )
                for g in found[:DIGEST_LISTED]
            ]
            return render_digest(
                language=language,
                period=person["digest"] or "daily",
                items=listed,
                more=len(found) - len(listed),
                links=self._links(f"{base}/notifications", row["recipient_id"], DIGEST, now),
            )
        if row["notification_id"] is not None:
            found = await emails.groups(conn, [row["notification_id"]])
            group = found[0] if found else None
            if group is None or group["post_deleted"]:
                return ("cancelled", "the notification is gone")
            if group["read_at"] is not None:
                return ("skipped", "read in the app")
            if person["last_seen_at"] is not None and person["last_seen_at"] >= row["created_at"]:
                return ("skipped", "active in the app")
            if group["actor_count"] == 0:
                return ("skipped", "everyone in it is muted or blocked")
            return render_notification_email(
                settings_kind,
                language=language,
                actor=group["newest_actor_name"] or group["newest_actor_id"],
                actor_count=group["actor_count"],
                excerpt=group["excerpt"],
                links=self._links(self._target(group), row["recipient_id"], settings_kind, now),
                subject=notification_title(
                    group["kind"],
                    newest_actor=group["newest_actor_name"] or group["newest_actor_id"],
                    actor_count=group["actor_count"],
                    language=language,
                    detail=group["detail"],
                ),
            )
        # An email about one actor and one post, sent at once (a favourite).
        details = await emails.favourite(
            conn, recipient_id=row["recipient_id"], actor_id=row["actor_id"], post_id=row["post_id"]
        )
        if details["post_deleted"]:
            return ("cancelled", "the post was deleted")
        if details["silenced"]:
            return ("skipped", "the actor is muted or blocked")
        if details["excerpt"] is None:
            # The post event may still be on its way.
            if now - row["created_at"] > RECIPIENT_GRACE:
                return ("failed", "the post is not known")
            await emails.defer(
                conn, row["id"], until=now + timedelta(seconds=2), reason="waiting for the post", count_attempt=False
            )
            return ("pending", "waiting for the post")
        return render_notification_email(
            settings_kind,
            language=language,
            actor=details["actor_name"] or row["actor_id"],
            excerpt=details["excerpt"],
            links=self._links(f"{base}/posts/{row['post_id']}", row["recipient_id"], settings_kind, now),
        )

    def _target(self, group: asyncpg.Record) -> str:
        """Where the notification leads, as in the inbox."""
        return url_of(
            group["kind"],
            post_id=group["post_id"],
            newest_actor_id=group["newest_actor_id"],
            actor_count=group["actor_count"],
            settings=self._settings,
            detail=group["detail"],
        )

    def _links(self, target: str, recipient_id: str, settings_kind: str, now: datetime) -> EmailLinks:
        token = make_token(self._settings, recipient_id=recipient_id, kind=settings_kind, now=now)
        return EmailLinks(
            target=target,
            preferences=preferences_url(self._settings),
            unsubscribe=unsubscribe_url(self._settings, token),
        )

    async def _settle(self, conn: Connection, email_id: uuid.UUID, status: str, reason: str) -> None:
        if status == "pending":
            return  # deferred already, with its reason
        await emails.settle(conn, email_id, status=status, reason=reason)
        if status == "failed":
            self.stats.failed += 1
        elif status == "skipped":
            self.stats.skipped += 1
        elif status == "cancelled":
            self.stats.cancelled += 1
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
        log.info("email not sent", extra={"email_id": str(email_id), "status": status, "reason": reason})

    async def _send(self, row: asyncpg.Record, message: EmailMessage, *, address: str) -> None:
        email_id: uuid.UUID = row["id"]
        try:
            await self._deliver(message)
        except PermanentFailure as exc:
            reason = str(exc)[:1000]
            log.error("email refused for good", extra={"email_id": str(email_id), "error": reason})
            async with self._pool.acquire() as conn, conn.transaction():
                if isinstance(exc, AddressRefused):
                    await emails.suppress(conn, address, reason=reason, at=self._clock())
                    self.stats.suppressed += 1
                await self._settle(conn, email_id, "failed", reason)
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
            async with self._pool.acquire() as conn:
                if row["attempts"] >= MAX_ATTEMPTS:
                    await self._settle(conn, email_id, "failed", f"gave up after {row['attempts']} attempts: {error}")
                else:
                    await emails.defer(
                        conn, email_id, until=self._clock() + _retry_delay(row["attempts"]), reason=error
                    )
                    self.stats.retried += 1
                    log.warning("email send failed, will retry", extra={"email_id": str(email_id), "error": error})
            return
        async with self._pool.acquire() as conn:
            await emails.mark_sent(conn, email_id, at=self._clock(), to_address=address)
        self.stats.sent += 1
        log.info("email sent", extra={"email_id": str(email_id), "kind": row["kind"]})

    def _compose(
        self,
        email_id: uuid.UUID,
        *,
        to: tuple[str, str],
        rendered: RenderedEmail,
        kind: str,
        unsubscribe: str,
        now: datetime,
    ) -> EmailMessage:
        message = EmailMessage(policy=EMAIL_POLICY)
        message["From"] = self._settings.mail_from
        message["To"] = formataddr(to)
        message["Subject"] = rendered.subject
        message["Date"] = format_datetime(now)
        # Stable per email row, so a resend after a crash is recognisably the same message.
        message["Message-ID"] = f"<{email_id}@tillit>"
        # RFC 2369 and RFC 8058: the mail client's own unsubscribe button, one click, no page to visit.
        message["List-Unsubscribe"] = f"<{unsubscribe_url(self._settings, unsubscribe)}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        # RFC 3834: no out-of-office replies to a notification.
        message["Auto-Submitted"] = "auto-generated"
        message["X-Tillit-Kind"] = kind
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        return message

    async def _deliver(self, message: EmailMessage) -> None:
        smtp = self._smtp
        try:
            await aiosmtplib.send(
                message,
                hostname=smtp.hostname,
                port=smtp.port,
                username=smtp.username,
                password=smtp.password,
                use_tls=smtp.use_tls,
                start_tls=smtp.start_tls,
                timeout=15,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            if codes and all(code >= 500 for code in codes):
                raise AddressRefused(f"recipient refused: {detail}") from exc
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise PermanentFailure(f"SMTP {exc.code}: {exc.message}") from exc
            raise

    # Digests.

    async def queue_due_digests(self) -> int:
        """Queue the digest of everyone whose digest time has come; the number queued."""
        now = self._clock()
        defaults = dict(DEFAULT_CHANNELS)
        async with self._pool.acquire() as conn:
            candidates = await emails.digest_candidates(
                conn, now=now, lookback=DIGEST_LOOKBACK, defaults=defaults, kinds=SETTINGS_KIND_OF
            )
        queued = 0
        for candidate in candidates:
            if self._stopping:
                break
            try:
                queued += await self._queue_digest(candidate, now)
            except Exception:
                log.exception("digest could not be queued", extra={"recipient_id": candidate["recipient_id"]})
        return queued

    async def _queue_digest(self, candidate: asyncpg.Record, now: datetime) -> int:
        frequency = candidate["digest"] or "daily"
        slot = latest_digest_slot(
            now,
            frequency=frequency,
            hour=8 if candidate["digest_hour"] is None else candidate["digest_hour"],
            weekday=candidate["digest_weekday"] or 1,
            zone=time_zone(candidate["time_zone"], self._settings.default_time_zone),
        )
        # Someone without settings gets the defaults, as if their last digest had been the one before.
        since = candidate["digest_through"] or candidate["created_at"] or slot - digest_period(frequency)
        if slot <= since:
            return 0
        since = max(since, slot - DIGEST_LOOKBACK)
        recipient_id = candidate["recipient_id"]
        async with self._pool.acquire() as conn, conn.transaction():
            if not await emails.claim_digest_slot(conn, recipient_id, slot=slot, now=now):
                return 0
            capped = await emails.lock_capped(conn, recipient_id, through=slot)
            items = await emails.digest_content(
                conn,
                recipient_id=recipient_id,
                since=since,
                through=slot,
                capped=capped,
                defaults=dict(DEFAULT_CHANNELS),
                kinds=SETTINGS_KIND_OF,
            )
            if not items:
                if capped:
                    await emails.settle_many(conn, capped, status="skipped", reason="read in the app before the digest")
                return 0
            digest_id = await emails.queue_digest(
                conn,
                recipient_id=recipient_id,
                dedupe_key=f"digest:{recipient_id}:{slot.isoformat()}",
                items=items,
                now=now,
            )
            if capped and digest_id is not None:
                await emails.settle_many(conn, capped, status="cancelled", reason=f"summarised in digest {digest_id}")
        self.stats.digests_queued += 1
        log.info("digest queued", extra={"recipient_id": recipient_id, "items": len(items), "slot": slot.isoformat()})
        return 1
