-- Rate limits that hold across API processes (issue 16: share-link lookups were limited per process, so N
-- processes allowed N times the limit). One row per key and fixed window, counted by keel.rate_limit_hit
-- (sql/keel/500_rate_limits.sql) in its own transaction, so a lookup that fails (unknown token: 404) still
-- counts. Not tenant data: keys name a client (an address), never a user's records.
-- depends: 0820_callmaster_live_relay_worker

CREATE TABLE keel.rate_limits (
    key          text        NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (key, window_start)
);
-- Old windows are deleted a few at a time by the hits that open a new one.
CREATE INDEX rate_limits_window_start_idx ON keel.rate_limits (window_start);
