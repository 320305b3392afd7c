-- Before 0860 a pending member had no assignments and a withdrawn invitation was deleted: those go.
-- The sql/ of the version rolled back to replaces the functions that read the new columns on its next
-- migrate (check_user_refs comes back with it); the ones it does not have go here.
DROP TRIGGER IF EXISTS script_element_crew_assignments_member_owner
    ON callmaster.script_element_crew_assignments;
DROP TRIGGER IF EXISTS script_element_performer_assignments_member_owner
    ON callmaster.script_element_performer_assignments;
DROP FUNCTION IF EXISTS callmaster.check_element_member_owner();
DROP FUNCTION IF EXISTS callmaster.pending_member_summary(uuid, uuid);
DROP FUNCTION IF EXISTS callmaster.check_member_refs(uuid[], uuid, text, text);
DELETE FROM callmaster.crew_assignments WHERE invitation_id IS NOT NULL;
DELETE FROM callmaster.script_element_crew_assignments WHERE invitation_id IS NOT NULL;
DELETE FROM callmaster.script_element_performer_assignments WHERE invitation_id IS NOT NULL;
DELETE FROM callmaster.crew_invitations WHERE removed_at IS NOT NULL;

ALTER TABLE callmaster.script_element_performer_assignments
    DROP CONSTRAINT script_element_performer_assignments_pkey,
    DROP COLUMN member_id,
    DROP COLUMN invitation_id,
    ALTER COLUMN performer_id SET NOT NULL,
    ADD PRIMARY KEY (element_id, performer_id);
ALTER TABLE callmaster.script_element_crew_assignments
    DROP CONSTRAINT script_element_crew_assignments_pkey,
    DROP COLUMN member_id,
    DROP COLUMN invitation_id,
    ALTER COLUMN crew_user_id SET NOT NULL,
    ADD PRIMARY KEY (element_id, crew_user_id);
ALTER TABLE callmaster.crew_assignments
    DROP CONSTRAINT crew_assignments_show_user_department_key,
    DROP COLUMN member_id,
    DROP COLUMN invitation_id,
    ALTER COLUMN user_id SET NOT NULL,
    ADD CONSTRAINT crew_assignments_show_user_department_key
        UNIQUE NULLS NOT DISTINCT (show_id, owner_id, user_id, department_id);

DROP FUNCTION IF EXISTS callmaster.crew_invitation_json(callmaster.crew_invitations_sent);
DROP VIEW callmaster.crew_invitations_sent;
CREATE VIEW callmaster.crew_invitations_sent WITH (security_invoker = true) AS
    SELECT id, manager_user_id, relationship_id, email, first_name, last_name, phone, notes, is_active,
           declined_at, created_at, updated_at
    FROM callmaster.crew_invitations;
GRANT SELECT ON callmaster.crew_invitations_sent TO keel_api;
ALTER TABLE callmaster.crew_invitations DROP CONSTRAINT crew_invitations_id_key, DROP COLUMN removed_at;
