-- A post a moderator hid leaves every feed until it is restored; the newest moderation decision wins.
ALTER TABLE posts ADD COLUMN hidden boolean NOT NULL DEFAULT false;
ALTER TABLE posts ADD COLUMN moderation_version bigint NOT NULL DEFAULT 0;
