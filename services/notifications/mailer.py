"""Sends the emails the notifications service queued, at least once and, in practice, exactly once.

An email row is written in the transaction that applies the event (the inbox dedupes redeliveries).
The mailer leases due rows with FOR UPDATE SKIP LOCKED, sends, and marks them sent. Only a crash between
the SMTP server accepting a message and the mark committing can send one twice; the Message-ID is
derived from the row, so the copy carries the same Message-ID and mail clients can fold them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import asyncpg

from services.notifications import repository
from services.notifications.templates import render_favourite
from shared.db import listen_forever
from shared.settings import Settings

log = logging.getLogger(__name__)

# A header longer than 78 characters with nowhere to fold must stay intact (a long unsubscribe URL).
EMAIL_POLICY = SMTP.clone(max_line_length=998)
MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=2)
RECIPIENT_GRACE = timedelta(minutes=10)
POLL_SECONDS = 1.0


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
    pass


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(1800, 5 * 2 ** max(0, attempts - 1)))


class Mailer:
    def __init__(self, *, pool: asyncpg.Pool, settings: Settings, schema: str) -> None:
        self._pool = pool
        self._settings = settings
        self._schema = schema
        self._smtp = SmtpTarget.from_url(settings.smtp_url)
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self.sent = 0
        self.failed = 0

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="mailer"),
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
        run, listen = self._tasks
        listen.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listen
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

    async def send_due(self, limit: int = 20) -> int:
        async with self._pool.acquire() as conn:
            due = await repository.claim_due_emails(conn, limit=limit, lease=LEASE)
        for row in due:
            if self._stopping:
                break
            await self._send_one(row)
        return len(due)

    async def _send_one(self, row: asyncpg.Record) -> None:
        email_id: uuid.UUID = row["id"]
        async with self._pool.acquire() as conn:
            details = await repository.email_details(
                conn, recipient_id=row["recipient_id"], actor_id=row["actor_id"], post_id=row["post_id"]
            )
            if details["post_deleted"]:
                await repository.fail_email(conn, email_id, error="the post was deleted", status="cancelled")
                return
            if not details["recipient_email"] or details["post_excerpt"] is None:
                # The person or post event may still be on its way.
                if datetime.now(UTC) - row["created_at"] > RECIPIENT_GRACE:
                    await repository.fail_email(conn, email_id, error="no email address or post known for it")
                    self.failed += 1
                else:
                    await repository.reschedule_email(
                        conn, email_id, delay=timedelta(seconds=2), error="waiting for recipient or post details"
                    )
                return
        message = self._compose(email_id, row, details)
        try:
            await self._deliver(message)
        except PermanentFailure as exc:
            log.error("email refused for good", extra={"email_id": str(email_id), "error": str(exc)})
            async with self._pool.acquire() as conn:
                await repository.fail_email(conn, email_id, error=str(exc)[:1000])
            self.failed += 1
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
            async with self._pool.acquire() as conn:
                if row["attempts"] >= MAX_ATTEMPTS:
                    await repository.fail_email(
                        conn, email_id, error=f"gave up after {row['attempts']} attempts: {error}"
                    )
                    self.failed += 1
                    log.error("email failed for good", extra={"email_id": str(email_id), "error": error})
                else:
                    await repository.reschedule_email(conn, email_id, delay=_retry_delay(row["attempts"]), error=error)
                    log.warning("email send failed, will retry", extra={"email_id": str(email_id), "error": error})
            return
        async with self._pool.acquire() as conn:
            await repository.mark_email_sent(conn, email_id)
        self.sent += 1
        log.info("email sent", extra={"email_id": str(email_id), "kind": row["kind"]})

    def _compose(self, email_id: uuid.UUID, row: asyncpg.Record, details: asyncpg.Record) -> EmailMessage:
        link = f"{self._settings.public_url.rstrip('/')}/posts/{row['post_id']}"
        rendered = render_favourite(
            locale=details["recipient_locale"],
            actor=details["actor_name"] or row["actor_id"],
            excerpt=details["post_excerpt"],
            link=link,
        )
        message = EmailMessage(policy=EMAIL_POLICY)
        message["From"] = self._settings.mail_from
        message["To"] = formataddr((details["recipient_name"] or "", details["recipient_email"]))
        message["Subject"] = rendered.subject
        message["Date"] = format_datetime(datetime.now(UTC))
        # Stable per email row, so a resend after a crash is recognisably the same message.
        message["Message-ID"] = f"<{email_id}@tillit>"
        message["X-Tillit-Kind"] = row["kind"]
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
            raise PermanentFailure(f"recipient refused: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise PermanentFailure(f"SMTP {exc.code}: {exc.message}") from exc
            raise
