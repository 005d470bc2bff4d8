"""Every SQL statement of the notifications service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from shared.db import Connection


async def apply_post_versions(conn: Connection, posts: Sequence[dict[str, Any]]) -> None:
    """Created and deleted posts, the newest version winning; the audience only where it is newer than the
    one an audience change may have brought first."""
    await conn.execute(
        """INSERT INTO posts AS p (id, author_id, excerpt, deleted, version, kind, campaign_id, audience,
                                   audience_version)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bool[], $5::int[], $6::text[], $7::uuid[],
                                $8::jsonb[], $9::int[])
           ON CONFLICT (id) DO UPDATE
           SET author_id = excluded.author_id,
               excerpt = CASE WHEN excluded.deleted THEN p.excerpt ELSE excluded.excerpt END,
               deleted = excluded.deleted, version = excluded.version,
               kind = coalesce(excluded.kind, p.kind), campaign_id = coalesce(excluded.campaign_id, p.campaign_id),
               audience = CASE WHEN excluded.audience_version > p.audience_version
                               THEN excluded.audience ELSE p.audience END,
               audience_version = greatest(p.audience_version, excluded.audience_version)
           WHERE p.version < excluded.version""",
        [p["id"] for p in posts],
        [p["author_id"] for p in posts],
        [p["excerpt"] for p in posts],
        [p["deleted"] for p in posts],
        [p["version"] for p in posts],
        [p.get("kind") for p in posts],
        [p.get("campaign_id") for p in posts],
        [p.get("audience") for p in posts],
        [p.get("audience_version", 0) for p in posts],
    )


async def apply_audiences(conn: Connection, audiences: Sequence[tuple[uuid.UUID, str, dict[str, Any], int]]) -> None:
    """(post, author, audience, version): the newest audience wins, whether or not post.created came first."""
    await conn.execute(
        """INSERT INTO posts AS p (id, author_id, excerpt, deleted, version, audience, audience_version)
           SELECT id, author_id, '', false, 0, audience, version
           FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int[]) AS a(id, author_id, audience, version)
           ON CONFLICT (id) DO UPDATE
           SET audience = excluded.audience, audience_version = excluded.audience_version
           WHERE p.audience_version < excluded.audience_version""",
        [a[0] for a in audiences],
        [a[1] for a in audiences],
        [a[2] for a in audiences],
        [a[3] for a in audiences],
    )


async def apply_moderation(conn: Connection, decisions: Sequence[tuple[uuid.UUID, str, bool, int]]) -> list[uuid.UUID]:
    """(post, author, hidden, version): the newest decision wins. Returns the posts whose state changed."""
    rows = await conn.fetch(
        """INSERT INTO posts AS p (id, author_id, excerpt, deleted, version, hidden, moderation_version)
           SELECT id, author_id, '', false, 0, hidden, version
           FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::bigint[]) AS m(id, author_id, hidden, version)
           ON CONFLICT (id) DO UPDATE
           SET hidden = excluded.hidden, moderation_version = excluded.moderation_version
           WHERE p.moderation_version < excluded.moderation_version
           RETURNING id""",
        [d[0] for d in decisions],
        [d[1] for d in decisions],
        [d[2] for d in decisions],
        [d[3] for d in decisions],
    )
    return [r["id"] for r in rows]


async def touch_notifications_of_posts(conn: Connection, post_ids: Sequence[uuid.UUID]) -> None:
    """Announce the notifications about these posts again (shown or gone: publish_changes decides)."""
    await conn.execute(
        "UPDATE notifications SET updated_at = updated_at WHERE post_id = ANY($1::uuid[])", list(post_ids)
    )


async def apply_comment_versions(
    conn: Connection, comments: Sequence[tuple[uuid.UUID, uuid.UUID, str, bool, int]]
) -> list[uuid.UUID]:
    """(comment, post, author, deleted, version), the newest winning. Returns the comments changed."""
    rows = await conn.fetch(
        """INSERT INTO comments AS c (id, post_id, author_id, deleted, version)
           SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bool[], $5::int[])
           ON CONFLICT (id) DO UPDATE SET deleted = excluded.deleted, version = excluded.version
           WHERE c.version < excluded.version
           RETURNING id""",
        [c[0] for c in comments],
        [c[1] for c in comments],
        [c[2] for c in comments],
        [c[3] for c in comments],
        [c[4] for c in comments],
    )
    return [r["id"] for r in rows]


async def remove_actor_from_open_groups_of_post(
    conn: Connection, *, post_id: uuid.UUID, kinds: Sequence[str], actor_id: str
) -> None:
    """Take an actor out of every unread group of these kinds about a post, whoever's it is; empty ones go."""
    await conn.execute(
        """DELETE FROM notification_actors a USING notifications n
           WHERE a.notification_id = n.id AND n.is_open AND n.post_id = $1 AND n.kind = ANY($2::text[])
             AND a.actor_id = $3""",
        post_id,
        list(kinds),
        actor_id,
    )
    await conn.execute(
        """DELETE FROM notifications n
           WHERE n.is_open AND n.post_id = $1 AND n.kind = ANY($2::text[])
             AND NOT EXISTS (SELECT 1 FROM notification_actors a WHERE a.notification_id = n.id)""",
        post_id,
        list(kinds),
    )


