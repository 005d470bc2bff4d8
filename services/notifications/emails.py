"""Every SQL statement of the mailer: the email queue, the policy's reads, digests, suppression and unsubscribe.

Times come in as parameters (the mailer's clock), never from now(), so the policy can be tested at any hour.
A channel is the person's choice merged over the defaults: `defaults || channels`, looked up by the settings
kind of a notification kind (`kinds`, shared.api.SETTINGS_KIND_OF).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from shared.db import Connection

# The newest actor a recipient still hears from and how many there are, for one notification `n`.
_GROUP_ACTORS = """
    CROSS JOIN LATERAL (
        SELECT count(*) AS actor_count,
               (array_agg(a.actor_id ORDER BY a.acted_at DESC, a.actor_id))[1] AS newest_actor_id
        FROM notification_actors a
        WHERE a.notification_id = n.id AND NOT silenced(n.recipient_id, a.actor_id)
    ) actors
    LEFT JOIN people_directory newest ON newest.id = actors.newest_actor_id
"""


async def claim_due(conn: Connection, *, now: datetime, limit: int, lease: timedelta) -> list[asyncpg.Record]:
    """Take due emails for sending, counting an attempt. The lease gives them back if this replica dies."""
    return await conn.fetch(
        """UPDATE emails e SET status = 'sending', attempts = e.attempts + 1, next_attempt_at = $2 + $3::interval
           FROM (SELECT id FROM emails
                 WHERE status IN ('pending', 'sending') AND next_attempt_at <= $2
                 ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
           WHERE e.id = due.id
           RETURNING e.id, e.kind, e.recipient_id, e.post_id, e.actor_id, e.notification_id, e.items,
                     e.attempts, e.created_at""",
        limit,
        now,
        lease,
    )


async def recipient(conn: Connection, recipient_id: str) -> asyncpg.Record:
    """What the policy needs to know of a recipient: address, language, choices, presence, suppression."""
    row = await conn.fetchrow(
        """SELECT d.email AS address, d.name, d.locale AS profile_locale,
                  s.channels, s.locale AS chosen_locale, s.time_zone, s.quiet_start, s.quiet_end, s.digest,
                  p.last_seen_at,
                  EXISTS (SELECT 1 FROM suppressed_addresses x WHERE x.address = lower(d.email)) AS suppressed
           FROM (SELECT $1::text AS id) r
           LEFT JOIN people_directory d ON d.id = r.id
           LEFT JOIN notification_settings s ON s.recipient_id = r.id
           LEFT JOIN presence p ON p.recipient_id = r.id""",
        recipient_id,
    )
    assert row is not None  # selects from a one-row table
    return row


async def groups(conn: Connection, notification_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    """Notifications as they are now, newest activity first: read or not, the post, the newest actor the
    recipient still hears from (mutes and blocks left out) and how many there are."""
    return await conn.fetch(
        f"""SELECT n.id, n.kind, n.post_id, n.read_at, n.updated_at, n.detail,
                   -- Gone: deleted, or hidden by a moderator.
                   p.excerpt, coalesce(p.deleted OR p.hidden, false) AS post_deleted,
                   actors.actor_count, actors.newest_actor_id, newest.name AS newest_actor_name
            FROM notifications n
            LEFT JOIN posts p ON p.id = n.post_id
            {_GROUP_ACTORS}
            WHERE n.id = ANY($1::uuid[])
            ORDER BY n.updated_at DESC, n.id""",
        list(notification_ids),
    )


async def favourite(conn: Connection, *, recipient_id: str, actor_id: str, post_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        """SELECT a.name AS actor_name, p.excerpt, coalesce(p.deleted OR p.hidden, false) AS post_deleted,
                  silenced($1, $2) AS silenced
           FROM (SELECT 1) one
           LEFT JOIN people_directory a ON a.id = $2
           LEFT JOIN posts p ON p.id = $3""",
        recipient_id,
        actor_id,
        post_id,
    )
    assert row is not None  # selects from a one-row table
    return row


async def count_sent_since(conn: Connection, recipient_id: str, *, since: datetime) -> int:
    """Emails sent to the recipient since then, digests not counted (they are where the excess goes)."""
    return int(
        await conn.fetchval(
            """SELECT count(*) FROM emails
               WHERE recipient_id = $1 AND status = 'sent' AND sent_at > $2 AND kind <> 'digest'""",
            recipient_id,
            since,
        )
    )


async def mark_sent(conn: Connection, email_id: uuid.UUID, *, at: datetime, to_address: str) -> None:
    await conn.execute(
        "UPDATE emails SET status = 'sent', sent_at = $2, to_address = $3, last_error = NULL WHERE id = $1",
        email_id,
        at,
        to_address,
    )


async def settle(conn: Connection, email_id: uuid.UUID, *, status: str, reason: str) -> None:
    """Leave an email in a final state (or 'digest') with the reason: skipped, cancelled, failed, digest."""
    await conn.execute("UPDATE emails SET status = $2, last_error = $3 WHERE id = $1", email_id, status, reason)


async def defer(
    conn: Connection, email_id: uuid.UUID, *, until: datetime, reason: str, count_attempt: bool = True
) -> None:
    """Back to the queue until then. Waiting out quiet hours is not an attempt: the claim's count is undone."""
    await conn.execute(
        """UPDATE emails SET status = 'pending', next_attempt_at = $2, last_error = $3,
                             attempts = attempts - CASE WHEN $4 THEN 0 ELSE 1 END
           WHERE id = $1""",
        email_id,
        until,
        reason,
        count_attempt,
    )


async def suppress(conn: Connection, address: str, *, reason: str, at: datetime) -> None:
    await conn.execute(
        """INSERT INTO suppressed_addresses (address, reason, suppressed_at) VALUES (lower($1), $2, $3)
           ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, suppressed_at = excluded.suppressed_at""",
        address,
        reason,
        at,
    )


# Digests.


async def digest_candidates(
    conn: Connection, *, now: datetime, lookback: timedelta, defaults: dict[str, str], kinds: dict[str, str]
) -> list[asyncpg.Record]:
    """Everyone who may have something for a digest: unread notifications of kinds they get in the digest,
    newer than their last digest (and than the lookback), or emails held back by the hourly cap. With their
    digest choices (NULL columns: no settings row, the defaults apply)."""
    return await conn.fetch(
        """SELECT c.recipient_id, s.recipient_id IS NOT NULL AS has_settings, s.digest, s.digest_hour,
                  s.digest_weekday, s.time_zone, s.digest_through, s.created_at
           FROM (
               SELECT n.recipient_id
               FROM notifications n
               LEFT JOIN notification_settings s ON s.recipient_id = n.recipient_id
               WHERE n.read_at IS NULL AND n.updated_at > $1::timestamptz - $2::interval
                 AND (s.digest_through IS NULL OR n.updated_at > s.digest_through)
                 AND ($3::jsonb || coalesce(s.channels, '{}'::jsonb)) ->> ($4::jsonb ->> n.kind) = 'email_digest'
               UNION
               SELECT recipient_id FROM emails WHERE status = 'digest'
           ) c
           LEFT JOIN notification_settings s ON s.recipient_id = c.recipient_id""",
        now,
        lookback,
        defaults,
        kinds,
    )


async def claim_digest_slot(conn: Connection, recipient_id: str, *, slot: datetime, now: datetime) -> bool:
    """Move the person's digest on to `slot`; False if it is there already (another replica did it). Someone
    without a settings row gets one with the defaults, to remember where their digests are."""
    return bool(
        await conn.fetchval(
            """INSERT INTO notification_settings AS s (recipient_id, digest_through, created_at, updated_at)
               VALUES ($1, $2, $3, $3)
               ON CONFLICT (recipient_id) DO UPDATE SET digest_through = excluded.digest_through
               WHERE s.digest_through IS NULL OR s.digest_through < excluded.digest_through
               RETURNING true""",
            recipient_id,
            slot,
            now,
        )
    )


async def lock_capped(conn: Connection, recipient_id: str, *, through: datetime) -> list[uuid.UUID]:
    """The recipient's emails held back by the hourly cap, queued up to `through` (later ones wait for the next
    digest, as the notifications do), locked until the digest that summarises them commits."""
    rows = await conn.fetch(
        """SELECT id FROM emails WHERE recipient_id = $1 AND status = 'digest' AND created_at <= $2
           ORDER BY created_at FOR UPDATE""",
        recipient_id,
        through,
    )
    return [r["id"] for r in rows]


async def digest_content(
    conn: Connection,
    *,
    recipient_id: str,
    since: datetime,
    through: datetime,
    capped: Sequence[uuid.UUID],
    defaults: dict[str, str],
    kinds: dict[str, str],
) -> list[uuid.UUID]:
    """The notifications a digest summarises, newest first: unread ones of the kinds the person gets in the
    digest with activity in (since, through], and those of the capped emails. Read ones and ones whose every
    actor the person muted or blocked (or who blocked them) are left out, as in the inbox."""
    rows = await conn.fetch(
        """WITH wanted AS (
               SELECT n.id FROM notifications n
               LEFT JOIN notification_settings s ON s.recipient_id = n.recipient_id
               WHERE n.recipient_id = $1 AND n.updated_at > $2 AND n.updated_at <= $3
                 AND ($5::jsonb || coalesce(s.channels, '{}'::jsonb)) ->> ($6::jsonb ->> n.kind) = 'email_digest'
               UNION
               SELECT e.notification_id FROM emails e WHERE e.id = ANY($4::uuid[]) AND e.notification_id IS NOT NULL
               UNION
               -- A favourite's email names no notification: the newest group of that post holding the actor.
               SELECT (SELECT n.id FROM notifications n
                       JOIN notification_actors a ON a.notification_id = n.id AND a.actor_id = e.actor_id
                       WHERE n.recipient_id = e.recipient_id AND n.kind = e.kind
                         AND n.post_id IS NOT DISTINCT FROM e.post_id
                       ORDER BY n.created_at DESC LIMIT 1)
               FROM emails e WHERE e.id = ANY($4::uuid[]) AND e.notification_id IS NULL
           )
           SELECT n.id FROM notifications n JOIN wanted w ON w.id = n.id
           WHERE n.recipient_id = $1 AND n.read_at IS NULL
             AND EXISTS (SELECT 1 FROM notification_actors a
                         WHERE a.notification_id = n.id AND NOT silenced(n.recipient_id, a.actor_id))
           ORDER BY n.updated_at DESC, n.id""",
        recipient_id,
        since,
        through,
        list(capped),
        defaults,
        kinds,
    )
    return [r["id"] for r in rows]


async def queue_digest(
    conn: Connection, *, recipient_id: str, dedupe_key: str, items: Sequence[uuid.UUID], now: datetime
) -> uuid.UUID | None:
    """One digest email; None if this slot's digest was queued already."""
    email_id: uuid.UUID | None = await conn.fetchval(
        """INSERT INTO emails (id, dedupe_key, recipient_id, kind, items, next_attempt_at, created_at)
           VALUES ($1, $2, $3, 'digest', $4, $5, $5)
           ON CONFLICT (dedupe_key) DO NOTHING RETURNING id""",
        uuid.uuid4(),
        dedupe_key,
        recipient_id,
        [str(item) for item in items],
        now,
    )
    return email_id


async def settle_many(conn: Connection, email_ids: Sequence[uuid.UUID], *, status: str, reason: str) -> None:
    await conn.execute(
        "UPDATE emails SET status = $2, last_error = $3 WHERE id = ANY($1::uuid[])", list(email_ids), status, reason
    )


# Choices (unsubscribe).


async def channels_for_update(conn: Connection, recipient_id: str) -> dict[str, str] | None:
    """The person's own channel choices, locked until commit; None when they have no settings row."""
    row = await conn.fetchrow(
        "SELECT channels FROM notification_settings WHERE recipient_id = $1 FOR UPDATE", recipient_id
    )
    return None if row is None else dict(row["channels"])


async def choose_channels(conn: Connection, recipient_id: str, channels: dict[str, str], *, now: datetime) -> None:
    """Set some kinds' channels, keeping the others."""
    await conn.execute(
        """INSERT INTO notification_settings AS s (recipient_id, channels, created_at, updated_at)
           VALUES ($1, $2, $3, $3)
           ON CONFLICT (recipient_id) DO UPDATE SET channels = s.channels || excluded.channels, updated_at = $3""",
        recipient_id,
        channels,
        now,
    )


# Operators (python -m tillit mail ...).


async def failed_emails(conn: Connection, *, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT e.id, e.kind, e.recipient_id, coalesce(e.to_address, d.email) AS address, e.attempts,
                  e.last_error, e.created_at
           FROM emails e LEFT JOIN people_directory d ON d.id = e.recipient_id
           WHERE e.status = 'failed' ORDER BY e.created_at DESC LIMIT $1""",
        limit,
    )


async def retry_failed(conn: Connection, email_ids: Sequence[uuid.UUID] | None) -> list[asyncpg.Record]:
    """Queue failed emails again with a fresh count of attempts (all of them when `email_ids` is None)."""
    return await conn.fetch(
        """UPDATE emails SET status = 'pending', attempts = 0, next_attempt_at = now(),
                             last_error = 'retried by an operator after: ' || coalesce(last_error, '?')
           WHERE status = 'failed' AND ($1::uuid[] IS NULL OR id = ANY($1::uuid[]))
           RETURNING id, recipient_id""",
        list(email_ids) if email_ids is not None else None,
    )


async def suppressed_addresses(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT address, reason, suppressed_at FROM suppressed_addresses ORDER BY suppressed_at")


async def unsuppress(conn: Connection, address: str) -> bool:
    return (await conn.execute("DELETE FROM suppressed_addresses WHERE address = lower($1)", address)) != "DELETE 0"
