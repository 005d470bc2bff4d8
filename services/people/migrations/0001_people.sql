CREATE TABLE people (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    email      text,
    locale     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Bumped on every change; person.updated carries it so replicas keep the newest.
    version    bigint NOT NULL DEFAULT 1
);