async def still_commenting(conn: Connection, post_id: uuid.UUID, author_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM comments WHERE post_id = $1 AND author_id = $2 AND NOT deleted)",
            post_id,
            author_id,
        )
    )


async def participants(conn: Connection, post_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    """Per post: its author, the people who back it (an active like) and those who commented on it, each
    once, and whether they may see it now."""
    return await conn.fetch(
        """WITH people AS (
               SELECT p.id AS post_id, p.author_id AS person_id FROM posts p WHERE p.id = ANY($1::uuid[])
               UNION
               SELECT s.post_id, s.actor_id FROM reaction_states s
               WHERE s.post_id = ANY($1::uuid[]) AND s.kind = 'post.liked' AND s.active
               UNION
               SELECT c.post_id, c.author_id FROM comments c WHERE c.post_id = ANY($1::uuid[]) AND NOT c.deleted
           )
           SELECT people.post_id, people.person_id,
                  p.audience IS NOT NULL AND may_see(people.person_id, p.author_id, p.audience) AS may_see
           FROM people JOIN posts p ON p.id = people.post_id
           WHERE NOT p.deleted AND NOT p.hidden""",
        list(post_ids),
    )


async def ideas_of(conn: Connection, campaign_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch("SELECT id FROM posts WHERE campaign_id = $1", campaign_id)
    return [r["id"] for r in rows]


async def may_see_post(conn: Connection, post_id: uuid.UUID, people: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        """SELECT person FROM unnest($2::text[]) AS person, posts p
           WHERE p.id = $1 AND NOT p.deleted AND NOT p.hidden AND p.audience IS NOT NULL
             AND may_see(person, p.author_id, p.audience)""",
        post_id,
        list(people),
    )
    return {r["person"] for r in rows}


async def start_notification(
    conn: Connection,
    *,
    recipient_id: str,
    kind: str,
    post_id: uuid.UUID | None,
    actor_id: str,
    at: datetime,
    detail: dict[str, Any],
) -> uuid.UUID:
    """A notification of its own (a status change, an answer): any open group of the same key closes first,
    so each one is read, and emailed, on its own."""
    await conn.execute(
        """UPDATE notifications SET is_open = false
           WHERE recipient_id = $1 AND post_id IS NOT DISTINCT FROM $2 AND kind = $3 AND is_open""",
        recipient_id,
        post_id,
        kind,
    )
    notification_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO notifications (id, recipient_id, kind, post_id, created_at, updated_at, detail)
           VALUES ($1, $2, $3, $4, $5, $5, $6)""",
        notification_id,
        recipient_id,
        kind,
        post_id,
        at,
        detail,
    )
    await conn.execute(
        "INSERT INTO notification_actors (notification_id, actor_id, acted_at) VALUES ($1, $2, $3)",
        notification_id,
        actor_id,
        at,
    )
    return notification_id


async def forget_post(conn: Connection, post_ids: Sequence[uuid.UUID]) -> None:
    """A deleted post leaves every inbox, and its unsent emails are not sent."""
    await conn.execute("DELETE FROM notifications WHERE post_id = ANY($1::uuid[])", list(post_ids))
    await conn.execute(
        """UPDATE emails SET status = 'cancelled', last_error = 'the post was deleted'
           WHERE post_id = ANY($1::uuid[]) AND status IN ('pending', 'sending')""",
        list(post_ids),
    )


async def post_is_deleted(conn: Connection, post_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT deleted FROM posts WHERE id = $1", post_id))


async def advance_reaction_state(
    conn: Connection, *, post_id: uuid.UUID, actor_id: str, kind: str, active: bool, version: int
) -> bool:
    """Record the reaction state if it is newer than the one applied; False for a stale or repeated event."""
    return bool(
        await conn.fetchval(
            """INSERT INTO reaction_states AS s (post_id, actor_id, kind, active, version)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (post_id, actor_id, kind) DO UPDATE SET active = excluded.active, version = excluded.version
               WHERE s.version < excluded.version
               RETURNING true""",
            post_id,
            actor_id,
            kind,
            active,
            version,
        )
    )


async def add_actor_to_group(
    conn: Connection,
    *,
    recipient_id: str,
    kind: str,
    post_id: uuid.UUID | None,
    actor_id: str,
    at: datetime,
    window: timedelta,
) -> uuid.UUID:
    """Join the open group for (recipient, post, kind), or start one when none is open. No post: a follow."""
    await conn.execute(
        """UPDATE notifications SET is_open = false
           WHERE recipient_id = $1 AND post_id IS NOT DISTINCT FROM $2 AND kind = $3 AND is_open AND created_at < $4""",
        recipient_id,
        post_id,
        kind,
        at - window,
    )
    notification_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO notifications AS n (id, recipient_id, kind, post_id, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $5)
           ON CONFLICT (recipient_id, post_id, kind) WHERE is_open
           DO UPDATE SET updated_at = greatest(n.updated_at, excluded.updated_at)
           RETURNING id""",
        uuid.uuid4(),
        recipient_id,
        kind,
        post_id,
        at,
    )
    await conn.execute(
        """INSERT INTO notification_actors AS a (notification_id, actor_id, acted_at) VALUES ($1, $2, $3)
           ON CONFLICT (notification_id, actor_id) DO UPDATE SET acted_at = greatest(a.acted_at, excluded.acted_at)""",
        notification_id,
        actor_id,
        at,
    )
    return notification_id


async def remove_actor_from_open_group(
    conn: Connection, *, recipient_id: str, kind: str, post_id: uuid.UUID | None, actor_id: str
) -> None:
    """An unlike (or unfollow) takes the actor out of a group still unread; a group left empty goes."""
    await conn.execute(
        """DELETE FROM notification_actors a USING notifications n
           WHERE a.notification_id = n.id AND n.is_open
             AND n.recipient_id = $1 AND n.post_id IS NOT DISTINCT FROM $2 AND n.kind = $3 AND a.actor_id = $4""",
        recipient_id,
        post_id,
        kind,
        actor_id,
    )
    await conn.execute(
        """DELETE FROM notifications n
           WHERE n.is_open AND n.recipient_id = $1 AND n.post_id IS NOT DISTINCT FROM $2 AND n.kind = $3
             AND NOT EXISTS (SELECT 1 FROM notification_actors a WHERE a.notification_id = n.id)""",
        recipient_id,
        post_id,
        kind,
    )


async def queue_email(
    conn: Connection, *, dedupe_key: str, recipient_id: str, kind: str, post_id: uuid.UUID, actor_id: str
) -> None:
    await conn.execute(
        """INSERT INTO emails (id, dedupe_key, recipient_id, kind, post_id, actor_id)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING""",
        uuid.uuid4(),
        dedupe_key,
        recipient_id,
        kind,
        post_id,
        actor_id,
    )


# Set-based forms of the statements above, for a batch of reaction events (service.apply_reactions).


async def advance_reaction_states(
    conn: Connection, states: Sequence[tuple[uuid.UUID, str, str, bool, int, str]]
) -> list[asyncpg.Record]:
    """advance_reaction_state for many (post, actor, kind, active, version, recipient) at once, each key at
    most once. Returns a row per key whose state was newer than the one applied, with what adding the actor
    needs to know (in the same round trip): whether the post is deleted, and since when the group of
    (recipient, post, kind) is open (NULL: no open group)."""
    return await conn.fetch(
        """WITH input AS (
               SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bool[], $5::bigint[], $6::text[])
                   AS i(post_id, actor_id, kind, active, version, recipient_id)
           ), advanced AS (
               INSERT INTO reaction_states AS s (post_id, actor_id, kind, active, version)
               SELECT post_id, actor_id, kind, active, version FROM input
               ON CONFLICT (post_id, actor_id, kind) DO UPDATE
               SET active = excluded.active, version = excluded.version
               WHERE s.version < excluded.version
               RETURNING post_id, actor_id, kind
           )
           SELECT a.post_id, a.actor_id, a.kind, coalesce(p.deleted, false) AS post_deleted,
                  n.created_at AS open_since
           FROM advanced a
           JOIN input i ON i.post_id = a.post_id AND i.actor_id = a.actor_id AND i.kind = a.kind
           LEFT JOIN posts p ON p.id = i.post_id
           -- All three columns from `input`, so the open-group index is searched on all of them whatever
           -- the join order (on recipient_id alone it reads every group of the recipient).
           LEFT JOIN notifications n
             ON n.recipient_id = i.recipient_id AND n.post_id = i.post_id AND n.kind = i.kind AND n.is_open""",
        *(list(column) for column in zip(*states, strict=True)),
    )


async def remove_actors_from_open_groups(conn: Connection, removals: Sequence[tuple[str, uuid.UUID, str, str]]) -> None:
    """remove_actor_from_open_group for many (recipient, post, kind, actor) at once."""
    recipients, posts, kinds, actors = (list(column) for column in zip(*removals, strict=True))
    await conn.execute(
        """DELETE FROM notification_actors a
           USING notifications n,
                 unnest($1::text[], $2::uuid[], $3::text[], $4::text[]) AS r(recipient_id, post_id, kind, actor_id)
           WHERE a.notification_id = n.id AND n.is_open
             AND n.recipient_id = r.recipient_id AND n.post_id = r.post_id AND n.kind = r.kind
             AND a.actor_id = r.actor_id""",
        recipients,
        posts,
        kinds,
        actors,
    )
    await conn.execute(
        """DELETE FROM notifications n
           USING unnest($1::text[], $2::uuid[], $3::text[]) AS r(recipient_id, post_id, kind)
           WHERE n.is_open AND n.recipient_id = r.recipient_id AND n.post_id = r.post_id AND n.kind = r.kind
             AND NOT EXISTS (SELECT 1 FROM notification_actors a WHERE a.notification_id = n.id)""",
        recipients,
        posts,
        kinds,
    )


async def close_groups(conn: Connection, closes: Sequence[tuple[str, uuid.UUID, str, datetime]]) -> None:
    """Close the open group of each (recipient, post, kind) if it was created before the cutoff."""
    await conn.execute(
        """UPDATE notifications n SET is_open = false
           FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[]) AS c(recipient_id, post_id, kind, cutoff)
           WHERE n.recipient_id = c.recipient_id AND n.post_id = c.post_id AND n.kind = c.kind
             AND n.is_open AND n.created_at < c.cutoff""",
        *(list(column) for column in zip(*closes, strict=True)),
    )


async def join_groups(
    conn: Connection,
    *,
    people: Sequence[tuple[str, str]],
    groups: Sequence[tuple[uuid.UUID, str, str, uuid.UUID, datetime, datetime]],
    actors: Sequence[tuple[str, uuid.UUID, str, str, datetime]],
) -> None:
    """add_actor_to_group (without the closing) and remember_person for many at once, in one statement.

    people: (id, name); groups: (new id, recipient, kind, post, created_at, updated_at), each
    (recipient, post, kind) once, joining the open group if there is one; actors: (recipient, post,
    kind, actor, acted_at), going to the group of their (recipient, post, kind)."""
    people_columns = [list(c) for c in zip(*people, strict=True)] if people else [[], []]
    await conn.execute(
        """WITH people AS (
               INSERT INTO people_directory (id, name, version)
               SELECT id, name, 0 FROM unnest($1::text[], $2::text[]) AS p(id, name)
               ON CONFLICT (id) DO NOTHING
           ), groups AS (
               INSERT INTO notifications AS n (id, recipient_id, kind, post_id, created_at, updated_at)
               SELECT * FROM unnest($3::uuid[], $4::text[], $5::text[], $6::uuid[],
                                    $7::timestamptz[], $8::timestamptz[])
               ON CONFLICT (recipient_id, post_id, kind) WHERE is_open
               DO UPDATE SET updated_at = greatest(n.updated_at, excluded.updated_at)
               RETURNING id, recipient_id, post_id, kind
           )
           INSERT INTO notification_actors AS a (notification_id, actor_id, acted_at)
           SELECT g.id, x.actor_id, x.acted_at
           FROM unnest($9::text[], $10::uuid[], $11::text[], $12::text[], $13::timestamptz[])
                AS x(recipient_id, post_id, kind, actor_id, acted_at)
           JOIN groups g ON g.recipient_id = x.recipient_id AND g.post_id = x.post_id AND g.kind = x.kind
           ON CONFLICT (notification_id, actor_id) DO UPDATE SET acted_at = greatest(a.acted_at, excluded.acted_at)""",
        *people_columns,
        *(list(column) for column in zip(*groups, strict=True)),
        *(list(column) for column in zip(*actors, strict=True)),
    )


async def queue_emails(conn: Connection, emails: Sequence[tuple[str, str, str, uuid.UUID, str]]) -> None:
    """queue_email for many (dedupe_key, recipient, kind, post, actor) at once."""
    await conn.execute(
        """INSERT INTO emails (id, dedupe_key, recipient_id, kind, post_id, actor_id)
           SELECT gen_random_uuid(), * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::text[])
           ON CONFLICT (dedupe_key) DO NOTHING""",
        *(list(column) for column in zip(*emails, strict=True)),
    )


async def inbox_page(
    conn: Connection, *, recipient_id: str, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    if after is None:
        after_clause, args = "", [recipient_id, limit]
    else:
        after_clause, args = "AND (n.updated_at, n.id) < ($3, $4)", [recipient_id, limit, after[0], after[1]]
    return await conn.fetch(
        _RENDERED.format(_UNSEEN=_UNSEEN, actor_limit=1_000_000)
        + f""" WHERE n.recipient_id = $1 AND actors.count > 0 AND NOT hidden.post {after_clause}
               ORDER BY n.updated_at DESC, n.id DESC
               LIMIT $2""",
        *args,
    )


async def count_unread(conn: Connection, recipient_id: str) -> int:
    return int(
        await conn.fetchval(
            f"""SELECT count(*) FROM notifications n
               WHERE n.recipient_id = $1 AND n.read_at IS NULL
                 AND NOT EXISTS (SELECT 1 FROM posts p WHERE p.id = n.post_id AND {_UNSEEN})
                 AND EXISTS (SELECT 1 FROM notification_actors a
                             WHERE a.notification_id = n.id AND NOT silenced(n.recipient_id, a.actor_id))""",
            recipient_id,
        )
    )


async def mark_read(conn: Connection, *, recipient_id: str, ids: Sequence[uuid.UUID] | None) -> int:
    """Mark the recipient's own notifications read (ids of others' are ignored); a read group is closed."""
    result = await conn.execute(
        """UPDATE notifications SET read_at = now(), is_open = false
           WHERE recipient_id = $1 AND read_at IS NULL AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[]))""",
        recipient_id,
        list(ids) if ids is not None else None,
    )
    return int(result.split()[-1])


async def claim_due_emails(conn: Connection, *, limit: int, lease: timedelta) -> list[asyncpg.Record]:
    """Take due emails for sending. The lease makes a replica that died mid-send give them back."""
    return await conn.fetch(
        """UPDATE emails e SET status = 'sending', attempts = e.attempts + 1, next_attempt_at = now() + $2
           FROM (SELECT id FROM emails
                 WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()
                 ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
           WHERE e.id = due.id
           RETURNING e.id, e.kind, e.recipient_id, e.post_id, e.actor_id, e.attempts, e.created_at""",
        limit,
        lease,
    )


async def email_details(conn: Connection, *, recipient_id: str, actor_id: str, post_id: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        """SELECT r.email AS recipient_email, r.name AS recipient_name, r.locale AS recipient_locale,
                  a.name AS actor_name, p.excerpt AS post_excerpt, coalesce(p.deleted, false) AS post_deleted
           FROM (SELECT 1) one
           LEFT JOIN people_directory r ON r.id = $1
           LEFT JOIN people_directory a ON a.id = $2
           LEFT JOIN posts p ON p.id = $3""",
        recipient_id,
        actor_id,
        post_id,
    )
    assert row is not None  # the query selects from a one-row table
    return row


async def mark_email_sent(conn: Connection, email_id: uuid.UUID) -> None:
    await conn.execute("UPDATE emails SET status = 'sent', sent_at = now(), last_error = NULL WHERE id = $1", email_id)


async def reschedule_email(conn: Connection, email_id: uuid.UUID, *, delay: timedelta, error: str) -> None:
    await conn.execute(
        "UPDATE emails SET status = 'pending', next_attempt_at = now() + $2, last_error = $3 WHERE id = $1",
        email_id,
        delay,
        error,
    )


async def fail_email(conn: Connection, email_id: uuid.UUID, *, error: str, status: str = "failed") -> None:
    await conn.execute("UPDATE emails SET status = $2, last_error = $3 WHERE id = $1", email_id, status, error)


async def silenced_pairs(conn: Connection, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Of (recipient, actor) pairs, those where the recipient must not hear from the actor (mute, block)."""
    rows = await conn.fetch(
        """SELECT recipient, actor FROM unnest($1::text[], $2::text[]) AS p(recipient, actor)
           WHERE silenced(recipient, actor)""",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    return {(r["recipient"], r["actor"]) for r in rows}


# The change stream (services.notifications.changes).

# A post the recipient of a notification about it must not be shown (p: the post, n: the notification).
_UNSEEN = "(p.hidden OR (p.audience IS NOT NULL AND NOT may_see(n.recipient_id, p.author_id, p.audience)))"

# One notification as its reader sees it: the actors they have not silenced, newest first (the first
# `actor_limit`), and how many there are in all.
_RENDERED = """
    SELECT n.id, n.recipient_id, n.kind, n.post_id, n.read_at IS NOT NULL AS read, n.created_at, n.updated_at,
           n.seq, n.detail, CASE WHEN hidden.post THEN 0 ELSE actors.count END AS actor_count,
           actors.list AS actors
    FROM notifications n
    -- A post its reader may no longer see (its audience narrowed, a follow ended) or a moderator hid takes
    -- its notifications with it (actor_count 0: not shown), until it is visible again.
    CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM posts p WHERE p.id = n.post_id AND {_UNSEEN}) AS post) hidden
    CROSS JOIN LATERAL (
        SELECT coalesce(jsonb_agg(jsonb_build_object('id', v.actor_id, 'name', coalesce(d.name, ''))
                                  ORDER BY v.acted_at DESC, v.actor_id) FILTER (WHERE v.rank <= {actor_limit}),
                        '[]'::jsonb) AS list,
               count(*) AS count
        FROM (SELECT a.actor_id, a.acted_at, row_number() OVER (ORDER BY a.acted_at DESC, a.actor_id) AS rank
              FROM notification_actors a
              WHERE a.notification_id = n.id AND NOT silenced(n.recipient_id, a.actor_id)) v
        LEFT JOIN people_directory d ON d.id = v.actor_id AND v.rank <= {actor_limit}
    ) actors
"""


async def take_touched(conn: Connection) -> list[tuple[str, uuid.UUID]]:
    """The notifications this transaction changed (recorded by triggers), forgotten as they are taken."""
    rows = await conn.fetch("DELETE FROM notifications_touched RETURNING recipient_id, notification_id")
    return sorted({(r["recipient_id"], r["notification_id"]) for r in rows})


async def next_seqs(conn: Connection, recipients: Sequence[str]) -> dict[str, int]:
    """The next change number of each recipient. Locks their stream rows until commit (in sorted order, so
    two transactions cannot deadlock here): numbers commit in order per recipient."""
    rows = await conn.fetch(
        """INSERT INTO notification_streams AS s (recipient_id, seq)
           SELECT r, 1 FROM unnest($1::text[]) AS r ORDER BY r
           ON CONFLICT (recipient_id) DO UPDATE SET seq = s.seq + 1
           RETURNING recipient_id, seq""",
        sorted(recipients),
    )
    return {r["recipient_id"]: r["seq"] for r in rows}


async def render_notifications(conn: Connection, ids: Sequence[uuid.UUID], *, actor_limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        _RENDERED.format(_UNSEEN=_UNSEEN, actor_limit=int(actor_limit))
        + " WHERE n.id = ANY($1::uuid[]) ORDER BY n.updated_at DESC",
        list(ids),
    )


async def stamp_seqs(
    conn: Connection,
    changed: Sequence[tuple[uuid.UUID, int]],
    *,
    removed: Sequence[tuple[str, int, uuid.UUID]],
) -> None:
    if changed:
        await conn.execute(
            """UPDATE notifications n SET seq = c.seq
               FROM unnest($1::uuid[], $2::bigint[]) AS c(id, seq) WHERE n.id = c.id""",
            [c[0] for c in changed],
            [c[1] for c in changed],
        )
    if removed:
        await conn.execute(
            """INSERT INTO notification_removals (recipient_id, seq, notification_id)
               SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[]) ON CONFLICT DO NOTHING""",
            [r[0] for r in removed],
            [r[1] for r in removed],
            [r[2] for r in removed],
        )


async def locales(conn: Connection, recipients: Sequence[str]) -> list[asyncpg.Record]:
    """Per recipient: the language chosen in their notification settings and the one in their profile."""
    return await conn.fetch(
        """SELECT r AS recipient_id, s.locale AS chosen, d.locale AS profile
           FROM unnest($1::text[]) AS r
           LEFT JOIN notification_settings s ON s.recipient_id = r
           LEFT JOIN people_directory d ON d.id = r""",
        list(recipients),
    )


async def count_unread_of(conn: Connection, recipients: Sequence[str]) -> dict[str, int]:
    rows = await conn.fetch(
        f"""SELECT n.recipient_id, count(*) AS unread FROM notifications n
           WHERE n.recipient_id = ANY($1::text[]) AND n.read_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM posts p WHERE p.id = n.post_id AND {_UNSEEN})
             AND EXISTS (SELECT 1 FROM notification_actors a
                         WHERE a.notification_id = n.id AND NOT silenced(n.recipient_id, a.actor_id))
           GROUP BY n.recipient_id""",
        list(recipients),
    )
    return {r["recipient_id"]: int(r["unread"]) for r in rows}


async def stream_of(conn: Connection, recipient_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT seq, pruned_seq FROM notification_streams WHERE recipient_id = $1", recipient_id)


async def changed_since(conn: Connection, recipient_id: str, *, after: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        _RENDERED.format(_UNSEEN=_UNSEEN, actor_limit=1_000_000)
        + " WHERE n.recipient_id = $1 AND n.seq > $2 ORDER BY n.seq, n.updated_at LIMIT $3",
        recipient_id,
        after,
        limit,
    )


async def removed_since(conn: Connection, recipient_id: str, *, after: int) -> list[uuid.UUID]:
    rows = await conn.fetch(
        """SELECT DISTINCT notification_id FROM notification_removals r
           WHERE r.recipient_id = $1 AND r.seq > $2
             AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = r.notification_id)""",
        recipient_id,
        after,
    )
    return [r["notification_id"] for r in rows]


async def prune_removals(conn: Connection, *, older_than: timedelta) -> int:
    """Forget tombstones older than a reader could still be behind by; a reader behind them must reload."""
    rows = await conn.fetch(
        """WITH pruned AS (
               DELETE FROM notification_removals WHERE removed_at < now() - $1::interval
               RETURNING recipient_id, seq
           ), highest AS (SELECT recipient_id, max(seq) AS seq FROM pruned GROUP BY recipient_id)
           UPDATE notification_streams s SET pruned_seq = greatest(s.pruned_seq, h.seq)
           FROM highest h WHERE s.recipient_id = h.recipient_id
           RETURNING s.recipient_id""",
        older_than,
    )
    return len(rows)


# Per-person choices (notification settings) and presence.


async def settings_of(conn: Connection, recipients: Sequence[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        "SELECT * FROM notification_settings WHERE recipient_id = ANY($1::text[])", list(recipients)
    )
    return {r["recipient_id"]: r for r in rows}


async def save_settings(conn: Connection, recipient_id: str, fields: dict[str, Any]) -> None:
    """Upsert the given columns of a person's settings (channels are merged, not replaced)."""
    columns = list(fields)
    values = [fields[c] for c in columns]
    assignments = ", ".join(
        "channels = s.channels || excluded.channels" if c == "channels" else f"{c} = excluded.{c}" for c in columns
    )
    placeholders = ", ".join(f"${i + 2}" for i in range(len(columns)))
    await conn.execute(
        f"""INSERT INTO notification_settings AS s (recipient_id, {", ".join(columns)}) VALUES ($1, {placeholders})
            ON CONFLICT (recipient_id) DO UPDATE SET {assignments}{", " if assignments else ""}updated_at = now()""",
        recipient_id,
        *values,
    )


