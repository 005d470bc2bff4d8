-- Comments and likes on comments, and contribution scores (docs/scores.md).

-- What the contribution scores are computed from: every post and comment as its events left it. Kept by the
-- reactions.contributions consumer alone (the `posts` replica above serves audiences and is kept by another
-- consumer), so one consumer sees every change that moves a score. A row may be made by whichever of its
-- events arrives first: `created_at` stays null until the created event, which is what makes it count.
CREATE TABLE contents (
    id                 uuid PRIMARY KEY,
    is_comment         boolean NOT NULL,
    post_id            uuid NOT NULL,               -- the post itself, or the post a comment is on
    author_id          text NOT NULL,
    post_kind          text,                        -- post, question, idea, praise, campaign
    post_author_id     text,                        -- comments: who wrote the post
    parent_id          uuid,                        -- comments: the comment replied to
    created_at         timestamptz,
    deleted            boolean NOT NULL DEFAULT false,
    version            integer NOT NULL DEFAULT 0,  -- of created/deleted; higher wins
    hidden             boolean NOT NULL DEFAULT false,
    moderation_version integer NOT NULL DEFAULT 0   -- of content.moderated; higher wins
);
CREATE INDEX contents_comments_of_post ON contents (post_id, created_at) WHERE is_comment;
CREATE INDEX contents_by_author ON contents (author_id, created_at);

-- Likes of posts and comments as their events left them: the newest version per (target, liker) wins.
CREATE TABLE like_states (
    target_id   uuid NOT NULL,
    actor_id    text NOT NULL,
    is_comment  boolean NOT NULL,
    post_id     uuid NOT NULL,
    active      boolean NOT NULL,
    occurred_at timestamptz NOT NULL,
    version     bigint NOT NULL,
    PRIMARY KEY (target_id, actor_id)
);

-- Likes of comments: the source of truth, as `likes` is for posts.
CREATE TABLE comment_likes (
    comment_id uuid NOT NULL,
    user_id    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (comment_id, user_id)
);
CREATE INDEX comment_likes_by_user ON comment_likes (user_id, created_at);

CREATE TABLE comment_counters (
    comment_id uuid PRIMARY KEY,
    like_count integer NOT NULL CHECK (like_count >= 0),
    version    bigint NOT NULL
);

-- Insight reads who reacted in a month.
CREATE INDEX likes_by_user ON likes (user_id, created_at);

-- What each subject (a post, a comment, one person's like of a post or comment) adds to its credited person's
-- counters now, and the teams it was counted in. Counters move only by the difference between a subject's
-- stored and recomputed contribution, never by +1 on an event, so duplicates and any order converge.
CREATE TABLE score_facts (
    kind             text NOT NULL CHECK (kind IN ('post', 'comment', 'like')),
    subject_id       uuid NOT NULL,
    actor_id         text NOT NULL,  -- likes: who liked; '' otherwise
    person_id        text NOT NULL,  -- who is credited
    month            date NOT NULL,  -- first day of the UTC month of the act
    teams            text[] NOT NULL,
    posts            integer NOT NULL,
    comments         integer NOT NULL,
    likes_received   integer NOT NULL,
    builder_comments integer NOT NULL,
    builder_likes    integer NOT NULL,
    PRIMARY KEY (kind, subject_id, actor_id)
);

-- Per month, team ('' = the whole organisation) and person: the sums of their facts' contributions.
CREATE TABLE score_counters (
    month            date NOT NULL,
    team             text NOT NULL,
    person_id        text NOT NULL,
    posts            integer NOT NULL,
    comments         integer NOT NULL,
    likes_received   integer NOT NULL,
    builder_comments integer NOT NULL,
    builder_likes    integer NOT NULL,
    PRIMARY KEY (month, team, person_id)
);
