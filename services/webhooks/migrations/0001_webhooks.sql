-- Webhook subscriptions of other systems, and the deliveries of events to them (docs/webhooks.md).

CREATE TABLE subscriptions (
    id                   uuid PRIMARY KEY,
    url                  text NOT NULL,
    event_types          text[] NOT NULL,
    description          text NOT NULL DEFAULT '',
    secret               text NOT NULL,
    -- After a rotation the previous secret signs too, until it expires, so receivers can switch over.
    previous_secret      text,
    previous_secret_until timestamptz,
    active               boolean NOT NULL DEFAULT true,
    disabled_reason      text,
    disabled_at          timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0,
    failing_since        timestamptz,
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);

-- The envelope of each event at least one subscription wanted, stored once, as it is sent and signed.
CREATE TABLE events (
    id         uuid PRIMARY KEY,
    type       text NOT NULL,
    body       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deliveries (
    id               bigserial PRIMARY KEY,
    subscription_id  uuid NOT NULL REFERENCES subscriptions ON DELETE CASCADE,
    event_id         uuid NOT NULL REFERENCES events,
    event_type       text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivering', 'delivered', 'failed', 'suspended')),
    attempts         integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       text,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'delivering');
CREATE INDEX deliveries_log ON deliveries (subscription_id, id DESC);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_settled ON deliveries (created_at) WHERE status IN ('delivered', 'failed');

CREATE TABLE delivery_attempts (
    delivery_id bigint NOT NULL REFERENCES deliveries ON DELETE CASCADE,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL,
    status_code integer,
    error       text,
    duration_ms integer NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- Wake the delivery worker at commit.
CREATE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.deliveries', '');
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify();
