-- Who may see and change what in CallMaster: the request's user (from the `sub` claim, a Clerk
-- user id) owns venues, departments, shows and everything under them; crew assigned to a show
-- (an active row in crew_assignments) may read that show, its scripts and elements, its venue and
-- its owner's departments. Nobody else sees anything; keel_owner (DBAs, SECURITY DEFINER
-- functions) bypasses RLS.
--
-- Policies call the helpers as (SELECT callmaster.f()) so each runs once per statement. The
-- helpers are SECURITY DEFINER so that policies never recurse into each other.

CREATE OR REPLACE FUNCTION callmaster.current_user_id()
    RETURNS uuid
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT u.id
    FROM callmaster.users AS u
    WHERE u.clerk_user_id = keel.current_user_sub()
      AND u.is_active
$$;
COMMENT ON FUNCTION callmaster.current_user_id() IS
    'The callmaster.users id of the current request: the active user whose clerk_user_id is the '
    'token''s sub claim. NULL when there is no request, no sub, or no such (active) user. No errors.';

CREATE OR REPLACE FUNCTION callmaster.assigned_show_ids()
    RETURNS uuid[]
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT coalesce(array_agg(DISTINCT ca.show_id), '{}')
    FROM callmaster.crew_assignments AS ca
    WHERE ca.user_id = callmaster.current_user_id()
      AND ca.is_active
$$;
COMMENT ON FUNCTION callmaster.assigned_show_ids() IS
    'Ids of the shows the current request''s user is actively assigned to as crew (may read them). '
    'Empty array outside a request. No errors.';

CREATE OR REPLACE FUNCTION callmaster.visible_user_ids()
    RETURNS uuid[]
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    WITH me AS (
        SELECT callmaster.current_user_id() AS id
    ),
    my_shows AS (
        SELECT s.id, s.owner_id
        FROM callmaster.shows AS s, me
        WHERE s.owner_id = me.id
           OR s.id IN (SELECT ca.show_id
                       FROM callmaster.crew_assignments AS ca
                       WHERE ca.user_id = me.id AND ca.is_active)
    )
    SELECT coalesce(array_agg(DISTINCT v.id), '{}')
    FROM (
        SELECT me.id FROM me
        UNION ALL
        SELECT cr.crew_user_id FROM callmaster.crew_relationships AS cr, me WHERE cr.manager_user_id = me.id
        UNION ALL
        SELECT cr.manager_user_id FROM callmaster.crew_relationships AS cr, me WHERE cr.crew_user_id = me.id
        UNION ALL
        SELECT u.id FROM callmaster.users AS u, me WHERE u.created_by = me.id
        UNION ALL
        SELECT my_shows.owner_id FROM my_shows
        UNION ALL
        SELECT ca.user_id FROM callmaster.crew_assignments AS ca JOIN my_shows ON my_shows.id = ca.show_id
    ) AS v
    WHERE v.id IS NOT NULL
$$;
COMMENT ON FUNCTION callmaster.visible_user_ids() IS
    'Ids of the users the current request''s user may see: self, their crew and managers (crew '
    'relationships either way), guests they created, and the owner and crew of every show they own '
    'or are assigned to. Empty array outside a request. No errors.';

-- users: see the visible set; create guests; edit own profile and the guests one created.
DROP POLICY IF EXISTS users_select ON callmaster.users;
CREATE POLICY users_select ON callmaster.users FOR SELECT TO keel_api
    USING (id = ANY ((SELECT callmaster.visible_user_ids())::uuid[])
           OR created_by = (SELECT callmaster.current_user_id()));
DROP POLICY IF EXISTS users_insert ON callmaster.users;
CREATE POLICY users_insert ON callmaster.users FOR INSERT TO keel_api
    WITH CHECK (created_by = (SELECT callmaster.current_user_id())
                AND status = 'guest'
                AND clerk_user_id IS NULL);
DROP POLICY IF EXISTS users_update ON callmaster.users;
CREATE POLICY users_update ON callmaster.users FOR UPDATE TO keel_api
    USING (id = (SELECT callmaster.current_user_id())
           OR (status = 'guest' AND created_by = (SELECT callmaster.current_user_id())))
    WITH CHECK (id = (SELECT callmaster.current_user_id())
                OR (status = 'guest' AND created_by = (SELECT callmaster.current_user_id())));

