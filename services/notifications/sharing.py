"""Notifications of the sharing features: comments, mentions, praise, accepted answers, idea campaigns and
live Q&A, and what moderation takes out of the inbox.

Who is told is decided here from events and this service's own replicas, and only people who may see what a
notification is about are told: the posts service already filtered mentions and earlier commenters by the
post's audience when it published them; for an idea's status and a campaign's result, the backers and
commenters are checked against the audience now (may_see over the graph replica).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.notifications import repository
from services.notifications.changes import publish_changes
from services.notifications.service import GROUPING_WINDOW, Joined, apply_post_changes, channels_of, queue_emails
from shared.api import SETTINGS_KIND_OF
from shared.db import Connection
from shared.directory import remember_person
from shared.events import (
    AnswerAcceptedV1,
    CampaignClosedV1,
    CommentCreatedV1,
    CommentDeletedV1,
    ContentModeratedV1,
    Event,
    IdeaStatusChangedV1,
    PostAudienceChangedV1,
    PostCreatedV1,
    QnaQuestionAnsweredV1,
    newest_by_version,
)

COMMENT_KINDS = ("post.commented", "thread.commented")


@dataclass(frozen=True)
class Notice:
    """Tell `recipient` that `actor_id` did `kind` about `post_id`. Grouped notices join the open group of
    their (recipient, post, kind); the others stand on their own, with `detail` for their title."""

    recipient_id: str
    kind: str
    post_id: uuid.UUID | None
    actor_id: str
    actor_name: str | None
    at: datetime
    grouped: bool = True
    detail: dict[str, Any] = field(default_factory=dict)


async def notify(conn: Connection, notices: Sequence[Notice]) -> None:
    """Write the notices people want: never one's own act, never from someone they muted or blocked (or who
    blocked them), never of a kind they turned off. Then the emails they chose, then the change stream."""
    notices = [n for n in notices if n.recipient_id != n.actor_id]
    if notices:
        silenced = await repository.silenced_pairs(conn, list({(n.recipient_id, n.actor_id) for n in notices}))
        channels = await channels_of(conn, list({n.recipient_id for n in notices}))
        notices = [
            n
            for n in notices
            if (n.recipient_id, n.actor_id) not in silenced
            and channels[n.recipient_id][SETTINGS_KIND_OF[n.kind]] != "off"
        ]
    joined = []
    for notice in notices:
        if notice.actor_name is not None:
            await remember_person(conn, person_id=notice.actor_id, name=notice.actor_name)
        if notice.grouped:
            await repository.add_actor_to_group(
                conn,
                recipient_id=notice.recipient_id,
                kind=notice.kind,
                post_id=notice.post_id,
                actor_id=notice.actor_id,
                at=notice.at,
                window=GROUPING_WINDOW,
            )
        else:
            await repository.start_notification(
                conn,
                recipient_id=notice.recipient_id,
                kind=notice.kind,
                post_id=notice.post_id,
                actor_id=notice.actor_id,
                at=notice.at,
                detail=notice.detail,
            )
        joined.append(Joined(notice.recipient_id, notice.post_id, notice.kind, actor_id=notice.actor_id))
    await queue_emails(conn, joined)
    await publish_changes(conn)


def post_notices(events: Sequence[Event]) -> list[Notice]:
    """Mentions in a new post, and the people a praise post praises (both already only people who may see
    the post: the posts service checked the audience)."""
    notices = []
    for event in events:
        data = event.data
        if not isinstance(data, PostCreatedV1):
            continue
        author, at = data.author, data.created_at
        praised = {recipient.id for recipient in data.recipients}
        notices += [
            Notice(person, "praise.received", data.post_id, author.id, author.name, at) for person in sorted(praised)
        ]
        # Praised and mentioned in one post: the praise says it all.
        notices += [
            Notice(person, "person.mentioned", data.post_id, author.id, author.name, at)
            for person in sorted(set(data.mentions) - praised)
        ]
    return notices


async def apply_posts(conn: Connection, events: Sequence[Event]) -> None:
    """post.created, post.deleted and post.audience_changed: the replica, then who a new post mentions or
    praises."""
    await apply_post_changes(conn, events)
    changes = [e.data for e in events if isinstance(e.data, PostAudienceChangedV1)]
    newest = newest_by_version(changes, key=lambda c: c.post_id, version=lambda c: c.version)
    if newest:
        await repository.apply_audiences(
            conn, [(c.post_id, c.author_id, c.audience.model_dump(), c.version) for c in newest.values()]
        )
        # Who may see the post changed: its notifications leave (or return to) inboxes and streams.
        await repository.touch_notifications_of_posts(conn, list(newest))
    await notify(conn, post_notices(events))


async def apply_sharing(conn: Connection, events: Sequence[Event]) -> None:
    """comment.*, question.answer_accepted, idea.status_changed, campaign.closed, qna.question_answered and
    content.moderated, in batch order."""
    notices: list[Notice] = []
    comments = [e.data for e in events if isinstance(e.data, CommentCreatedV1 | CommentDeletedV1)]
    newest_comments = newest_by_version(comments, key=lambda c: c.comment_id, version=lambda c: c.version)
    changed = set(
        await repository.apply_comment_versions(
            conn,
            [
                (
                    c.comment_id,
                    c.post_id,
                    c.author.id if isinstance(c, CommentCreatedV1) else c.author_id,
                    isinstance(c, CommentDeletedV1),
                    c.version,
                )
                for c in newest_comments.values()
            ],
        )
        if newest_comments
        else []
    )
    for event in events:
        data = event.data
        if isinstance(data, CommentCreatedV1) and data.comment_id in changed:
            notices += _comment_notices(data)
        elif isinstance(data, CommentDeletedV1) and data.comment_id in changed:
            # The last comment of someone taken back takes them out of groups still unread.
            if not await repository.still_commenting(conn, data.post_id, data.author_id):
                await repository.remove_actor_from_open_groups_of_post(
                    conn, post_id=data.post_id, kinds=COMMENT_KINDS, actor_id=data.author_id
                )
        elif isinstance(data, AnswerAcceptedV1) and data.comment_id is not None and data.answerer_id is not None:
            notices.append(
                Notice(
                    data.answerer_id,
                    "answer.accepted",
                    data.post_id,
                    data.accepted_by,
                    None,
                    data.accepted_at,
                    grouped=False,
                )
            )
        elif isinstance(data, IdeaStatusChangedV1):
            notices += await _status_notices(conn, data)
        elif isinstance(data, CampaignClosedV1):
            notices += await _closing_notices(conn, data)
        elif isinstance(data, QnaQuestionAnsweredV1) and data.asker_id is not None:
            # An anonymous question's asker is published as null: nobody is told, and nothing leaks.
            notices.append(
                Notice(
                    data.asker_id,
                    "qna.answered",
                    None,
                    data.host.id,
                    data.host.name,
                    data.answered_at,
                    grouped=False,
                    detail={"session_id": str(data.session_id), "question_id": str(data.question_id)},
                )
            )
    decisions = [e.data for e in events if isinstance(e.data, ContentModeratedV1) and e.data.comment_id is None]
    newest_decisions = newest_by_version(decisions, key=lambda d: d.post_id, version=lambda d: d.version)
    if newest_decisions:
        moderated = await repository.apply_moderation(
            conn, [(d.post_id, d.author_id, d.hidden, d.version) for d in newest_decisions.values()]
        )
        if moderated:
            # Their notifications leave (or return to) every inbox and stream at once.
            await repository.touch_notifications_of_posts(conn, moderated)
    await notify(conn, notices)


def _comment_notices(data: CommentCreatedV1) -> list[Notice]:
    author, at = data.author, data.created_at
    notices = [Notice(data.post_author_id, "post.commented", data.post_id, author.id, author.name, at)]
    notices += [
        Notice(person, "thread.commented", data.post_id, author.id, author.name, at)
        for person in sorted(set(data.earlier_commenter_ids) - {data.post_author_id})
    ]
    mentioned = set(data.mentions) - {data.post_author_id, *data.earlier_commenter_ids}
    notices += [
        Notice(person, "person.mentioned", data.post_id, author.id, author.name, at) for person in sorted(mentioned)
    ]
    return notices


async def _status_notices(conn: Connection, data: IdeaStatusChangedV1) -> list[Notice]:
    """Every backer, commenter and the author, once each, if they may still see the idea."""
    people = {r["person_id"] for r in await repository.participants(conn, [data.post_id]) if r["may_see"]}
    people.add(data.idea_author_id)  # the author may always see their own idea
    detail = {"status": data.status, "reason": data.reason}
    return [
        Notice(
            person,
            "idea.status_changed",
            data.post_id,
            data.changed_by.id,
            data.changed_by.name,
            data.changed_at,
            grouped=False,
            detail=detail,
        )
        for person in sorted(people)
    ]


async def _closing_notices(conn: Connection, data: CampaignClosedV1) -> list[Notice]:
    """Everyone who took part (proposed, backed or commented on an idea) and may still see it: ideas take
    their campaign's audience, so seeing the idea is seeing the campaign."""
    ideas = [idea.post_id for idea in data.ideas]
    people = {r["person_id"] for r in await repository.participants(conn, ideas) if r["may_see"]}
    people |= {idea.author_id for idea in data.ideas}
    detail = {"title": data.title, "ideas": len(data.ideas)}
    return [
        Notice(
            person,
            "campaign.closed",
            data.campaign_id,
            data.owner_id,
            None,
            data.closed_at,
            grouped=False,
            detail=detail,
        )
        for person in sorted(people)
    ]
