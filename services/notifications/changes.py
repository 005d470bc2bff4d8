"""The change stream of each person's notifications: numbered, published, replayable.

Triggers record which notifications a transaction touched (migration 0002). Before the transaction commits,
`publish_changes` gives each recipient touched the next number of their stream, stamps it on the
notifications, leaves a tombstone for the ones that are gone, and puts one `notification.changed.v1` event
per recipient in the outbox, rendered in the recipient's language. The number is taken under the lock of the
recipient's stream row, so per recipient the numbers commit in order: a reader that saw change n and asks
for what came after it (`changes_after`) misses nothing, which is what SSE's Last-Event-ID resume needs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from services.notifications import repository
from services.notifications.templates import language_of, notification_title
from shared.api import Notification, NotificationChanges, Person
from shared.db import Connection
from shared.events import EventType, NotificationChangedV1, NotificationView, PersonRef, new_envelope
from shared.outbox import add_to_outbox
from shared.runtime import Janitor
from shared.settings import Settings, get_settings

# Names carried in a change event; the inbox lists everyone.
ACTORS_IN_EVENT = 20
# More changes than this since a reader's last: reloading the inbox is cheaper than replaying them.
MAX_REPLAY = 200
# How long a removal can be replayed. A reader further behind (a laptop closed for a week) reloads instead.
REPLAY_RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class Rendered:
    """A notification as its recipient sees it, or None where no actor is left to show (all silenced)."""

    recipient_id: str
    notification: Notification | None
    notification_id: uuid.UUID


def render(rows: Sequence[asyncpg.Record], *, language: dict[str, str], settings: Settings) -> list[Rendered]:
    """Rows from repository.render_notifications (or inbox_page) as the public Notification shape."""
    rendered = []
    for r in rows:
        if r["actor_count"] == 0:
            rendered.append(Rendered(r["recipient_id"], None, r["id"]))
            continue
        actors = [Person(**actor) for actor in r["actors"]]
        title = notification_title(
            r["kind"],
            newest_actor=actors[0].name or None if actors else None,
            actor_count=r["actor_count"],
            language=language.get(r["recipient_id"], settings.default_locale),
            detail=r["detail"],
        )
        notification = Notification(
            id=r["id"],
            kind=r["kind"],
            post_id=r["post_id"],
            actors=actors,
            actor_count=r["actor_count"],
            read=r["read"],
            title=title,
            url=url_of(
                r["kind"],
                post_id=r["post_id"],
                newest_actor_id=actors[0].id if actors else None,
                actor_count=r["actor_count"],
                settings=settings,
                detail=r["detail"],
            ),
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )
        rendered.append(Rendered(r["recipient_id"], notification, r["id"]))
    return rendered


def url_of(
    kind: str,
    *,
    post_id: uuid.UUID | None,
    newest_actor_id: str | None,
    actor_count: int,
    settings: Settings,
    detail: Mapping[str, Any] | None = None,
) -> str:
    """Where a notification leads on the intranet: its post, campaign or Q&A, one follower's profile, or
    the inbox for several followers. The same in the app and in email."""
    base = settings.public_url.rstrip("/")
    if kind == "qna.answered" and detail:
        return f"{base}/qna/{detail['session_id']}"
    if kind == "campaign.closed" and post_id is not None:
        return f"{base}/campaigns/{post_id}"
    if post_id is not None:
        return f"{base}/posts/{post_id}"
    if kind == "person.followed" and actor_count == 1 and newest_actor_id:
        return f"{base}/people/{newest_actor_id}"
    return f"{base}/notifications"


async def languages(conn: Connection, recipients: Sequence[str], *, token_locale: str | None = None) -> dict[str, str]:
    """Each recipient's language: their notification settings, else the token's claim (when reading), else
    their profile, else the deployment's default."""
    settings = get_settings()
    rows = await repository.locales(conn, list(recipients))
    found = {}
    for r in rows:
        chosen = r["chosen"] or token_locale or r["profile"]
        found[r["recipient_id"]] = language_of(chosen, settings.default_locale)
    return found