-- crew_relationships: both ends see the row; the manager changes its notes and is_active (migration 0911:
-- the ends are not updatable) and may add only a guest they created themself (create_guest_user): anyone
-- else joins a crew by accepting an invitation (issue 13, finding 15), never by the manager's INSERT.
DROP POLICY IF EXISTS crew_relationships_select ON callmaster.crew_relationships;
CREATE POLICY crew_relationships_select ON callmaster.crew_relationships FOR SELECT TO keel_api
    USING (manager_user_id = (SELECT callmaster.current_user_id())
           OR crew_user_id = (SELECT callmaster.current_user_id()));
DROP POLICY IF EXISTS crew_relationships_insert ON callmaster.crew_relationships;
CREATE POLICY crew_relationships_insert ON callmaster.crew_relationships FOR INSERT TO keel_api
    WITH CHECK (manager_user_id = (SELECT callmaster.current_user_id())
                AND EXISTS (SELECT FROM callmaster.users AS u
                            WHERE u.id = crew_relationships.crew_user_id
                              AND u.status = 'guest'
                              AND u.created_by = (SELECT callmaster.current_user_id())));
DROP POLICY IF EXISTS crew_relationships_update ON callmaster.crew_relationships;
CREATE POLICY crew_relationships_update ON callmaster.crew_relationships FOR UPDATE TO keel_api
    USING (manager_user_id = (SELECT callmaster.current_user_id()))
    WITH CHECK (manager_user_id = (SELECT callmaster.current_user_id()));
DROP POLICY IF EXISTS crew_relationships_delete ON callmaster.crew_relationships;
CREATE POLICY crew_relationships_delete ON callmaster.crew_relationships FOR DELETE TO keel_api
    USING (manager_user_id = (SELECT callmaster.current_user_id()));

