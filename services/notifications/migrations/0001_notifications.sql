-- Posts as far as notifications need them, kept from post.created and post.deleted events.
CREATE TABLE posts (
    id        uuid PRIMARY KEY,
    author_id text NOT NULL,
    excerpt   text NOT NULL,
    deleted   boolean NOT NULL DEFAULT false,
    version   integer NOT NULL
);

-- The newest reaction state per post, actor and kind that this service has applied. Events may arrive
-- in any order: one older than what is here changes nothing.
CREATE TABLE reaction_states (
    post_id  uuid NOT NULL,
    actor_id text NOT NULL,
    kind     text NOT NULL,
    active   boolean NOT NULL,
    version  bigint NOT NULL,
    PRIMARY KEY (post_id, actor_id, kind)
);

-- One row per group: the likes (or favourites) of one post while the group is open.
CREATE TABLE notifications (
    id           uuid PRIMARY KEY,
    recipient_id text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('post.liked', 'post.favourited')),
    post_id      uuid NOT NULL,
    -- Open while unread and within the grouping window; new actors join the open group.
    is_open      boolean NOT NULL DEFAULT true,
    read_at      timestamptz,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE UNIQUE INDEX notifications_one_open_group ON notifications (recipient_id, post_id, kind) WHERE is_open;
CREATE INDEX notifications_inbox ON notifications (recipient_id, updated_at DESC, id DESC);
CREATE INDEX notifications_unread ON notifications (recipient_id) WHERE read_at IS NULL;
CREATE INDEX notifications_of_post ON notifications (post_id);

CREATE TABLE notification_actors (
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    actor_id        text NOT NULL,
    acted_at        timestamptz NOT NULL,
    PRIMARY KEY (notification_id, actor_id)
);

-- Emails to send, written in the same transaction as the notification; the mailer sends them.
CREATE TABLE emails (
    id              uuid PRIMARY KEY,
    -- One email per favourite of a post by a person, however often the event is delivered.
    dedupe_key      text NOT NULL UNIQUE,
    recipient_id    text NOT NULL,
    kind            text NOT NULL,
    post_id         uuid NOT NULL,
    actor_id        text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX emails_due ON emails (next_attempt_at) WHERE status IN ('pending', 'sending');

CREATE FUNCTION emails_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.emails', '');
    RETURN NULL;
END $$;
CREATE TRIGGER emails_notify AFTER INSERT ON emails FOR EACH STATEMENT EXECUTE FUNCTION emails_notify();
