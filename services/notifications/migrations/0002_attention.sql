-- Notifications people want: more kinds, a change stream per recipient, per-person email choices,
-- and email that waits, skips, caps, summarises and keeps its failures.

-- A follow is about a person, not a post: post_id is NULL, and one open group per recipient and kind still.
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('post.liked', 'post.favourited', 'person.followed'));
ALTER TABLE notifications ALTER COLUMN post_id DROP NOT NULL;
DROP INDEX notifications_one_open_group;
CREATE UNIQUE INDEX notifications_one_open_group ON notifications (recipient_id, post_id, kind) NULLS NOT DISTINCT
    WHERE is_open;

-- The change stream: every change to a recipient's notifications takes the next number of that recipient
-- (notification_streams.seq, taken under the row's lock, so numbers commit in order per recipient).
-- A notification row carries the number of its latest change; a removed one leaves a tombstone.
ALTER TABLE notifications ADD COLUMN seq bigint NOT NULL DEFAULT 0;
CREATE INDEX notifications_changes ON notifications (recipient_id, seq);

CREATE TABLE notification_streams (
    recipient_id text PRIMARY KEY,
    seq          bigint NOT NULL,
    -- Tombstones up to here have been pruned: a reader behind it must reload instead of replaying.
    pruned_seq   bigint NOT NULL DEFAULT 0
);

CREATE TABLE notification_removals (
    recipient_id    text NOT NULL,
    seq             bigint NOT NULL,
    notification_id uuid NOT NULL,
    removed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recipient_id, seq, notification_id)
);
CREATE INDEX notification_removals_age ON notification_removals (removed_at);

-- Which notifications the current transaction touched, filled by triggers, emptied by the same transaction
-- when it numbers and publishes the change. Rows never outlive their transaction, hence unlogged.
CREATE UNLOGGED TABLE notifications_touched (
    recipient_id    text NOT NULL,
    notification_id uuid NOT NULL
);

CREATE FUNCTION notifications_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO notifications_touched VALUES (OLD.recipient_id, OLD.id);
    ELSE
        INSERT INTO notifications_touched VALUES (NEW.recipient_id, NEW.id);
    END IF;
    RETURN NULL;
END $$;
-- Changing only seq is the numbering itself, and closing a group changes nothing its reader sees.
CREATE TRIGGER notifications_touch AFTER INSERT OR DELETE OR UPDATE OF read_at, updated_at
    ON notifications FOR EACH ROW EXECUTE FUNCTION notifications_touch();

CREATE FUNCTION notification_actors_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A cascade from a deleted notification is announced by that deletion already.
    INSERT INTO notifications_touched
    SELECT n.recipient_id, n.id FROM notifications n
    WHERE n.id = CASE WHEN TG_OP = 'DELETE' THEN OLD.notification_id ELSE NEW.notification_id END;
    RETURN NULL;
END $$;
CREATE TRIGGER notification_actors_touch AFTER INSERT OR DELETE OR UPDATE ON notification_actors
    FOR EACH ROW EXECUTE FUNCTION notification_actors_touch();

-- The newest follow state per (follower, followed) applied, as reaction_states is for reactions.
CREATE TABLE follow_states (
    actor_id  text NOT NULL,
    target_id text NOT NULL,
    active    boolean NOT NULL,
    version   bigint NOT NULL,
    PRIMARY KEY (actor_id, target_id)
);

-- A person's choices (GET/PUT /api/me/notification-settings). No row: the defaults.
CREATE TABLE notification_settings (
    recipient_id   text PRIMARY KEY,
    channels       jsonb NOT NULL DEFAULT '{}',
    digest         text NOT NULL DEFAULT 'daily' CHECK (digest IN ('daily', 'weekly')),
    digest_hour    integer NOT NULL DEFAULT 8 CHECK (digest_hour BETWEEN 0 AND 23),
    digest_weekday integer NOT NULL DEFAULT 1 CHECK (digest_weekday BETWEEN 1 AND 7),
    time_zone      text,
    quiet_start    time,
    quiet_end      time,
    locale         text CHECK (locale IN ('nb', 'en')),
    -- The end of the span the last digest covered; the next one covers from here.
    digest_through timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- When a person was last seen in the app (reading or streaming notifications): an email that waits is
-- skipped if they were active after it was queued.
CREATE TABLE presence (
    recipient_id text PRIMARY KEY,
    last_seen_at timestamptz NOT NULL
);

-- Emails: one per favourite (at once), one per group for other kinds (after the window), one per digest.
ALTER TABLE emails ALTER COLUMN post_id DROP NOT NULL;
ALTER TABLE emails ALTER COLUMN actor_id DROP NOT NULL;
ALTER TABLE emails ADD COLUMN notification_id uuid;
-- For a digest: the notifications it summarises.
ALTER TABLE emails ADD COLUMN items jsonb;
ALTER TABLE emails ADD COLUMN to_address text;
ALTER TABLE emails DROP CONSTRAINT emails_status_check;
-- skipped: not sent on purpose (read, active, turned off, suppressed address), with the reason in last_error;
-- digest: over the hourly cap, summarised in the next digest instead.
ALTER TABLE emails ADD CONSTRAINT emails_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'cancelled', 'skipped', 'digest'));
CREATE INDEX emails_sent_recently ON emails (recipient_id, sent_at) WHERE status = 'sent';
CREATE INDEX emails_for_digest ON emails (recipient_id) WHERE status = 'digest';
CREATE INDEX emails_failed ON emails (created_at) WHERE status = 'failed';

-- Addresses that refused mail for good (SMTP 5xx): not tried again until an operator clears them.
CREATE TABLE suppressed_addresses (
    address       text PRIMARY KEY,
    reason        text NOT NULL,
    suppressed_at timestamptz NOT NULL DEFAULT now()
);
