"""Every SQL statement of the feeds service.

Who belongs in whose home feed is defined once, in SQL: `home_feed_reason(viewer, post)` in
migrations/0001_feeds.sql. Fan-out applies the same rules in bulk (one statement per batch, however many
followers), and every read and reconciliation asks the function, so an entry a race left behind is never shown.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from shared.db import Connection

# Fan-out transactions hold this lock shared; a feed build takes it exclusively for a moment (see
# wait_for_fan_outs_in_flight).
FAN_OUT_LOCK = "tillit.feeds.fan-out"

# A post the feeds may show: created (post.created arrived), not deleted, not hidden by a moderator.
_LIVE = "NOT p.deleted AND NOT p.hidden AND p.created_at IS NOT NULL AND p.audience IS NOT NULL"


@dataclass(frozen=True)
class PostState:
    id: uuid.UUID
    author_id: str
    created_at: datetime | None  # only post.created carries it
    audience_json: str | None  # a deletion carries none
    audience_version: int  # the version of the event that carried the audience; 0 for none
    deleted: bool
    hidden: bool = False  # a moderator's decision; only moderation_version > 0 carries one
    moderation_version: int = 0


@dataclass(frozen=True)
class LikeState:
    post_id: uuid.UUID
    actor_id: str
    active: bool
    at: datetime
    version: int


@dataclass(frozen=True)
class LikeChange:
    post_id: uuid.UUID
    actor_id: str
    active: bool


# Replicas ---------------------------------------------------------------------------------------------


async def apply_post_states(conn: Connection, posts: Sequence[PostState]) -> None:
    """Merge post states into the replica in any order: created_at comes from post.created whenever it
    arrives, the audience and the moderation from the highest version that carried one, and a deletion is
    final."""
    await conn.execute(
        """INSERT INTO posts AS p (id, author_id, created_at, audience, audience_version, deleted, hidden,
                                   moderation_version)
           SELECT id, author_id, created_at, audience::jsonb, audience_version, deleted, hidden, moderation_version
           FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::int[], $6::bool[], $7::bool[],
                       $8::bigint[])
                AS t(id, author_id, created_at, audience, audience_version, deleted, hidden, moderation_version)
           ON CONFLICT (id) DO UPDATE
           SET created_at = coalesce(p.created_at, excluded.created_at),
               audience = CASE WHEN excluded.audience_version > p.audience_version
                               THEN excluded.audience ELSE p.audience END,
               audience_version = greatest(p.audience_version, excluded.audience_version),
               deleted = p.deleted OR excluded.deleted,
               hidden = CASE WHEN excluded.moderation_version > p.moderation_version
                             THEN excluded.hidden ELSE p.hidden END,
               moderation_version = greatest(p.moderation_version, excluded.moderation_version)""",
        [p.id for p in posts],
        [p.author_id for p in posts],
        [p.created_at for p in posts],
        [p.audience_json for p in posts],
        [p.audience_version for p in posts],
        [p.deleted for p in posts],
        [p.hidden for p in posts],
        [p.moderation_version for p in posts],
    )


async def apply_like_states(conn: Connection, likes: Sequence[LikeState]) -> list[LikeChange]:
    """Keep the newest state per post and person; returns the states that changed what is known."""
    rows = await conn.fetch(
        """INSERT INTO likes AS l (post_id, actor_id, active, liked_at, version)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::timestamptz[], $5::bigint[])
           ON CONFLICT (post_id, actor_id) DO UPDATE
           SET active = excluded.active, liked_at = excluded.liked_at, version = excluded.version
           WHERE l.version < excluded.version
           RETURNING l.post_id, l.actor_id, l.active""",
        [like.post_id for like in likes],
        [like.actor_id for like in likes],
        [like.active for like in likes],
        [like.at for like in likes],
        [like.version for like in likes],
    )
    return [LikeChange(row["post_id"], row["actor_id"], row["active"]) for row in rows]


async def remember_names(conn: Connection, names: dict[str, str]) -> None:
    """Keep names seen in events until the people service's versioned person.updated arrives."""
    await conn.execute(
        """INSERT INTO people_directory (id, name, version)
           SELECT id, name, 0 FROM unnest($1::text[], $2::text[]) AS t(id, name)
           ON CONFLICT (id) DO NOTHING""",
        list(names),
        list(names.values()),
    )


