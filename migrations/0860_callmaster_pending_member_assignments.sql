-- Issue 13, finding 15, the last enumeration channel: a pending crew member (an invitation, migration
-- 0831) could not be assigned to a show or an element while a guest could, so a manager could tell "this
-- address has an account" by trying. A pending member now behaves like a guest for its manager:
--
-- * Assignments name a member: a user (user_id / crew_user_id / performer_id, as before) or, while the
--   person has not accepted, the invitation (invitation_id); exactly one of the two. member_id is the one
--   set (generated), and it is what the API shows and what the keys are made of. A pending assignment
--   grants nothing: every access check reads the user column, which is NULL. accept_crew_invitation moves
--   the invitation's assignments to the user in its transaction (sql/callmaster/110_crew.sql).
-- * Removing a pending member from the crew keeps the invitation, withdrawn (removed_at), as removing a
--   guest keeps the guest user: its assignments stay, and adding the address again brings it back.
-- depends: 0831_callmaster_crew_invitations

ALTER TABLE callmaster.crew_invitations ADD COLUMN removed_at timestamptz;
-- Element assignments have no owner column (reached through their element, like every element child
-- row): they reference the invitation by id alone. Add-member functions check it is the element owner's.
ALTER TABLE callmaster.crew_invitations ADD CONSTRAINT crew_invitations_id_key UNIQUE (id);
CREATE OR REPLACE VIEW callmaster.crew_invitations_sent WITH (security_invoker = true) AS
    SELECT id, manager_user_id, relationship_id, email, first_name, last_name, phone, notes, is_active,
           declined_at, created_at, updated_at, removed_at
    FROM callmaster.crew_invitations;
GRANT SELECT (removed_at), UPDATE (removed_at) ON callmaster.crew_invitations TO keel_api;

-- Show crew.
ALTER TABLE callmaster.crew_assignments
    ALTER COLUMN user_id DROP NOT NULL,
    ADD COLUMN invitation_id uuid,
    ADD COLUMN member_id uuid NOT NULL GENERATED ALWAYS AS (coalesce(user_id, invitation_id)) STORED,
    ADD CONSTRAINT crew_assignments_member_check CHECK (num_nonnulls(user_id, invitation_id) = 1),
    -- The invitation is the show owner's (its manager): composite, as every tenant reference.
    ADD CONSTRAINT crew_assignments_invitation_fkey FOREIGN KEY (owner_id, invitation_id)
        REFERENCES callmaster.crew_invitations (manager_user_id, id) ON DELETE CASCADE,
    DROP CONSTRAINT crew_assignments_show_user_department_key,
    ADD CONSTRAINT crew_assignments_show_user_department_key
        UNIQUE NULLS NOT DISTINCT (show_id, owner_id, member_id, department_id);
CREATE INDEX crew_assignments_invitation_id_idx ON callmaster.crew_assignments (invitation_id, owner_id)
    WHERE invitation_id IS NOT NULL;

-- Element crew and performers: the primary key is the element and the member, as it was with users only.
ALTER TABLE callmaster.script_element_crew_assignments
    DROP CONSTRAINT script_element_crew_assignments_pkey,
    ALTER COLUMN crew_user_id DROP NOT NULL,
    ADD COLUMN invitation_id uuid REFERENCES callmaster.crew_invitations (id) ON DELETE CASCADE,
    ADD COLUMN member_id uuid NOT NULL GENERATED ALWAYS AS (coalesce(crew_user_id, invitation_id)) STORED,
    ADD CONSTRAINT script_element_crew_assignments_member_check
        CHECK (num_nonnulls(crew_user_id, invitation_id) = 1),
    ADD PRIMARY KEY (element_id, member_id);
CREATE INDEX script_element_crew_assignments_invitation_id_idx
    ON callmaster.script_element_crew_assignments (invitation_id) WHERE invitation_id IS NOT NULL;

ALTER TABLE callmaster.script_element_performer_assignments
    DROP CONSTRAINT script_element_performer_assignments_pkey,
    ALTER COLUMN performer_id DROP NOT NULL,
    ADD COLUMN invitation_id uuid REFERENCES callmaster.crew_invitations (id) ON DELETE CASCADE,
    ADD COLUMN member_id uuid NOT NULL GENERATED ALWAYS AS (coalesce(performer_id, invitation_id)) STORED,
    ADD CONSTRAINT script_element_performer_assignments_member_check
        CHECK (num_nonnulls(performer_id, invitation_id) = 1),
    ADD PRIMARY KEY (element_id, member_id);
CREATE INDEX script_element_performer_assignments_invitation_id_idx
    ON callmaster.script_element_performer_assignments (invitation_id) WHERE invitation_id IS NOT NULL;

-- Element assignments are checked by callmaster.check_member_refs now (user or pending member).
DROP FUNCTION IF EXISTS callmaster.check_user_refs(uuid[], uuid[], text, text);
