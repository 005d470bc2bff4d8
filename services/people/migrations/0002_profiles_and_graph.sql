-- Fields a colleague looks for, each editable by the profile's owner only.
ALTER TABLE people
    ADD COLUMN title      text,
    ADD COLUMN department text,
    ADD COLUMN location   text,
    ADD COLUMN bio        text,
    ADD COLUMN expertise  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN languages  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN photo_url  text;

-- The people service owns the graph: its `relations` and `team_members` tables (created in every schema
-- by the shared runtime's migration) are here the source of truth, not a replica.
ALTER TABLE relations
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX relations_newest_first ON relations (target_id, kind, updated_at DESC, actor_id) WHERE active;
CREATE INDEX relations_of_actor ON relations (actor_id, kind, updated_at DESC, target_id) WHERE active;