async def live_posts(conn: Connection, post_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    rows = await conn.fetch(f"SELECT p.id FROM posts p WHERE p.id = ANY($1::uuid[]) AND {_LIVE}", list(post_ids))
    return {row["id"] for row in rows}


async def active_likes_of(conn: Connection, post_ids: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, str]]:
    rows = await conn.fetch(
        "SELECT post_id, actor_id FROM likes WHERE post_id = ANY($1::uuid[]) AND active", list(post_ids)
    )
    return [(row["post_id"], row["actor_id"]) for row in rows]


# Readers ----------------------------------------------------------------------------------------------


async def read_recently(conn: Connection, person_id: str, *, within: timedelta) -> bool:
    """Whether the reader's last read is recorded within `within` and their feed is built: then a read
    needs no write (an upsert that changes nothing still locks the row and waits for a WAL flush)."""
    return bool(
        await conn.fetchval(
            """SELECT last_read_at > now() - $2::interval AND built_at IS NOT NULL
               FROM readers WHERE person_id = $1""",
            person_id,
            within,
        )
    )


async def touch_reader(conn: Connection, person_id: str, *, active_window: timedelta, granularity: timedelta) -> bool:
    """Record a feed read; True if the reader's home feed must be built first.

    A reader new to us, or back after the activity window (fan-out passed them by), gets built_at null.
    """
    needs_build = await conn.fetchval(
        """INSERT INTO readers AS r (person_id, last_read_at, built_at) VALUES ($1, now(), NULL)
           ON CONFLICT (person_id) DO UPDATE
           SET last_read_at = now(),
               built_at = CASE WHEN r.last_read_at <= now() - $2::interval THEN NULL ELSE r.built_at END
           WHERE r.last_read_at < now() - $3::interval OR r.built_at IS NULL
           RETURNING built_at IS NULL""",
        person_id,
        active_window,
        granularity,
    )
    return bool(needs_build)


async def claim_build(conn: Connection, person_id: str) -> bool:
    """Lock the reader for building their feed; False if another request built it meanwhile."""
    return bool(await conn.fetchval("SELECT built_at IS NULL FROM readers WHERE person_id = $1 FOR UPDATE", person_id))


async def mark_built(conn: Connection, person_id: str) -> None:
    await conn.execute("UPDATE readers SET built_at = now() WHERE person_id = $1", person_id)


async def active_readers(conn: Connection, person_ids: Collection[str], *, active_window: timedelta) -> set[str]:
    rows = await conn.fetch(
        "SELECT person_id FROM readers WHERE person_id = ANY($1::text[]) AND last_read_at > now() - $2::interval",
        list(person_ids),
        active_window,
    )
    return {row["person_id"] for row in rows}