async def publish_changes(conn: Connection) -> None:
    """Number, record and announce what this transaction did to anyone's notifications. Call it last, in
    the transaction that made the changes."""
    touched = await repository.take_touched(conn)
    if not touched:
        return
    settings = get_settings()
    by_recipient: dict[str, set[uuid.UUID]] = {}
    for recipient_id, notification_id in touched:
        by_recipient.setdefault(recipient_id, set()).add(notification_id)
    seqs = await repository.next_seqs(conn, sorted(by_recipient))
    ids = [notification_id for ids in by_recipient.values() for notification_id in ids]
    rows = await repository.render_notifications(conn, ids, actor_limit=ACTORS_IN_EVENT)
    existing = {r["id"] for r in rows}
    await repository.stamp_seqs(
        conn,
        [(r["id"], seqs[r["recipient_id"]]) for r in rows],
        removed=[
            (recipient, seqs[recipient], notification_id)
            for recipient, notification_ids in by_recipient.items()
            for notification_id in notification_ids
            if notification_id not in existing
        ],
    )
    language = await languages(conn, list(by_recipient))
    unread = await repository.count_unread_of(conn, list(by_recipient))
    items: dict[str, list[NotificationView]] = {recipient: [] for recipient in by_recipient}
    removed: dict[str, list[uuid.UUID]] = {
        recipient: sorted(i for i in notification_ids if i not in existing)
        for recipient, notification_ids in by_recipient.items()
    }
    for shown in render(rows, language=language, settings=settings):
        if shown.notification is None:
            removed[shown.recipient_id].append(shown.notification_id)
        else:
            items[shown.recipient_id].append(_view(shown.notification))
    for recipient in sorted(by_recipient):
        data = NotificationChangedV1(
            recipient_id=recipient,
            seq=seqs[recipient],
            items=items[recipient],
            removed=removed[recipient],
            unread=unread.get(recipient, 0),
        )
        await add_to_outbox(
            conn, new_envelope(EventType.NOTIFICATION_CHANGED, source="notifications", subject=recipient, data=data)
        )


def _view(notification: Notification) -> NotificationView:
    fields: dict[str, Any] = notification.model_dump()
    fields["actors"] = [PersonRef(**actor) for actor in fields["actors"]]
    return NotificationView(**fields)


async def changes_after(
    pool: asyncpg.Pool, *, recipient_id: str, after: int, token_locale: str | None
) -> NotificationChanges:
    """What a reader who saw change `after` has missed, each notification in its current state."""
    settings = get_settings()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        stream = await repository.stream_of(conn, recipient_id)
        seq, pruned = (stream["seq"], stream["pruned_seq"]) if stream else (0, 0)
        unread = (await repository.count_unread_of(conn, [recipient_id])).get(recipient_id, 0)
        if after > seq or after < pruned:
            return NotificationChanges(seq=seq, items=[], removed=[], unread=unread, reset=True)
        rows = await repository.changed_since(conn, recipient_id, after=after, limit=MAX_REPLAY + 1)
        if len(rows) > MAX_REPLAY:
            return NotificationChanges(seq=seq, items=[], removed=[], unread=unread, reset=True)
        removed = await repository.removed_since(conn, recipient_id, after=after)
        language = await languages(conn, [recipient_id], token_locale=token_locale)
    items, hidden = [], []
    for shown in render(rows, language=language, settings=settings):
        if shown.notification is None:
            hidden.append(shown.notification_id)
        else:
            items.append(shown.notification)
    return NotificationChanges(seq=seq, items=items, removed=[*removed, *hidden], unread=unread)


def removals_janitor(pool: asyncpg.Pool) -> Janitor:
    async def prune(conn: Connection) -> None:
        await repository.prune_removals(conn, older_than=REPLAY_RETENTION)

    return Janitor(pool, name="notification-removals-janitor", prune=prune)
