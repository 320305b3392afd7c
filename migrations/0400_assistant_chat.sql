-- Internal assistant (DESIGN §4, §7): conversations of one staff member, and their messages.
-- depends: 0100_clinic_records
--
-- The assistant message row is the job: `status` queued → running → done | failed, claimed by workers
-- with FOR UPDATE SKIP LOCKED and a lease (`lease_until`); `attempts` counts claims, and every write a
-- worker makes is guarded by the attempt number it claimed, so a reply is stored once however many
-- workers raced. Functions, triggers and policies live in sql/assistant/.

CREATE TABLE assistant.conversations (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id  uuid        NOT NULL REFERENCES clinic.clinics (id) ON DELETE CASCADE,
    staff_id   uuid        NOT NULL,
    title      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversations_clinic_id_id_key UNIQUE (clinic_id, id),
    -- Target of the messages' foreign key: a message belongs to its conversation's clinic and staff member.
    CONSTRAINT conversations_clinic_id_staff_id_id_key UNIQUE (clinic_id, staff_id, id),
    CONSTRAINT conversations_staff_fkey FOREIGN KEY (clinic_id, staff_id)
        REFERENCES clinic.staff (clinic_id, id) ON DELETE CASCADE
);
CREATE INDEX conversations_clinic_id_staff_id_idx ON assistant.conversations (clinic_id, staff_id, created_at DESC);

CREATE TABLE assistant.messages (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id       uuid        NOT NULL,
    staff_id        uuid        NOT NULL,
    conversation_id uuid        NOT NULL,
    -- Order inside a conversation (a user message and its reply share one transaction's now()).
    seq             bigint      GENERATED ALWAYS AS IDENTITY,
    role            text        NOT NULL CONSTRAINT messages_role_check CHECK (role IN ('user', 'assistant')),
    content         text        NOT NULL DEFAULT '',
    status          text        NOT NULL DEFAULT 'done'
                    CONSTRAINT messages_status_check CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0 CONSTRAINT messages_attempts_check CHECK (attempts >= 0),
    error           text,
    model           text,
    -- The asker's role claim, so the worker runs tools under the same claims the request had.
    caller_role     text,
    -- Tools the model called for this reply: [{name, arguments, ok}].
    tool_calls      jsonb,
    -- When a queued reply may be claimed (retries back off by moving it forward).
    available_at    timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    worker          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_user_final_check CHECK (role = 'assistant' OR status IN ('done', 'failed')),
    CONSTRAINT messages_conversation_fkey FOREIGN KEY (clinic_id, staff_id, conversation_id)
        REFERENCES assistant.conversations (clinic_id, staff_id, id) ON DELETE CASCADE
);
CREATE INDEX messages_clinic_id_staff_id_conversation_id_idx
    ON assistant.messages (clinic_id, staff_id, conversation_id, seq);
-- What workers claim: due queued replies, and running ones whose lease has run out.
CREATE INDEX messages_queued_idx ON assistant.messages (available_at) WHERE status = 'queued';
CREATE INDEX messages_running_idx ON assistant.messages (lease_until) WHERE status = 'running';

-- Tenant isolation: a staff member sees only their own conversations in their own clinic
-- (policies in sql/assistant/010_access.sql).
ALTER TABLE assistant.conversations ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE assistant.messages ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- The API writes only through functions: inserts under RLS, state changes by the worker's functions.
REVOKE UPDATE, DELETE ON assistant.messages FROM keel_api;
REVOKE UPDATE, DELETE ON assistant.conversations FROM keel_api;
