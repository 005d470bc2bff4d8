-- The posts that may be reacted to, kept from post.created and post.deleted events.
CREATE TABLE posts (
    id        uuid PRIMARY KEY,
    author_id text NOT NULL,
    audience  jsonb NOT NULL,
    deleted   boolean NOT NULL DEFAULT false,
    version   integer NOT NULL
);

CREATE TABLE likes (
    post_id    uuid NOT NULL,
    user_id    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (post_id, user_id)
);
CREATE INDEX likes_newest_first ON likes (post_id, created_at DESC, user_id DESC);

CREATE TABLE favourites (
    post_id    uuid NOT NULL,
    user_id    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (post_id, user_id)
);
CREATE INDEX favourites_of_user ON favourites (user_id, created_at DESC, post_id DESC);

-- The source of truth for counts; every change bumps the version that events carry.
CREATE TABLE post_counters (
    post_id         uuid PRIMARY KEY,
    like_count      integer NOT NULL CHECK (like_count >= 0),
    favourite_count integer NOT NULL CHECK (favourite_count >= 0),
    version         bigint NOT NULL
);