async def hold_fan_out_lock(conn: Connection) -> None:
    """Taken first in every transaction that may add entries, before it reads who is active."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared(hashtext($1))", FAN_OUT_LOCK)


async def lock_subjects(conn: Connection, keys: Iterable[str]) -> None:
    """Serialise the transactions that could each miss the other's work on the same person or team.

    A follow and the followed person's new post (or like, or a team change and a team post), applied at the
    same moment by two consumers, each read the replicas without the other's uncommitted change: the post's
    fan-out misses the new follower and the follow's reconciliation misses the new post, and the entry is
    never written (the chaos suite caught one). Both take the lock of the person (or team) first, so the
    later one reads what the earlier one committed. Locks are taken in hash order: no deadlock."""
    subjects = sorted(set(keys))
    if subjects:
        await conn.execute(
            """SELECT pg_advisory_xact_lock(h)
               FROM (SELECT DISTINCT hashtext('tillit.feeds.' || k) AS h FROM unnest($1::text[]) AS k ORDER BY 1) s""",
            subjects,
        )


async def teams_of(conn: Connection, people: Iterable[str]) -> set[str]:
    rows = await conn.fetch("SELECT teams FROM team_members WHERE person_id = ANY($1::text[])", list(people))
    return {team for row in rows for team in row["teams"]}


async def wait_for_fan_outs_in_flight(conn: Connection) -> None:
    """Return once every fan-out that started before now has committed.

    A feed build starts after its reader was recorded as active. A fan-out that read the readers before
    that passed them by, and its posts are in the replicas only once it commits: waiting for it makes the
    build see them. Later fan-outs see the reader as active and write to them directly.
    """
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", FAN_OUT_LOCK)
    await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", FAN_OUT_LOCK)


# Fan-out on write -------------------------------------------------------------------------------------
#
# Both fan-outs address entries through the social graph (the `addressed` CTE), then keep those that
# home_feed_reason() would keep, in bulk: the people shunning an author (muted them, or blocked either way)
# are fetched once per post and anti-joined, and the audience is checked per recipient only where the way
# they were addressed does not already prove it. visibility() per recipient would cost more than the insert.
# Parameters: $1 post ids, $2 the activity window, $3 the trim sample mask, then the fan-out's own.
_FAN_OUT = f"""
    WITH post AS (
        SELECT p.id, p.author_id, p.audience, p.created_at FROM posts p
        WHERE p.id = ANY($1::uuid[]) AND {_LIVE}
    ),
    {{addressed}},
    author_shunned AS (
        SELECT p.id AS post_id, r.actor_id AS person_id
        FROM post p JOIN relations r ON r.target_id = p.author_id AND r.kind IN ('mute', 'block') AND r.active
        UNION ALL
        SELECT p.id, r.target_id
        FROM post p JOIN relations r ON r.actor_id = p.author_id AND r.kind = 'block' AND r.active
    ),
    written AS (
        INSERT INTO feed_entries AS f (owner_id, post_id, reason, at)
        SELECT a.owner_id, a.post_id, min(a.reason), min(a.at)
        FROM addressed a
        JOIN post p ON p.id = a.post_id
        JOIN readers rd ON rd.person_id = a.owner_id AND rd.last_read_at > now() - $2::interval
        WHERE NOT EXISTS (
                  SELECT 1 FROM author_shunned s WHERE s.post_id = a.post_id AND s.person_id = a.owner_id
              )
          AND (a.owner_id = p.author_id OR CASE p.audience ->> 'type'
                  WHEN 'everyone' THEN true
                  WHEN 'followers' THEN a.reason = 'followed' OR EXISTS (
                      SELECT 1 FROM relations r
                      WHERE r.actor_id = a.owner_id AND r.kind = 'follow' AND r.target_id = p.author_id AND r.active
                  )
                  WHEN 'team' THEN a.reason = 'team' OR EXISTS (
                      SELECT 1 FROM team_members t
                      WHERE t.person_id = a.owner_id AND (p.audience ->> 'team') = ANY (t.teams)
                  )
                  ELSE EXISTS (SELECT 1 FROM visibility(a.owner_id, p.author_id, p.audience) v WHERE v.allowed)
              END)
        GROUP BY a.post_id, a.owner_id
        -- One order for every writer of feed_entries, so concurrent batches do not deadlock.
        ORDER BY a.post_id, a.owner_id
        -- An entry already there keeps its place (its `at`); only a stronger reason replaces its own.
        ON CONFLICT (post_id, owner_id) DO UPDATE SET reason = excluded.reason WHERE excluded.reason < f.reason
        RETURNING f.owner_id, f.post_id
    )
    -- Owners whose feed gets trimmed: about one insert in `mask + 1`, because trimming scans an owner's
    -- newest entries, and doing that for every recipient would cost more than the fan-out itself.
    SELECT DISTINCT owner_id FROM written WHERE hashtext(owner_id || post_id::text) & $3 = 0
