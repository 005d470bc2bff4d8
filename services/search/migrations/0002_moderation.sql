-- A post a moderator hid is found by no search until it is restored; the newest decision wins.
ALTER TABLE posts ADD COLUMN hidden boolean NOT NULL DEFAULT false;
ALTER TABLE posts ADD COLUMN moderation_version bigint NOT NULL DEFAULT 0;