-- crew_invitations: the manager reads, changes and withdraws their own (columns as granted by migration
-- 0831: never the invitee's id); the invitee's side and creation are SECURITY DEFINER (110_crew.sql).
DROP POLICY IF EXISTS crew_invitations_manager ON callmaster.crew_invitations;
CREATE POLICY crew_invitations_manager ON callmaster.crew_invitations FOR ALL TO keel_api
    USING (manager_user_id = (SELECT callmaster.current_user_id()))
    WITH CHECK (manager_user_id = (SELECT callmaster.current_user_id()));

-- venues: the owner does everything; crew read the venue of a show they are assigned to.
DROP POLICY IF EXISTS venues_owner ON callmaster.venues;
CREATE POLICY venues_owner ON callmaster.venues FOR ALL TO keel_api
    USING (owner_id = (SELECT callmaster.current_user_id()))
    WITH CHECK (owner_id = (SELECT callmaster.current_user_id()));
DROP POLICY IF EXISTS venues_crew_read ON callmaster.venues;
CREATE POLICY venues_crew_read ON callmaster.venues FOR SELECT TO keel_api
    USING (EXISTS (SELECT 1
                   FROM callmaster.shows AS s
                   WHERE s.venue_id = venues.id
                     AND s.id = ANY ((SELECT callmaster.assigned_show_ids())::uuid[])));

-- departments: the owner does everything; crew read the departments of a show's owner.
DROP POLICY IF EXISTS departments_owner ON callmaster.departments;
CREATE POLICY departments_owner ON callmaster.departments FOR ALL TO keel_api
    USING (owner_id = (SELECT callmaster.current_user_id()))
    WITH CHECK (owner_id = (SELECT callmaster.current_user_id()));
DROP POLICY IF EXISTS departments_crew_read ON callmaster.departments;
CREATE POLICY departments_crew_read ON callmaster.departments FOR SELECT TO keel_api
    USING (EXISTS (SELECT 1
                   FROM callmaster.shows AS s
                   WHERE s.owner_id = departments.owner_id
                     AND s.id = ANY ((SELECT callmaster.assigned_show_ids())::uuid[])));

-- shows, crew_assignments, scripts: the owner does everything; assigned crew read.
DROP POLICY IF EXISTS shows_owner ON callmaster.shows;
CREATE POLICY shows_owner ON callmaster.shows FOR ALL TO keel_api
    USING (owner_id = (SELECT callmaster.current_user_id()))
    WITH CHECK (owner_id = (SELECT callmaster.current_user_id()));
DROP POLICY IF EXISTS shows_crew_read ON callmaster.shows;
CREATE POLICY shows_crew_read ON callmaster.shows FOR SELECT TO keel_api
    USING (id = ANY ((SELECT callmaster.assigned_show_ids())::uuid[]));

DROP POLICY IF EXISTS crew_assignments_owner ON callmaster.crew_assignments;
CREATE POLICY crew_assignments_owner ON callmaster.crew_assignments FOR ALL TO keel_api
    USING (owner_id = (SELECT callmaster.current_user_id()))
    WITH CHECK (owner_id = (SELECT callmaster.current_user_id()));
DROP POLICY IF EXISTS crew_assignments_crew_read ON callmaster.crew_assignments;
CREATE POLICY crew_assignments_crew_read ON callmaster.crew_assignments FOR SELECT TO keel_api
    USING (show_id = ANY ((SELECT callmaster.assigned_show_ids())::uuid[]));

DROP POLICY IF EXISTS scripts_owner ON callmaster.scripts;
CREATE POLICY scripts_owner ON callmaster.scripts FOR ALL TO keel_api
    USING (owner_id = (SELECT callmaster.current_user_id()))
    WITH CHECK (owner_id = (SELECT callmaster.current_user_id()));
DROP POLICY IF EXISTS scripts_crew_read ON callmaster.scripts;
CREATE POLICY scripts_crew_read ON callmaster.scripts FOR SELECT TO keel_api
    USING (show_id = ANY ((SELECT callmaster.assigned_show_ids())::uuid[]));

-- script_elements: the owner does everything; crew of the script's show read.
DROP POLICY IF EXISTS script_elements_owner ON callmaster.script_elements;
CREATE POLICY script_elements_owner ON callmaster.script_elements FOR ALL TO keel_api
    USING (owner_id = (SELECT callmaster.current_user_id()))
    WITH CHECK (owner_id = (SELECT callmaster.current_user_id()));
DROP POLICY IF EXISTS script_elements_crew_read ON callmaster.script_elements;
CREATE POLICY script_elements_crew_read ON callmaster.script_elements FOR SELECT TO keel_api
    USING (EXISTS (SELECT 1
                   FROM callmaster.scripts AS s
                   WHERE s.id = script_elements.script_id
                     AND s.show_id = ANY ((SELECT callmaster.assigned_show_ids())::uuid[])));

-- Supporting rows follow their element: readable when the element is (its own RLS decides),
-- writable when the element belongs to the current user.
DROP POLICY IF EXISTS script_element_equipment_read ON callmaster.script_element_equipment;
CREATE POLICY script_element_equipment_read ON callmaster.script_element_equipment FOR SELECT TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                   WHERE e.id = script_element_equipment.element_id));
DROP POLICY IF EXISTS script_element_equipment_owner ON callmaster.script_element_equipment;
CREATE POLICY script_element_equipment_owner ON callmaster.script_element_equipment FOR ALL TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                   WHERE e.id = script_element_equipment.element_id
                     AND e.owner_id = (SELECT callmaster.current_user_id())))
    WITH CHECK (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                        WHERE e.id = script_element_equipment.element_id
                          AND e.owner_id = (SELECT callmaster.current_user_id())));

DROP POLICY IF EXISTS script_element_crew_assignments_read ON callmaster.script_element_crew_assignments;
CREATE POLICY script_element_crew_assignments_read ON callmaster.script_element_crew_assignments
    FOR SELECT TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                   WHERE e.id = script_element_crew_assignments.element_id));
DROP POLICY IF EXISTS script_element_crew_assignments_owner ON callmaster.script_element_crew_assignments;
CREATE POLICY script_element_crew_assignments_owner ON callmaster.script_element_crew_assignments
    FOR ALL TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                   WHERE e.id = script_element_crew_assignments.element_id
                     AND e.owner_id = (SELECT callmaster.current_user_id())))
    WITH CHECK (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                        WHERE e.id = script_element_crew_assignments.element_id
                          AND e.owner_id = (SELECT callmaster.current_user_id())));

