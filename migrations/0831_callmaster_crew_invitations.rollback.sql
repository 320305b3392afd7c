-- The sql/ of the version rolled back to has no invitations; its crew functions replace the ones that
-- read them on its next migrate.
DROP FUNCTION IF EXISTS callmaster.crew_invitation_json(callmaster.crew_invitations_sent);
DROP VIEW IF EXISTS callmaster.crew_invitations_sent;
DROP TABLE IF EXISTS callmaster.crew_invitations;