"""

_POSTS_ADDRESSED = """
    addressed AS (
        SELECT p.id AS post_id, p.author_id AS owner_id, 'own'::feed_reason AS reason, p.created_at AS at
        FROM post p
        UNION ALL
        SELECT p.id, r.actor_id, 'followed', p.created_at
        FROM post p JOIN relations r ON r.target_id = p.author_id AND r.kind = 'follow' AND r.active
        UNION ALL
        SELECT p.id, t.person_id, 'team', p.created_at
        FROM post p JOIN team_members t ON t.teams @> ARRAY[p.audience ->> 'team']
        WHERE p.audience ->> 'type' = 'team'
    )"""

# $4: the likers, pairwise with the post ids in $1.
_LIKES_ADDRESSED = """
    liked AS (
        SELECT l.post_id, l.actor_id AS liker_id, l.liked_at, p.author_id
        FROM unnest($1::uuid[], $4::text[]) AS x(post_id, liker_id)
        JOIN likes l ON l.post_id = x.post_id AND l.actor_id = x.liker_id AND l.active
        JOIN post p ON p.id = l.post_id
    ),
    liker_shunned AS (
        SELECT r.target_id AS liker_id, r.actor_id AS person_id
        FROM relations r
        WHERE r.target_id IN (SELECT liker_id FROM liked) AND r.kind IN ('mute', 'block') AND r.active
        UNION ALL
        SELECT r.actor_id, r.target_id
        FROM relations r
        WHERE r.actor_id IN (SELECT liker_id FROM liked) AND r.kind = 'block' AND r.active
    ),
    addressed AS (
        SELECT r.actor_id AS owner_id, k.post_id, 'liked_by_followed'::feed_reason AS reason,
               min(k.liked_at) AS at
        FROM liked k
        JOIN relations r ON r.target_id = k.liker_id AND r.kind = 'follow' AND r.active
        WHERE r.actor_id <> k.author_id
          AND NOT EXISTS (
              SELECT 1 FROM liker_shunned s WHERE s.liker_id = k.liker_id AND s.person_id = r.actor_id
          )
        GROUP BY k.post_id, r.actor_id
    )"""


async def fan_out_posts(
    conn: Connection, post_ids: Sequence[uuid.UUID], *, active_window: timedelta, trim_mask: int
) -> set[str]:
    """Write live posts into the feeds of their active author, followers and team members who may see
    them; returns the owners to trim."""
    rows = await conn.fetch(_FAN_OUT.format(addressed=_POSTS_ADDRESSED), list(post_ids), active_window, trim_mask)
    return {row["owner_id"] for row in rows}


async def fan_out_likes(
    conn: Connection, likes: Sequence[tuple[uuid.UUID, str]], *, active_window: timedelta, trim_mask: int
) -> set[str]:
    """Write "<liker> liked <author>'s post" into the feeds of the likers' active followers who may see the
    post and the liker; one entry per post however many of the people they follow like it. Returns the
    owners to trim."""
    rows = await conn.fetch(
        _FAN_OUT.format(addressed=_LIKES_ADDRESSED),
        [post_id for post_id, _ in likes],
        active_window,
        trim_mask,
        [liker_id for _, liker_id in likes],
    )
    return {row["owner_id"] for row in rows}


async def trim_feeds(conn: Connection, owner_ids: Collection[str], *, keep: int) -> None:
    """Keep each owner's newest `keep` entries."""
    if not owner_ids:
        return
    await conn.execute(
        """DELETE FROM feed_entries f
           USING unnest($1::text[]) AS o(owner_id)
           CROSS JOIN LATERAL (
               SELECT e.at, e.post_id FROM feed_entries e
               WHERE e.owner_id = o.owner_id
               ORDER BY e.at DESC, e.post_id DESC
               OFFSET $2 LIMIT 1
           ) edge
           WHERE f.owner_id = o.owner_id AND (f.at, f.post_id) <= (edge.at, edge.post_id)""",
        sorted(owner_ids),
        keep,
    )


async def drop_entries_of_posts(conn: Connection, post_ids: Sequence[uuid.UUID]) -> None:
    await conn.execute("DELETE FROM feed_entries WHERE post_id = ANY($1::uuid[])", list(post_ids))


