-- A crew relationship's ends are fixed: the request role may change its notes and is_active only. With
-- UPDATE on every column, a session with a manager's claims could re-point its relationship with a guest
-- at any user id (the update policy checks the manager alone) and then read that person's email and
-- phone as a member of its crew, bypassing the invitation they would have to accept (issue 13, finding
-- 15). Policies: sql/callmaster/010_access.sql.

REVOKE UPDATE ON callmaster.crew_relationships FROM keel_api;
GRANT UPDATE (notes, is_active) ON callmaster.crew_relationships TO keel_api;
