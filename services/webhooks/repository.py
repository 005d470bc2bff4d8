"""Every SQL statement of the webhooks service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from shared.db import Connection

SUBSCRIPTION_COLUMNS = """id, url, event_types, description, active, disabled_reason, disabled_at,
    consecutive_failures, created_by, created_at"""

# The same rule as shared.api_webhooks.pattern_matches: a type, `<resource>.*` or `*`.
_MATCHES = """(i.event_type = ANY (s.event_types) OR '*' = ANY (s.event_types)
               OR split_part(i.event_type, '.', 1) || '.*' = ANY (s.event_types))"""


# Subscriptions.


async def insert_subscription(
    conn: Connection,
    *,
    subscription_id: uuid.UUID,
    url: str,
    event_types: Sequence[str],
    description: str,
    secret: str,
    created_by: str,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""INSERT INTO subscriptions (id, url, event_types, description, secret, created_by)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SUBSCRIPTION_COLUMNS}, secret""",
        subscription_id,
        url,
        list(event_types),
        description,
        secret,
        created_by,
    )
    assert row is not None
    return row


async def subscriptions(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions ORDER BY created_at, id")


async def subscription(conn: Connection, subscription_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1", subscription_id)


async def delete_subscription(conn: Connection, subscription_id: uuid.UUID) -> bool:
    """The subscription and its delivery log; events nobody else waits for go with the janitor."""
    return await conn.fetchval("DELETE FROM subscriptions WHERE id = $1 RETURNING true", subscription_id) or False


async def enable(conn: Connection, subscription_id: uuid.UUID, *, now: datetime) -> asyncpg.Record | None:
    """Active again with a clean slate; the deliveries suspended when it was disabled are due at once."""
    row = await conn.fetchrow(
        f"""UPDATE subscriptions SET active = true, disabled_reason = NULL, disabled_at = NULL,
                   consecutive_failures = 0, failing_since = NULL
            WHERE id = $1 RETURNING {SUBSCRIPTION_COLUMNS}""",
        subscription_id,
    )
    if row is not None:
        await conn.execute(
            """UPDATE deliveries SET status = 'pending', next_attempt_at = $2
               WHERE subscription_id = $1 AND status = 'suspended'""",
            subscription_id,
            now,
        )
        await conn.execute("SELECT pg_notify(current_schema() || '.deliveries', '')")
    return row


async def rotate_secret(
    conn: Connection, subscription_id: uuid.UUID, *, secret: str, previous_until: datetime
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""UPDATE subscriptions SET previous_secret = secret, previous_secret_until = $3, secret = $2
            WHERE id = $1 RETURNING {SUBSCRIPTION_COLUMNS}, secret""",
        subscription_id,
        secret,
        previous_until,
    )


async def subscription_succeeded(conn: Connection, subscription_id: uuid.UUID) -> None:
    await conn.execute(
        """UPDATE subscriptions SET consecutive_failures = 0, failing_since = NULL
           WHERE id = $1 AND (consecutive_failures <> 0 OR failing_since IS NOT NULL)""",
        subscription_id,
    )


async def subscription_failed(conn: Connection, subscription_id: uuid.UUID, *, at: datetime) -> asyncpg.Record | None:
    """Count one more failed attempt; the subscription's state after it (None if it was deleted meanwhile)."""
    return await conn.fetchrow(
        """UPDATE subscriptions SET consecutive_failures = consecutive_failures + 1,
                  failing_since = coalesce(failing_since, $2)
           WHERE id = $1 RETURNING active, consecutive_failures, failing_since""",
        subscription_id,
        at,
    )


async def disable(conn: Connection, subscription_id: uuid.UUID, *, reason: str, at: datetime) -> None:
    """No more attempts: what was waiting is suspended (kept, and resumed if an admin enables it again)."""
    await conn.execute(
        "UPDATE subscriptions SET active = false, disabled_reason = $2, disabled_at = $3 WHERE id = $1",
        subscription_id,
        reason,
        at,
    )
    await conn.execute(
        """UPDATE deliveries SET status = 'suspended', last_error = coalesce(last_error, $2)
           WHERE subscription_id = $1 AND status IN ('pending', 'delivering')""",
        subscription_id,
        f"suspended: {reason}"[:1000],
    )


# Deliveries.


async def enqueue(
    conn: Connection, *, event_ids: Sequence[uuid.UUID], event_types: Sequence[str], bodies: Sequence[bytes]
) -> int:
    """One delivery per event and active subscription that wants it, once however often the event comes; the
    event's body is stored once, and only if someone wants it. The number of deliveries queued."""
    status = await conn.execute(
        f"""WITH incoming AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS i (event_id, event_type, body)
            ), matched AS (
                -- Key-share locks keep a subscription from being deleted between this and the insert.
                SELECT s.id AS subscription_id, i.event_id, i.event_type, i.body
                FROM incoming i JOIN subscriptions s ON s.active AND {_MATCHES}
                FOR KEY SHARE OF s
            ), stored AS (
                INSERT INTO events (id, type, body)
                SELECT DISTINCT ON (event_id) event_id, event_type, body FROM matched
                ON CONFLICT DO NOTHING
            )
            INSERT INTO deliveries (subscription_id, event_id, event_type)
            SELECT subscription_id, event_id, event_type FROM matched ORDER BY event_id
            ON CONFLICT DO NOTHING""",
        list(event_ids),
        list(event_types),
        list(bodies),
    )
    return int(status.rsplit(" ", 1)[-1])


async def claim_due(conn: Connection, *, now: datetime, limit: int, lease: timedelta) -> list[asyncpg.Record]:
    """Take due deliveries of active subscriptions, counting an attempt. The lease gives them back if this
    replica dies mid-attempt."""
    return await conn.fetch(
        """UPDATE deliveries d SET status = 'delivering', attempts = d.attempts + 1, next_attempt_at = $2 + $3::interval
           FROM (SELECT d.id FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id AND s.active
                 WHERE d.status IN ('pending', 'delivering') AND d.next_attempt_at <= $2
                 ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED) due,
                subscriptions s, events e
           WHERE d.id = due.id AND s.id = d.subscription_id AND e.id = d.event_id
           RETURNING d.id, d.subscription_id, d.event_id, d.event_type, d.attempts, e.body, s.url, s.secret,
                     CASE WHEN s.previous_secret_until > $2 THEN s.previous_secret END AS previous_secret""",
        limit,
        now,
        lease,
    )


async def record_attempt(
    conn: Connection,
    delivery_id: int,
    *,
    attempt: int,
    at: datetime,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
) -> None:
    # Through a SELECT: the subscription, and with it the delivery, may have been deleted mid-attempt.
    await conn.execute(
        """INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, error, duration_ms)
           SELECT id, $2, $3, $4, $5, $6 FROM deliveries WHERE id = $1
           ON CONFLICT DO NOTHING""",
        delivery_id,
        attempt,
        at,
        status_code,
        error,
        duration_ms,
    )


async def mark_delivered(conn: Connection, delivery_id: int, *, at: datetime, status_code: int) -> None:
    await conn.execute(
        """UPDATE deliveries SET status = 'delivered', delivered_at = $2, last_status_code = $3, last_error = NULL
           WHERE id = $1""",
        delivery_id,
        at,
        status_code,
    )


async def settle_failure(
    conn: Connection,
    delivery_id: int,
    *,
    status: str,
    status_code: int | None,
    error: str,
    next_attempt_at: datetime | None = None,
) -> None:
    """After a failed attempt: pending again (with its next attempt), failed for good, or suspended."""
    await conn.execute(
        """UPDATE deliveries SET status = $2, last_status_code = $3, last_error = $4,
                  next_attempt_at = coalesce($5, next_attempt_at)
           WHERE id = $1 AND status <> 'delivered'""",
        delivery_id,
        status,
        status_code,
        error,
        next_attempt_at,
    )


async def delivery_page(
    conn: Connection, subscription_id: uuid.UUID, *, before: int | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT d.id, d.event_id, d.event_type, d.status, d.attempts, d.last_status_code, d.last_error,
                  d.next_attempt_at, d.delivered_at, d.created_at,
                  coalesce((SELECT jsonb_agg(jsonb_build_object('attempt', a.attempt, 'at', a.at,
                                        'status_code', a.status_code, 'error', a.error,
                                        'duration_ms', a.duration_ms) ORDER BY a.attempt)
                            FROM delivery_attempts a WHERE a.delivery_id = d.id), '[]'::jsonb) AS history
           FROM deliveries d
           WHERE d.subscription_id = $1 AND ($2::bigint IS NULL OR d.id < $2)
           ORDER BY d.id DESC LIMIT $3""",
        subscription_id,
        before,
        limit,
    )


async def prune(conn: Connection, *, settled_before: datetime, orphans_before: datetime) -> None:
    """Forget settled deliveries past the log's retention, then event bodies no delivery needs any more."""
    await conn.execute(
        "DELETE FROM deliveries WHERE status IN ('delivered', 'failed') AND created_at < $1", settled_before
    )
    await conn.execute(
        """DELETE FROM events e WHERE e.created_at < $1
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id)""",
        orphans_before,
    )
