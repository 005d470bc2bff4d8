-- Idea campaigns and live Q&A with a leader (docs/campaigns.md).

-- A campaign is a post of kind 'campaign' (its body is the question), so feeds and search show it like any post.
ALTER TABLE posts DROP CONSTRAINT IF EXISTS posts_kind_check;
ALTER TABLE posts ADD CONSTRAINT posts_kind_check
    CHECK (kind IN ('post', 'question', 'idea', 'praise', 'campaign'));

-- What a campaign has beyond its post: who may see it is the post's audience, its owner the post's author.
CREATE TABLE campaigns (
    post_id   uuid PRIMARY KEY REFERENCES posts (id),
    title     text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    closes_at timestamptz NOT NULL,
    -- Set once, by whoever closes it first (the closer job, a reader who finds it due, or its owner).
    closed_at timestamptz
);
CREATE INDEX campaigns_due ON campaigns (closes_at) WHERE closed_at IS NULL;

-- An idea is a post of kind 'idea' in one campaign, with the status its owner gives it.
CREATE TABLE campaign_ideas (
    post_id           uuid PRIMARY KEY REFERENCES posts (id),
    campaign_id       uuid NOT NULL REFERENCES campaigns (post_id),
    status            text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'under_review', 'adopted', 'declined')),
    status_reason     text CHECK (char_length(status_reason) <= 2000),
    status_changed_at timestamptz
);
CREATE INDEX campaign_ideas_by_campaign ON campaign_ideas (campaign_id);

-- Live Q&A: a window in which people ask, others upvote and the host answers.
CREATE TABLE qna_sessions (
    id         uuid PRIMARY KEY,
    host_id    text NOT NULL,
    title      text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    audience   jsonb NOT NULL,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL CHECK (ends_at > starts_at),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE qna_questions (
    id          uuid PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES qna_sessions (id),
    -- Kept even for an anonymous question, for moderators stopping abuse; never published or shown otherwise.
    asker_id    text NOT NULL,
    anonymous   boolean NOT NULL,
    body        text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 1000),
    upvotes     integer NOT NULL DEFAULT 0 CHECK (upvotes >= 0),
    answer      text CHECK (char_length(answer) BETWEEN 1 AND 5000),
    answered_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX qna_questions_in_order ON qna_questions (session_id, (answered_at IS NOT NULL), upvotes DESC, created_at);

CREATE TABLE qna_upvotes (
    question_id uuid NOT NULL REFERENCES qna_questions (id),
    person_id   text NOT NULL,
    PRIMARY KEY (question_id, person_id)
);
