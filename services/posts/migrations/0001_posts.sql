CREATE TABLE posts (
    id         uuid PRIMARY KEY,
    author_id  text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('post', 'question', 'idea', 'praise')),
    body       text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 10000),
    -- Only {"type": "everyone"} for now; a column of its own so later audiences need no migration.
    audience   jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    version    integer NOT NULL DEFAULT 1
);
CREATE INDEX posts_by_author ON posts (author_id, created_at DESC);

-- Counts projected from the reactions service's events; the highest version wins.
CREATE TABLE post_counts (
    post_id         uuid PRIMARY KEY,
    like_count      integer NOT NULL,
    favourite_count integer NOT NULL,
    version         bigint NOT NULL
);
