-- Domain schemas, default privileges for the API role, and shared infrastructure tables.

CREATE SCHEMA clinic AUTHORIZATION keel_owner;
CREATE SCHEMA assistant AUTHORIZATION keel_owner;
CREATE SCHEMA callmaster AUTHORIZATION keel_owner;

GRANT USAGE ON SCHEMA keel, clinic, assistant, callmaster TO keel_api;

-- Every table keel_owner creates in these schemas is reachable by keel_api; row-level security
-- (enabled and forced on every tenant table) decides which rows.
ALTER DEFAULT PRIVILEGES FOR ROLE keel_owner IN SCHEMA keel, clinic, assistant, callmaster
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO keel_api;
ALTER DEFAULT PRIVILEGES FOR ROLE keel_owner IN SCHEMA keel, clinic, assistant, callmaster
    GRANT USAGE, SELECT ON SEQUENCES TO keel_api;

-- Replayed POSTs: the first answer is kept per (principal, key).
CREATE TABLE keel.idempotency_keys (
    principal     text        NOT NULL,
    key           text        NOT NULL,
    method        text        NOT NULL,
    path          text        NOT NULL,
    request_hash  text        NOT NULL,
    status_code   integer,
    response_body jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON keel.idempotency_keys (created_at);

-- Events written by triggers in the same transaction as the change; delivered by the dispatcher.
CREATE TABLE keel.outbox (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    topic        text        NOT NULL,
    payload      jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text,
    delivered_at timestamptz
);
CREATE INDEX outbox_due_idx ON keel.outbox (available_at) WHERE delivered_at IS NULL;
CREATE INDEX outbox_delivered_at_idx ON keel.outbox (delivered_at) WHERE delivered_at IS NOT NULL;

-- One row per materialized-view refresh run.
CREATE TABLE keel.metrics_refresh_log (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    duration_ms numeric,
    outcome     text        NOT NULL DEFAULT 'running'
                CHECK (outcome IN ('running', 'ok', 'skipped', 'failed')),
    detail      text
);
CREATE INDEX metrics_refresh_log_started_at_idx ON keel.metrics_refresh_log (started_at DESC);

-- Webhook deliveries already processed (Svix message ids), for replay safety.
CREATE TABLE keel.webhook_events (
    source      text        NOT NULL,
    event_id    text        NOT NULL,
    event_type  text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
);
