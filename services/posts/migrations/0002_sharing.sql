-- Comments, mentions, praise recipients, accepted answers and moderation (docs/sharing.md).

-- Mentions keep only the people who existed and could see the post when it was written; the others stay text.
ALTER TABLE posts
    ADD COLUMN mentions            text[] NOT NULL DEFAULT '{}',
    ADD COLUMN accepted_comment_id uuid,
    ADD COLUMN hidden_at           timestamptz,
    ADD COLUMN hidden_reason       text;

CREATE TABLE post_recipients (
    post_id   uuid NOT NULL REFERENCES posts (id),
    person_id text NOT NULL,
    position  smallint NOT NULL,
    PRIMARY KEY (post_id, person_id)
);
CREATE INDEX post_recipients_by_person ON post_recipients (person_id, post_id);
CREATE INDEX posts_praise_by_time ON posts (created_at DESC, id DESC) WHERE kind = 'praise';

CREATE TABLE comments (
    id            uuid PRIMARY KEY,
    post_id       uuid NOT NULL REFERENCES posts (id),
    -- One level: a parent is always a top-level comment of the same post (the service checks it).
    parent_id     uuid REFERENCES comments (id),
    author_id     text NOT NULL,
    body          text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 5000),
    mentions      text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    deleted_at    timestamptz,
    hidden_at     timestamptz,
    hidden_reason text,
    version       integer NOT NULL DEFAULT 1
);
CREATE INDEX comments_top_level ON comments (post_id, created_at, id) WHERE parent_id IS NULL;
CREATE INDEX comments_replies ON comments (parent_id, created_at, id) WHERE parent_id IS NOT NULL;
CREATE INDEX comments_by_post ON comments (post_id) WHERE deleted_at IS NULL AND hidden_at IS NULL;

-- Comment likes projected from the reactions service's events; the highest version wins.
CREATE TABLE comment_counts (
    comment_id uuid PRIMARY KEY,
    like_count integer NOT NULL,
    version    bigint NOT NULL
);

CREATE TABLE reports (
    id          uuid PRIMARY KEY,
    post_id     uuid NOT NULL REFERENCES posts (id),
    comment_id  uuid REFERENCES comments (id),
    reporter_id text NOT NULL,
    reason      text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 1000),
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    closed_at   timestamptz,
    closed_by   text,
    resolution  text CHECK (resolution IN ('hidden', 'kept'))
);
-- One open report per person per post or comment.
CREATE UNIQUE INDEX reports_one_open
    ON reports (reporter_id, post_id, coalesce(comment_id, '00000000-0000-0000-0000-000000000000'::uuid))
    WHERE status = 'open';
CREATE INDEX reports_by_status ON reports (status, created_at, id);
CREATE INDEX reports_open_by_target ON reports (post_id, comment_id) WHERE status = 'open';
