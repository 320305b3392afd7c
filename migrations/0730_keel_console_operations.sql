-- Console operations page (issue 18): each outbox event names its clinic, so a clinic admin reads and
-- retries their own clinic's events under row-level security (policies and functions in
-- sql/keel/400_console_operations.sql) while a DBA (keel_owner, BYPASSRLS) sees every event.
-- depends: 0201_outbox_dispatch

-- Generated from the payload (every clinic event carries clinic_id): no writer has to change, a DBA's raw
-- INSERT gets it too, and existing rows are filled by the rewrite. Events of no clinic keep NULL.
ALTER TABLE keel.outbox
    ADD COLUMN clinic_id uuid GENERATED ALWAYS AS (
        CASE WHEN payload ->> 'clinic_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
             THEN (payload ->> 'clinic_id')::uuid
        END
    ) STORED;
-- What the operations page reads: a clinic's pending and failed events.
CREATE INDEX outbox_clinic_id_undelivered_idx ON keel.outbox (clinic_id, created_at) WHERE delivered_at IS NULL;

ALTER TABLE keel.outbox ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
-- keel_api reads its clinic's events and may requeue a failed one (policies restrict both to admins).
GRANT SELECT ON keel.outbox TO keel_api;
GRANT UPDATE (failed_at, attempts, available_at) ON keel.outbox TO keel_api;