# Reconciliation: entries already written are judged again by home_feed_reason() ------------------------


async def _rederive(conn: Connection, which: str, *args: object) -> None:
    """Judge the entries selected by `which` again: drop those that no longer belong, update changed reasons."""
    await conn.execute(
        f"""WITH judged AS (
                SELECT f.owner_id, f.post_id, f.reason AS reason_was, judged.reason AS reason_now
                FROM feed_entries f
                LEFT JOIN LATERAL home_feed_reason(f.owner_id, f.post_id) judged ON true
                WHERE {which}
            ),
            dropped AS (
                DELETE FROM feed_entries f USING judged j
                WHERE f.post_id = j.post_id AND f.owner_id = j.owner_id AND j.reason_now IS NULL
            )
            UPDATE feed_entries f SET reason = j.reason_now
            FROM judged j
            WHERE f.post_id = j.post_id AND f.owner_id = j.owner_id AND j.reason_now <> j.reason_was""",
        *args,
    )


async def rederive_entries_of_posts(conn: Connection, post_ids: Sequence[uuid.UUID]) -> None:
    """After an audience change: who may no longer see the post loses it."""
    await _rederive(conn, "f.post_id = ANY($1::uuid[])", list(post_ids))


async def rederive_after_unlikes(conn: Connection, unlikes: Sequence[tuple[uuid.UUID, str]]) -> None:
    """The unliker leaves their followers' activity entries; an entry with nobody left goes."""
    await _rederive(
        conn,
        """f.reason = 'liked_by_followed'
           AND (f.post_id, f.owner_id) IN (
               SELECT x.post_id, r.actor_id
               FROM unnest($1::uuid[], $2::text[]) AS x(post_id, liker_id)
               -- Past follows too: an unfollow being applied at the same time is covered either way.
               JOIN relations r ON r.target_id = x.liker_id AND r.kind = 'follow'
           )""",
        [post_id for post_id, _ in unlikes],
        [liker_id for _, liker_id in unlikes],
    )


async def rederive_entries_about(conn: Connection, *, owner_id: str, person_id: str) -> None:
    """After owner follows, mutes or blocks person (or stops): the entries of person's posts and likes."""
    await _rederive(
        conn,
        """f.owner_id = $1
           AND (EXISTS (SELECT 1 FROM posts p WHERE p.id = f.post_id AND p.author_id = $2)
                OR EXISTS (SELECT 1 FROM likes l WHERE l.post_id = f.post_id AND l.actor_id = $2))""",
        owner_id,
        person_id,
    )


async def rederive_team_entries(conn: Connection, owner_id: str) -> None:
    """After owner's teams changed: the entries of team posts."""
    await _rederive(
        conn,
        """f.owner_id = $1
           AND EXISTS (SELECT 1 FROM posts p WHERE p.id = f.post_id AND p.audience ->> 'type' = 'team')""",
        owner_id,
    )


# Placing entries from the replicas: a feed build, and the merge after a follow, unmute or new team -----

# Candidates are post ids ($1 is the owner, $2 how many entries to keep); what belongs and where is
# decided by home_feed_reason(). Inserted in post order like every other writer, against deadlocks.
_PLACE = """
    WITH candidates AS ({candidates}),
    judged AS (
        SELECT c.post_id, j.reason FROM candidates c CROSS JOIN LATERAL home_feed_reason($1, c.post_id) j
    ),
    placed AS (
        SELECT j.post_id, j.reason,
               CASE WHEN j.reason = 'liked_by_followed'
                    THEN (SELECT min(a.liked_at) FROM followed_likers($1, j.post_id) a)
                    ELSE p.created_at END AS at
        FROM judged j
        JOIN posts p ON p.id = j.post_id
        ORDER BY at DESC
        LIMIT $2
    )
    INSERT INTO feed_entries AS f (owner_id, post_id, reason, at)
    SELECT $1, x.post_id, x.reason, x.at FROM placed x
    ORDER BY x.post_id
    ON CONFLICT (post_id, owner_id) DO UPDATE SET reason = excluded.reason WHERE excluded.reason < f.reason
"""