async def touch_presence(conn: Connection, recipient_id: str, *, at_most_every: timedelta) -> None:
    await conn.execute(
        """INSERT INTO presence AS p (recipient_id, last_seen_at) VALUES ($1, now())
           ON CONFLICT (recipient_id) DO UPDATE SET last_seen_at = excluded.last_seen_at
           WHERE p.last_seen_at < excluded.last_seen_at - $2::interval""",
        recipient_id,
        at_most_every,
    )


async def open_groups(
    conn: Connection, keys: Sequence[tuple[str, uuid.UUID | None, str]]
) -> dict[tuple[str, uuid.UUID | None, str], uuid.UUID]:
    """The open group of each (recipient, post, kind), where there is one."""
    rows = await conn.fetch(
        """SELECT n.id, n.recipient_id, n.post_id, n.kind
           FROM unnest($1::text[], $2::uuid[], $3::text[]) AS k(recipient_id, post_id, kind)
           JOIN notifications n ON n.recipient_id = k.recipient_id AND n.post_id IS NOT DISTINCT FROM k.post_id
                               AND n.kind = k.kind AND n.is_open""",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    return {(r["recipient_id"], r["post_id"], r["kind"]): r["id"] for r in rows}


async def queue_group_emails(
    conn: Connection, emails: Sequence[tuple[str, str, str, uuid.UUID | None, uuid.UUID]], *, delay: timedelta
) -> None:
    """One email per group (dedupe_key, recipient, kind, post, notification), sent after `delay` if still due."""
    await conn.execute(
        """INSERT INTO emails (id, dedupe_key, recipient_id, kind, post_id, notification_id, next_attempt_at)
           SELECT gen_random_uuid(), k, r, kd, p, n, now() + $6::interval
           FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::uuid[]) AS e(k, r, kd, p, n)
           ON CONFLICT (dedupe_key) DO NOTHING""",
        *(list(column) for column in zip(*emails, strict=True)),
        delay,
    )


async def advance_follow_state(conn: Connection, *, actor_id: str, target_id: str, active: bool, version: int) -> bool:
    return bool(
        await conn.fetchval(
            """INSERT INTO follow_states AS s (actor_id, target_id, active, version) VALUES ($1, $2, $3, $4)
               ON CONFLICT (actor_id, target_id) DO UPDATE SET active = excluded.active, version = excluded.version
               WHERE s.version < excluded.version
               RETURNING true""",
            actor_id,
            target_id,
            active,
            version,
        )
    )
