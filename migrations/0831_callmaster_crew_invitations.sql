-- Issue 13, finding 15: adding a guest whose address belongs to a user outside the manager's crew must
-- answer exactly as for a new address, and must not hand that user to the manager without their consent.
-- Such an address becomes an invitation: the manager sees a pending crew member made of what they typed
-- (its id stands for the user's), the user sees the invitation and accepts or declines it
-- (sql/callmaster/110_crew.sql). keel_api may not read which user an invitation is for.

CREATE TABLE callmaster.crew_invitations (
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    manager_user_id uuid        NOT NULL REFERENCES callmaster.users (id) ON DELETE CASCADE,
    invitee_user_id uuid        NOT NULL REFERENCES callmaster.users (id) ON DELETE CASCADE,
    -- The crew relationship's id once accepted (shown to the manager from the start).
    relationship_id uuid        NOT NULL DEFAULT gen_random_uuid(),
    email           text        NOT NULL,
    first_name      text,
    last_name       text,
    phone           text,
    notes           text,
    is_active       boolean     NOT NULL DEFAULT true,
    declined_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (manager_user_id, id),
    CONSTRAINT crew_invitations_not_self_check CHECK (manager_user_id <> invitee_user_id)
);
-- One pending member per address in a manager's crew, as for guests.
CREATE UNIQUE INDEX crew_invitations_email_key ON callmaster.crew_invitations (manager_user_id, lower(email));
CREATE INDEX crew_invitations_invitee_user_id_idx ON callmaster.crew_invitations (invitee_user_id);
ALTER TABLE callmaster.crew_invitations ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- The manager reads and changes their invitations through the crew functions, never the invitee's id:
-- keel_api has every column but invitee_user_id, and reads whole rows through the view below (a whole-row
-- reference to the table would need that column too). Creating, accepting and declining go through
-- SECURITY DEFINER functions.
CREATE VIEW callmaster.crew_invitations_sent WITH (security_invoker = true) AS
    SELECT id, manager_user_id, relationship_id, email, first_name, last_name, phone, notes, is_active,
           declined_at, created_at, updated_at
    FROM callmaster.crew_invitations;
REVOKE ALL ON callmaster.crew_invitations, callmaster.crew_invitations_sent FROM keel_api;
GRANT SELECT (id, manager_user_id, relationship_id, email, first_name, last_name, phone, notes, is_active,
              declined_at, created_at, updated_at),
      UPDATE (notes, is_active),
      DELETE
    ON callmaster.crew_invitations TO keel_api;
GRANT SELECT ON callmaster.crew_invitations_sent TO keel_api;
