-- Posts as far as feeds need them, kept from post.created, post.audience_changed and post.deleted. Events
-- come in any order: created_at arrives only with post.created, the audience is the one of the highest
-- version that carried one, and a deleted post stays deleted.
CREATE TABLE posts (
    id               uuid PRIMARY KEY,
    author_id        text NOT NULL,
    created_at       timestamptz,
    audience         jsonb,
    audience_version integer NOT NULL,
    deleted          boolean NOT NULL
);
CREATE INDEX posts_by_author ON posts (author_id, created_at DESC);
CREATE INDEX posts_by_team ON posts ((audience ->> 'team'), created_at DESC, id DESC)
    WHERE audience ->> 'type' = 'team';

-- The newest like state per post and person (the reactions service versions them per post), so an unlike
-- that overtakes its like cannot leave a like behind. liked_at is when the newest state happened.
CREATE TABLE likes (
    post_id  uuid NOT NULL,
    actor_id text NOT NULL,
    active   boolean NOT NULL,
    liked_at timestamptz NOT NULL,
    version  bigint NOT NULL,
    PRIMARY KEY (post_id, actor_id)
);
CREATE INDEX likes_by_actor ON likes (actor_id, liked_at DESC) WHERE active;
CREATE INDEX likes_recent ON likes (liked_at) INCLUDE (post_id, actor_id) WHERE active;

-- Who reads feeds. Fan-out writes only into the feeds of people who read one within the activity window;
-- built_at is null while a feed must be built from the replicas at its next read (never built, or its
-- owner came back after the window, when fan-out had passed them by).
CREATE TABLE readers (
    person_id    text PRIMARY KEY,
    last_read_at timestamptz NOT NULL,
    built_at     timestamptz
);
CREATE INDEX readers_by_last_read ON readers (last_read_at);

-- Why a post is in someone's home feed; declared strongest first, so least() and min() pick the reason
-- that wins when several apply.
CREATE TYPE feed_reason AS ENUM ('own', 'followed', 'team', 'liked_by_followed');

-- The bounded home feeds, one entry per owner and post: several followed people liking one post fold into
-- one entry. `at` is when the entry was first made (the post's creation, or the first followed like) and
-- never moves, so keyset pages on (at, post_id) stay stable while entries arrive.
CREATE TABLE feed_entries (
    owner_id text NOT NULL,
    post_id  uuid NOT NULL,
    reason   feed_reason NOT NULL,
    at       timestamptz NOT NULL,
    -- Post first: a deleted post or a changed audience finds its entries without another index.
    PRIMARY KEY (post_id, owner_id)
);
CREATE INDEX feed_entries_newest ON feed_entries (owner_id, at DESC, post_id DESC);

-- may_see() of shared/migrations/0003_social_graph.sql, rule for rule, as a function that returns a row.
-- PostgreSQL inlines a set-returning SQL function into the query that calls it, but calls a scalar one whose
-- body has sub-selects (may_see) once per row, at about 0.1 ms each: more than a whole page of a feed may
-- cost. A test holds the two equal.
CREATE FUNCTION visibility(viewer text, author text, audience jsonb) RETURNS TABLE (allowed boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN viewer = author THEN true
        WHEN EXISTS (
            SELECT 1 FROM relations r
            WHERE r.kind = 'block' AND r.active
              AND ((r.actor_id = author AND r.target_id = viewer) OR (r.actor_id = viewer AND r.target_id = author))
        ) THEN false
        WHEN audience ->> 'type' = 'everyone' THEN true
        WHEN audience ->> 'type' = 'team' THEN EXISTS (
            SELECT 1 FROM team_members t WHERE t.person_id = viewer AND (audience ->> 'team') = ANY (t.teams)
        )
        WHEN audience ->> 'type' = 'followers' THEN EXISTS (
            SELECT 1 FROM relations r
            WHERE r.kind = 'follow' AND r.active AND r.actor_id = viewer AND r.target_id = author
        )
        ELSE false
    END
$$;

-- The people `viewer` follows who like `post` and whose activity the viewer may see (not muted, no block
-- either way): the actors of a liked_by_followed entry.
CREATE FUNCTION followed_likers(viewer text, post uuid) RETURNS TABLE (liker_id text, liked_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT l.actor_id, l.liked_at
    FROM likes l
    JOIN relations f ON f.actor_id = viewer AND f.kind = 'follow' AND f.target_id = l.actor_id AND f.active
    WHERE l.post_id = post AND l.active
      AND NOT EXISTS (
          SELECT 1 FROM relations r
          WHERE r.active
            AND ((r.actor_id = viewer AND r.target_id = l.actor_id AND r.kind IN ('mute', 'block'))
                 OR (r.actor_id = l.actor_id AND r.target_id = viewer AND r.kind = 'block'))
      )
$$;

-- The one definition of why `viewer` has `post` in their home feed: one row with the reason, or none when
-- they should not have it. Fan-out writes entries by the same rules in bulk; reads and every reconciliation
-- ask this function, so an entry left behind by a race is never shown.
CREATE FUNCTION home_feed_reason(viewer text, post uuid) RETURNS TABLE (reason feed_reason)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT judged.reason
    FROM (
        SELECT CASE
            WHEN p.author_id = viewer THEN 'own'
            WHEN NOT seen.allowed THEN NULL
            WHEN EXISTS (
                SELECT 1 FROM relations m
                WHERE m.actor_id = viewer AND m.kind = 'mute' AND m.target_id = p.author_id AND m.active
            ) THEN NULL
            WHEN EXISTS (
                SELECT 1 FROM relations f
                WHERE f.actor_id = viewer AND f.kind = 'follow' AND f.target_id = p.author_id AND f.active
            ) THEN 'followed'
            -- visibility() already required membership of a team post's team.
            WHEN p.audience ->> 'type' = 'team' THEN 'team'
            WHEN EXISTS (SELECT 1 FROM followed_likers(viewer, post)) THEN 'liked_by_followed'
        END::feed_reason AS reason
        FROM posts p
        CROSS JOIN LATERAL visibility(viewer, p.author_id, p.audience) seen
        WHERE p.id = post AND NOT p.deleted AND p.created_at IS NOT NULL AND p.audience IS NOT NULL
        -- A fence: the caller reads the reason as a column, rather than repeating this CASE wherever it
        -- uses the reason.
        OFFSET 0
    ) judged
    WHERE judged.reason IS NOT NULL
$$;