_TEAM_POSTS = f"""
    SELECT p.id AS post_id
    FROM team_members t
    CROSS JOIN LATERAL unnest(t.teams) AS team(name)
    JOIN posts p ON p.audience ->> 'type' = 'team' AND p.audience ->> 'team' = team.name
    WHERE t.person_id = $1 AND {_LIVE}
    ORDER BY p.created_at DESC
    LIMIT $2
"""

_EVERY_SOURCE = f"""
    (SELECT p.id AS post_id FROM posts p
     WHERE p.author_id = $1 AND {_LIVE}
     ORDER BY p.created_at DESC LIMIT $2)
    UNION
    (SELECT p.id FROM relations r
     JOIN posts p ON p.author_id = r.target_id
     WHERE r.actor_id = $1 AND r.kind = 'follow' AND r.active AND {_LIVE}
     ORDER BY p.created_at DESC LIMIT $2)
    UNION
    ({_TEAM_POSTS})
    UNION
    (SELECT l.post_id FROM relations r
     JOIN likes l ON l.actor_id = r.target_id AND l.active
     WHERE r.actor_id = $1 AND r.kind = 'follow' AND r.active
     GROUP BY l.post_id
     ORDER BY max(l.liked_at) DESC LIMIT $2)
"""

_ABOUT_PERSON = f"""
    (SELECT p.id AS post_id FROM posts p
     WHERE p.author_id = $3 AND {_LIVE}
     ORDER BY p.created_at DESC LIMIT $2)
    UNION
    (SELECT l.post_id FROM likes l
     WHERE l.actor_id = $3 AND l.active
     ORDER BY l.liked_at DESC LIMIT $2)
"""


async def clear_feed(conn: Connection, owner_id: str) -> None:
    await conn.execute("DELETE FROM feed_entries WHERE owner_id = $1", owner_id)


async def place_every_entry(conn: Connection, *, owner_id: str, keep: int) -> None:
    """Build a feed from the replicas: own posts, followed people's posts and likes, team posts."""
    await conn.execute(_PLACE.format(candidates=_EVERY_SOURCE), owner_id, keep)


async def place_entries_about(conn: Connection, *, owner_id: str, person_id: str, keep: int) -> None:
    """Merge person's recent posts and likes into owner's feed, where they belong in time."""
    await conn.execute(_PLACE.format(candidates=_ABOUT_PERSON), owner_id, keep, person_id)


async def place_team_entries(conn: Connection, *, owner_id: str, keep: int) -> None:
    await conn.execute(_PLACE.format(candidates=_TEAM_POSTS), owner_id, keep)


# Reading ----------------------------------------------------------------------------------------------


