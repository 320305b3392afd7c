-- CallMaster live (issue 16): the script change feed, show runs, share links and presence.
-- Functions, triggers and policies: sql/callmaster/700_live_*.sql.
--
-- Feed order: every script has one live_feed_heads row whose `position` each writer of the script's
-- feed increments (UPDATE: a row lock held to commit) and numbers its events from. Writers of one
-- script therefore commit in position order and positions have no gaps (a rolled-back writer gives
-- its numbers back): a reader that sees position n sees everything before it, so "every event after
-- my last one" is exactly what was missed, in commit order.

CREATE TABLE callmaster.live_feed_heads (
    script_id      uuid        PRIMARY KEY REFERENCES callmaster.scripts (id) ON DELETE CASCADE,
    position       bigint      NOT NULL DEFAULT 0,
    -- Events up to here may have been pruned (retention): an older Last-Event-ID gets `reset`.
    pruned_through bigint      NOT NULL DEFAULT 0,
    -- The transaction that created the script: its own element writes are not logged (nobody can
    -- follow a script before it commits; the first `state` covers them).
    created_xid    xid8        NOT NULL DEFAULT pg_current_xact_id(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT live_feed_heads_position_check CHECK (position >= pruned_through AND pruned_through >= 0)
);
INSERT INTO callmaster.live_feed_heads (script_id) SELECT s.id FROM callmaster.scripts AS s;

-- The append-only log: ids and changed column names, never values. One row per writing statement and
-- script: its events take the positions first_position..position, element i (1-based) of element_ids
-- at first_position + i - 1, with its changed columns (comma-separated) at fields[i]; a command is a
-- row of one event. (A row per element cost a 1,000-element bulk update more than the update itself.)
-- No foreign key to the head: its per-row check would take a KEY SHARE lock on the head the writer
-- holds FOR NO KEY UPDATE (a multixact); a trigger on the heads deletes a deleted script's events.
CREATE TABLE callmaster.live_events (
    script_id      uuid        NOT NULL,
    position       bigint      NOT NULL,
    first_position bigint      NOT NULL,
    event          text        NOT NULL,
    element_ids    uuid[],
    fields         text[],
    element_id     uuid,
    run_id         uuid,
    command        text,
    -- Commands only: the run as the command left it (live_run_json).
    run            jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (script_id, position),
    CONSTRAINT live_events_event_check CHECK (event IN (
        'element.created', 'element.updated', 'element.deleted', 'command')),
    CONSTRAINT live_events_command_check CHECK ((event = 'command') = (command IS NOT NULL)),
    CONSTRAINT live_events_positions_check CHECK (
        CASE WHEN event = 'command' THEN element_ids IS NULL AND first_position = position
             ELSE cardinality(element_ids) = position - first_position + 1 END),
    CONSTRAINT live_events_fields_check CHECK (fields IS NULL OR cardinality(fields) = cardinality(element_ids))
);
CREATE INDEX live_events_created_at_idx ON callmaster.live_events (created_at);

-- A performance of a script being called. At most one run per script is not stopped.
CREATE TABLE callmaster.show_runs (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    script_id          uuid        NOT NULL,
    owner_id           uuid        NOT NULL,
    status             text        NOT NULL DEFAULT 'standby',
    standby_element_id uuid,
    current_element_id uuid,
    go_count           integer     NOT NULL DEFAULT 0,
    hold_count         integer     NOT NULL DEFAULT 0,
    started_at         timestamptz,
    hold_started_at    timestamptz,
    held_ms            bigint      NOT NULL DEFAULT 0,
    stopped_at         timestamptz,
    called_by          uuid        REFERENCES callmaster.users (id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT show_runs_script_fkey FOREIGN KEY (script_id, owner_id)
        REFERENCES callmaster.scripts (id, owner_id) ON DELETE CASCADE,
    CONSTRAINT show_runs_standby_fkey FOREIGN KEY (script_id, standby_element_id)
        REFERENCES callmaster.script_elements (script_id, id) ON DELETE SET NULL (standby_element_id),
    CONSTRAINT show_runs_current_fkey FOREIGN KEY (script_id, current_element_id)
        REFERENCES callmaster.script_elements (script_id, id) ON DELETE SET NULL (current_element_id),
    CONSTRAINT show_runs_status_check CHECK (status IN ('standby', 'running', 'holding', 'stopped')),
    CONSTRAINT show_runs_hold_check CHECK ((status = 'holding') = (hold_started_at IS NOT NULL)),
    CONSTRAINT show_runs_stopped_check CHECK ((status = 'stopped') = (stopped_at IS NOT NULL)),
    CONSTRAINT show_runs_counts_check CHECK (go_count >= 0 AND hold_count >= 0 AND held_ms >= 0)
);
CREATE INDEX show_runs_script_idx ON callmaster.show_runs (script_id, owner_id, created_at);
CREATE UNIQUE INDEX show_runs_one_open_idx ON callmaster.show_runs (script_id) WHERE status <> 'stopped';
CREATE INDEX show_runs_standby_idx ON callmaster.show_runs (script_id, standby_element_id)
    WHERE standby_element_id IS NOT NULL;
CREATE INDEX show_runs_current_idx ON callmaster.show_runs (script_id, current_element_id)
    WHERE current_element_id IS NOT NULL;
CREATE INDEX show_runs_called_by_idx ON callmaster.show_runs (called_by) WHERE called_by IS NOT NULL;

-- Read-only links to one show for crew without accounts. Only the SHA-256 of the token is kept.
CREATE TABLE callmaster.share_links (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    show_id    uuid        NOT NULL,
    owner_id   uuid        NOT NULL,
    token_hash bytea       NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT share_links_token_hash_key UNIQUE (token_hash),
    CONSTRAINT share_links_show_fkey FOREIGN KEY (show_id, owner_id)
        REFERENCES callmaster.shows (id, owner_id) ON DELETE CASCADE,
    CONSTRAINT share_links_token_hash_check CHECK (octet_length(token_hash) = 32)
);
CREATE INDEX share_links_show_idx ON callmaster.share_links (show_id, owner_id);

-- Devices following a script, as reported by each API process's relay every few seconds (counts
-- only: a department or the audience kind, never who). Rows of a process that stopped reporting
-- are ignored after a while and replaced on its next report.
CREATE UNLOGGED TABLE callmaster.live_presence (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    process_id    uuid        NOT NULL,
    script_id     uuid        NOT NULL REFERENCES callmaster.scripts (id) ON DELETE CASCADE,
    audience      text        NOT NULL,
    department_id uuid,
    devices       integer     NOT NULL,
    reported_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT live_presence_audience_check CHECK (audience IN ('owner', 'crew', 'shared')),
    CONSTRAINT live_presence_devices_check CHECK (devices > 0)
);
CREATE INDEX live_presence_script_idx ON callmaster.live_presence (script_id);
CREATE INDEX live_presence_process_idx ON callmaster.live_presence (process_id);

ALTER TABLE callmaster.live_feed_heads ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.live_events ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.show_runs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.share_links ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE callmaster.live_presence ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- The feed, share links and presence are reached only through the SECURITY DEFINER functions of
-- sql/callmaster/700_live_*.sql; show runs are readable under RLS (policies there), written by them.
REVOKE ALL ON callmaster.live_feed_heads, callmaster.live_events, callmaster.share_links,
    callmaster.live_presence FROM keel_api;
REVOKE INSERT, UPDATE, DELETE ON callmaster.show_runs FROM keel_api;