DROP POLICY IF EXISTS script_element_performer_assignments_read
    ON callmaster.script_element_performer_assignments;
CREATE POLICY script_element_performer_assignments_read ON callmaster.script_element_performer_assignments
    FOR SELECT TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                   WHERE e.id = script_element_performer_assignments.element_id));
DROP POLICY IF EXISTS script_element_performer_assignments_owner
    ON callmaster.script_element_performer_assignments;
CREATE POLICY script_element_performer_assignments_owner ON callmaster.script_element_performer_assignments
    FOR ALL TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                   WHERE e.id = script_element_performer_assignments.element_id
                     AND e.owner_id = (SELECT callmaster.current_user_id())))
    WITH CHECK (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                        WHERE e.id = script_element_performer_assignments.element_id
                          AND e.owner_id = (SELECT callmaster.current_user_id())));

DROP POLICY IF EXISTS script_element_conditional_rules_read ON callmaster.script_element_conditional_rules;
CREATE POLICY script_element_conditional_rules_read ON callmaster.script_element_conditional_rules
    FOR SELECT TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                   WHERE e.id = script_element_conditional_rules.element_id));
DROP POLICY IF EXISTS script_element_conditional_rules_owner ON callmaster.script_element_conditional_rules;
CREATE POLICY script_element_conditional_rules_owner ON callmaster.script_element_conditional_rules
    FOR ALL TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                   WHERE e.id = script_element_conditional_rules.element_id
                     AND e.owner_id = (SELECT callmaster.current_user_id())))
    WITH CHECK (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                        WHERE e.id = script_element_conditional_rules.element_id
                          AND e.owner_id = (SELECT callmaster.current_user_id())));

DROP POLICY IF EXISTS script_element_groups_read ON callmaster.script_element_groups;
CREATE POLICY script_element_groups_read ON callmaster.script_element_groups FOR SELECT TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                   WHERE e.id = script_element_groups.group_id));
DROP POLICY IF EXISTS script_element_groups_owner ON callmaster.script_element_groups;
CREATE POLICY script_element_groups_owner ON callmaster.script_element_groups FOR ALL TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                   WHERE e.id = script_element_groups.group_id
                     AND e.owner_id = (SELECT callmaster.current_user_id())))
    WITH CHECK (EXISTS (SELECT 1 FROM callmaster.script_elements AS e
                        WHERE e.id = script_element_groups.group_id
                          AND e.owner_id = (SELECT callmaster.current_user_id())));

-- The members an assignment names: users are nobody's tenant rows, so no composite foreign key keeps them
-- to the people the owner may name. The API's functions check it (check_member_refs); these restrictive
-- policies hold a request-role session to the same rule whatever it writes: a user the caller can see
-- (visible_user_ids), or a pending member (invitation_id, whose foreign key or trigger keeps it the
-- owner's). Without them a session could assign any user id to its own show and then read that person's
-- email and phone (the crew of one's shows are visible users).
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT * FROM (VALUES
            ('crew_assignments', 'user_id'),
            ('script_element_crew_assignments', 'crew_user_id'),
            ('script_element_performer_assignments', 'performer_id')
        ) AS v (tab, col)
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS %I ON callmaster.%I', t.tab || '_member_visible', t.tab);
        EXECUTE format('DROP POLICY IF EXISTS %I ON callmaster.%I', t.tab || '_member_visible_update', t.tab);
        EXECUTE format('CREATE POLICY %I ON callmaster.%I AS RESTRICTIVE FOR INSERT TO keel_api WITH CHECK '
                       '(%I IS NULL OR %I = ANY ((SELECT callmaster.visible_user_ids())::uuid[]))',
                       t.tab || '_member_visible', t.tab, t.col, t.col);
        EXECUTE format('CREATE POLICY %I ON callmaster.%I AS RESTRICTIVE FOR UPDATE TO keel_api USING (true) '
                       'WITH CHECK (%I IS NULL OR %I = ANY ((SELECT callmaster.visible_user_ids())::uuid[]))',
                       t.tab || '_member_visible_update', t.tab, t.col, t.col);
    END LOOP;
END
$$;