async def home_page(
    conn: Connection, *, viewer_id: str, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """The viewer's entries newest first, each judged again now, with its actors newest first."""
    args: list[object] = [viewer_id, limit]
    after_clause = ""
    if after is not None:
        after_clause = "AND (f.at, f.post_id) < ($3::timestamptz, $4::uuid)"
        args += after
    return await conn.fetch(
        f"""SELECT f.post_id, f.at, judged.reason, actors.list AS actors, actors.count AS actor_count
            FROM feed_entries f
            CROSS JOIN LATERAL home_feed_reason($1, f.post_id) judged
            CROSS JOIN LATERAL (
                SELECT coalesce(jsonb_agg(jsonb_build_object('id', a.person_id, 'name', coalesce(d.name, ''))
                                          ORDER BY a.acted_at DESC, a.person_id), '[]'::jsonb) AS list,
                       count(*) AS count
                FROM (
                    SELECT fl.liker_id AS person_id, fl.liked_at AS acted_at
                    FROM followed_likers($1, f.post_id) fl
                    WHERE judged.reason = 'liked_by_followed'
                    UNION ALL
                    SELECT p.author_id, p.created_at FROM posts p
                    WHERE p.id = f.post_id AND judged.reason <> 'liked_by_followed'
                ) a
                LEFT JOIN people_directory d ON d.id = a.person_id
            ) actors
            WHERE f.owner_id = $1 {after_clause}
            ORDER BY f.at DESC, f.post_id DESC
            LIMIT $2""",
        *args,
    )


async def is_team_member(conn: Connection, *, person_id: str, team: str) -> bool:
    return bool(await conn.fetchval("SELECT $2 = ANY (teams) FROM team_members WHERE person_id = $1", person_id, team))


async def team_page(
    conn: Connection, *, viewer_id: str, team: str, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """Posts to the team, newest first, that the viewer may see and has not muted."""
    args: list[object] = [viewer_id, team, limit]
    after_clause = ""
    if after is not None:
        after_clause = "AND (p.created_at, p.id) < ($4::timestamptz, $5::uuid)"
        args += after
    return await conn.fetch(
        f"""SELECT p.id AS post_id, p.created_at AS at, p.author_id, coalesce(d.name, '') AS author_name
            FROM posts p
            CROSS JOIN LATERAL visibility($1, p.author_id, p.audience) seen
            LEFT JOIN people_directory d ON d.id = p.author_id
            WHERE p.audience ->> 'type' = 'team' AND p.audience ->> 'team' = $2 AND {_LIVE} AND seen.allowed
              AND NOT EXISTS (
                  SELECT 1 FROM relations m
                  WHERE m.actor_id = $1 AND m.kind = 'mute' AND m.target_id = p.author_id AND m.active
              )
              {after_clause}
            ORDER BY p.created_at DESC, p.id DESC
            LIMIT $3""",
        *args,
    )


async def trending_page(
    conn: Connection,
    *,
    viewer_id: str,
    window: timedelta,
    after: tuple[int, uuid.UUID] | None,
    limit: int,
    names_per_entry: int,
) -> list[asyncpg.Record]:
    """The posts with the most distinct backers (likes) within the window that the viewer may see, most
    backed first. Backers the viewer is blocked with, either way, neither count nor show."""
    args: list[object] = [viewer_id, window, limit, names_per_entry]
    after_clause = ""
    if after is not None:
        after_clause = "AND (b.backers, b.post_id) < ($5::bigint, $6::uuid)"
        args += after
    return await conn.fetch(
        f"""WITH hidden AS (
                SELECT r.target_id AS person_id FROM relations r
                WHERE r.actor_id = $1 AND r.kind = 'block' AND r.active
                UNION
                SELECT r.actor_id FROM relations r
                WHERE r.target_id = $1 AND r.kind = 'block' AND r.active
            ),
            backing AS (
                SELECT l.post_id, count(*) AS backers, max(l.liked_at) AS latest
                FROM likes l
                WHERE l.active AND l.liked_at > now() - $2::interval
                  AND l.actor_id NOT IN (SELECT person_id FROM hidden)
                GROUP BY l.post_id
            )
            SELECT b.post_id, b.backers, b.latest, backers.list AS actors
            FROM backing b
            JOIN posts p ON p.id = b.post_id
            CROSS JOIN LATERAL visibility($1, p.author_id, p.audience) seen
            CROSS JOIN LATERAL (
                SELECT coalesce(jsonb_agg(jsonb_build_object('id', n.actor_id, 'name', coalesce(d.name, ''))
                                          ORDER BY n.liked_at DESC, n.actor_id), '[]'::jsonb) AS list
                FROM (
                    SELECT l.actor_id, l.liked_at FROM likes l
                    WHERE l.post_id = b.post_id AND l.active AND l.liked_at > now() - $2::interval
                      AND l.actor_id NOT IN (SELECT person_id FROM hidden)
                    ORDER BY l.liked_at DESC, l.actor_id
                    LIMIT $4
                ) n
                LEFT JOIN people_directory d ON d.id = n.actor_id
            ) backers
            WHERE {_LIVE} AND seen.allowed
              AND NOT EXISTS (
                  SELECT 1 FROM relations m
                  WHERE m.actor_id = $1 AND m.kind = 'mute' AND m.target_id = p.author_id AND m.active
              )
              {after_clause}
            ORDER BY b.backers DESC, b.post_id DESC
            LIMIT $3""",
        *args,
    )
