-- Who follows, mutes and blocks whom, and who is in which team: kept from the people service's events by
-- every service that decides who may see a post, so each enforces audiences on its own data.
CREATE TABLE relations (
    actor_id  text NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('follow', 'mute', 'block')),
    target_id text NOT NULL,
    active    boolean NOT NULL,
    version   bigint NOT NULL,
    PRIMARY KEY (actor_id, kind, target_id)
);
CREATE INDEX relations_by_target ON relations (target_id, kind, actor_id) WHERE active;

CREATE TABLE team_members (
    person_id text PRIMARY KEY,
    teams     text[] NOT NULL,
    version   bigint NOT NULL
);
CREATE INDEX team_members_by_team ON team_members USING gin (teams);

-- The one definition of who may see a post, used by every service's queries. Blocks win over every
-- audience; "followers" means the author's followers at the time of reading. Tables are resolved on
-- the caller's search_path (each service's own schema), which also keeps the function inlinable.
CREATE FUNCTION may_see(viewer text, author text, audience jsonb) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN viewer = author THEN true
        WHEN EXISTS (
            SELECT 1 FROM relations r
            WHERE r.kind = 'block' AND r.active
              AND ((r.actor_id = author AND r.target_id = viewer) OR (r.actor_id = viewer AND r.target_id = author))
        ) THEN false
        WHEN audience ->> 'type' = 'everyone' THEN true
        WHEN audience ->> 'type' = 'team' THEN EXISTS (
            SELECT 1 FROM team_members t WHERE t.person_id = viewer AND (audience ->> 'team') = ANY (t.teams)
        )
        WHEN audience ->> 'type' = 'followers' THEN EXISTS (
            SELECT 1 FROM relations r
            WHERE r.kind = 'follow' AND r.active AND r.actor_id = viewer AND r.target_id = author
        )
        ELSE false
    END
$$;

-- Whether two people have blocked each other in either direction: then neither sees the other's likes.
CREATE FUNCTION blocked_between(a text, b text) RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM relations r
        WHERE r.kind = 'block' AND r.active
          AND ((r.actor_id = a AND r.target_id = b) OR (r.actor_id = b AND r.target_id = a))
    )
$$;
