-- Crews: a manager's crew is the users they have a crew relationship with; guests are crew members
-- created by a manager before they have a Clerk account (they claim the record on sign-up).

CREATE OR REPLACE FUNCTION callmaster.crew_member_json(u callmaster.users, cr callmaster.crew_relationships)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    SELECT jsonb_build_object(
        'user_id', u.id,
        'email', u.email,
        'first_name', u.first_name,
        'last_name', u.last_name,
        'phone', u.phone,
        'image_url', u.image_url,
        'status', u.status,
        'role', u.role,
        'is_active', u.is_active,
        'is_self', cr.id IS NULL,
        'relationship', CASE WHEN cr.id IS NOT NULL THEN jsonb_build_object(
            'id', cr.id,
            'notes', cr.notes,
            'is_active', cr.is_active,
            'created_at', cr.created_at,
            'updated_at', cr.updated_at) END)
$$;
COMMENT ON FUNCTION callmaster.crew_member_json(callmaster.users, callmaster.crew_relationships) IS
    'The API representation of a crew member: the user''s public fields and, unless it is the manager '
    'themself (relationship row NULL), the crew relationship. Arguments: the user row, the relationship '
    'row (or NULL). No errors.';

CREATE OR REPLACE FUNCTION callmaster.create_guest_user(
    manager_user_id uuid,
    email text,
    first_name text,
    last_name text,
    phone text DEFAULT NULL,
    notes text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql
AS $$
DECLARE
    v_email text := lower(btrim(create_guest_user.email));
    v_id    uuid;
BEGIN
    IF v_email IS NULL OR v_email = '' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'email is required';
    END IF;
    IF v_email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('email %s is not a valid address', create_guest_user.email);
    END IF;
    PERFORM 1
    FROM callmaster.users AS u
    WHERE u.id = create_guest_user.manager_user_id
      AND u.is_active;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002',
            MESSAGE = format('manager user %s does not exist', coalesce(manager_user_id::text, 'NULL'));
    END IF;

    BEGIN
        INSERT INTO callmaster.users (email, first_name, last_name, phone, status, created_by)
        VALUES (v_email, nullif(btrim(create_guest_user.first_name), ''),
                nullif(btrim(create_guest_user.last_name), ''), nullif(btrim(create_guest_user.phone), ''),
                'guest', create_guest_user.manager_user_id)
        RETURNING id INTO v_id;
    EXCEPTION WHEN unique_violation THEN
        -- Say who holds the address only when the manager already knows them (themself or their crew);
        -- about anyone else the answer is the same whether or not an account exists behind it
        -- (issue 13, finding 15: the message used to confirm another tenant's account).
        IF EXISTS (SELECT
                   FROM callmaster.users AS u
                   WHERE lower(u.email) = v_email
                     AND (u.id = create_guest_user.manager_user_id
                          OR EXISTS (SELECT
                                     FROM callmaster.crew_relationships AS cr
                                     WHERE cr.manager_user_id = create_guest_user.manager_user_id
                                       AND cr.crew_user_id = u.id))) THEN
            RAISE EXCEPTION USING
                ERRCODE = '23505',
                MESSAGE = format('%s is already you or a member of your crew', v_email);
        END IF;
        RAISE EXCEPTION USING
            ERRCODE = '23505',
            MESSAGE = format('%s cannot be added as a new guest', v_email),
            HINT = 'Use another address, or ask the person to add you to their crew.';
    END;

    INSERT INTO callmaster.crew_relationships (manager_user_id, crew_user_id, notes)
    VALUES (create_guest_user.manager_user_id, v_id, create_guest_user.notes);
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION callmaster.create_guest_user(uuid, text, text, text, text, text) IS
    'Creates a guest user (no Clerk account yet; status guest, created_by the manager) and the manager''s '
    'crew relationship to them, atomically. Arguments: manager_user_id, email (stored lower-case), '
    'first_name, last_name, phone (optional), notes (optional, on the relationship). Returns the new user '
    'id. Through the API the manager is always the requesting user (RLS). Errors: 22023 missing or '
    'malformed email; P0002 manager does not exist or is inactive; 23505 the email is taken (the message names '
    'the holder only when it is the manager or their crew, and is otherwise the same whether or not an '
    'account exists); '
    '42501 (API) manager is not the requesting user.';

-- Invitations (issue 13, finding 15). A manager adding an address that belongs to a user outside their
-- crew gets the same answer as for a new address: a guest crew member made of what they typed, whose
-- user_id is the invitation's id. Nothing of the existing user reaches them (not their id, names or
-- status), and the user joins the crew only by accepting: then the relationship (same id, notes and
-- is_active as the invitation) links the manager to the real user. A declined invitation stays pending
-- on the manager's side, as a guest who never signs up does.
-- Until then the pending member is, for its manager, a guest in every respect (migration 0860): it can be
-- assigned to shows and elements (the assignments name the invitation and grant nothing; accepting moves
-- them to the user), and removing it from the crew withdraws the invitation but keeps it, with its
-- assignments, as removing a guest keeps the guest user; adding the address again brings it back.

CREATE OR REPLACE FUNCTION callmaster.crew_invitation_json(i callmaster.crew_invitations_sent)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    SELECT jsonb_build_object(
        'user_id', i.id,
        'email', i.email,
        'first_name', i.first_name,
        'last_name', i.last_name,
        'phone', i.phone,
        'image_url', NULL,
        'status', 'guest',
        'role', NULL,
        'is_active', true,
        'is_self', false,
        'relationship', jsonb_build_object(
            'id', i.relationship_id,
            'notes', i.notes,
            'is_active', i.is_active,
            'created_at', i.created_at,
            'updated_at', i.updated_at))
$$;
COMMENT ON FUNCTION callmaster.crew_invitation_json(callmaster.crew_invitations_sent) IS
    'A pending crew member (an invitation) as its manager sees it: exactly the shape crew_member_json gives '
    'a new guest, from what the manager typed (user_id is the invitation id; status guest). Arguments: the '
    'invitation (view crew_invitations_sent). No errors.';

CREATE OR REPLACE FUNCTION callmaster.invite_to_crew(
    p_email text,
    p_first_name text,
    p_last_name text,
    p_phone text,
    p_notes text)
    RETURNS uuid
    LANGUAGE plpgsql
    VOLATILE
AS $$
DECLARE
    v_me      uuid := callmaster.require_user_id();
    v_email   text := lower(btrim(p_email));
    v_invitee uuid;
    v_id      uuid;
BEGIN
    SELECT u.id INTO v_invitee
    FROM callmaster.users AS u
    WHERE lower(u.email) = v_email;
    IF v_invitee IS NULL THEN
        -- The holder went away since the caller's INSERT collided: the same request now creates a guest.
        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'the address was released meanwhile; retry';
    END IF;
    IF v_invitee = v_me
       OR EXISTS (SELECT
                  FROM callmaster.crew_relationships AS cr
                  WHERE cr.manager_user_id = v_me AND cr.crew_user_id = v_invitee) THEN
        RAISE EXCEPTION USING
            ERRCODE = '23505',
            MESSAGE = format('%s is already you or a member of your crew', v_email);
    END IF;
    -- A guest the manager created (and later removed from the crew) is their own record: back in the crew.
    IF EXISTS (SELECT
               FROM callmaster.users AS u
               WHERE u.id = v_invitee AND u.status = 'guest' AND u.created_by = v_me) THEN
        INSERT INTO callmaster.crew_relationships (manager_user_id, crew_user_id, notes)
        VALUES (v_me, v_invitee, p_notes);
        RETURN v_invitee;
    END IF;
    INSERT INTO callmaster.crew_invitations (manager_user_id, invitee_user_id, email, first_name, last_name,
                                             phone, notes)
    VALUES (v_me, v_invitee, v_email, nullif(btrim(p_first_name), ''), nullif(btrim(p_last_name), ''),
            nullif(btrim(p_phone), ''), p_notes)
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION callmaster.invite_to_crew(text, text, text, text, text) IS
    'Internal (add_guest): invites the user holding an email address into the requesting user''s crew, '
    'keeping what the manager typed (email lower-cased, names, phone, notes). Returns the invitation id; '
    'for a guest the manager created themself (removed from the crew since), puts it back in the crew and '
    'returns its user id. '
    'Errors: 23505 the address is the manager''s own or their crew member''s; 40001 the address has no '
    'holder any more (retry: it becomes a guest); 42501 no request user.';
-- Only add_guest (SECURITY DEFINER) calls it.
REVOKE ALL ON FUNCTION callmaster.invite_to_crew(text, text, text, text, text) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.get_crew_member(user_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_me uuid := callmaster.require_user_id();
    v_result jsonb;
BEGIN
    SELECT callmaster.crew_member_json(u, cr) INTO v_result
    FROM callmaster.users AS u
    JOIN callmaster.crew_relationships AS cr ON cr.crew_user_id = u.id AND cr.manager_user_id = v_me
    WHERE u.id = get_crew_member.user_id;
    IF v_result IS NULL THEN
        SELECT callmaster.crew_invitation_json(i) INTO v_result
        FROM callmaster.crew_invitations_sent AS i
        WHERE i.manager_user_id = v_me
          AND i.id = get_crew_member.user_id
          AND i.removed_at IS NULL;
    END IF;
    IF v_result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'crew member not found';
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.get_crew_member(uuid) IS
    'API: one member of the requesting user''s crew (crew_member_json; a pending one as '
    'crew_invitation_json), e.g. to replay an Idempotency-Key answer of add_guest. Arguments: user_id. '
    'Errors: P0002 not in the crew; 42501 no request user.';
-- The API replays add_guest answers with it.
REVOKE EXECUTE ON FUNCTION callmaster.get_crew_member(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callmaster.get_crew_member(uuid) TO keel_api;

-- SECURITY DEFINER: the holder of an address outside the crew is invisible to the caller (row-level
-- security), and invite_to_crew is not keel_api's to call (alone, it would tell taken addresses from free
-- ones). It acts only for the requesting user, on their own crew.
CREATE OR REPLACE FUNCTION callmaster.add_guest(data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_me    uuid := callmaster.require_user_id();
    v_email text := lower(btrim(data ->> 'email'));
    v_id    uuid;
BEGIN
    -- The caller's own data may be named as such: themself, their crew, the invitations they sent.
    IF EXISTS (SELECT
               FROM callmaster.users AS u
               WHERE lower(u.email) = v_email
                 AND (u.id = v_me
                      OR EXISTS (SELECT
                                 FROM callmaster.crew_relationships AS cr
                                 WHERE cr.manager_user_id = v_me AND cr.crew_user_id = u.id)))
       OR EXISTS (SELECT
                  FROM callmaster.crew_invitations_sent AS i
                  WHERE i.manager_user_id = v_me AND lower(i.email) = v_email AND i.removed_at IS NULL) THEN
        RAISE EXCEPTION USING
            ERRCODE = '23505',
            MESSAGE = format('%s is already you or a member of your crew', v_email);
    END IF;
    -- A pending member removed from the crew comes back, as a guest of one's own does (invite_to_crew):
    -- same id (its assignments kept), a new relationship, invited afresh.
    UPDATE callmaster.crew_invitations AS i
    SET removed_at = NULL, declined_at = NULL, relationship_id = gen_random_uuid(), notes = data ->> 'notes',
        is_active = true, created_at = now(), updated_at = now()
    WHERE i.manager_user_id = v_me AND lower(i.email) = v_email AND i.removed_at IS NOT NULL
    RETURNING i.id INTO v_id;
    IF FOUND THEN
        RETURN callmaster.get_crew_member(v_id);
    END IF;
    BEGIN
        v_id := callmaster.create_guest_user(v_me, data ->> 'email', data ->> 'first_name',
                                             data ->> 'last_name', data ->> 'phone', data ->> 'notes');
    EXCEPTION WHEN unique_violation THEN
        -- Someone outside the crew holds the address: invite them, and answer as for a new guest.
        v_id := callmaster.invite_to_crew(data ->> 'email', data ->> 'first_name', data ->> 'last_name',
                                          data ->> 'phone', data ->> 'notes');
    END;
    RETURN callmaster.get_crew_member(v_id);
END
$$;
COMMENT ON FUNCTION callmaster.add_guest(jsonb) IS
    'API: adds a guest to the requesting user''s crew (see create_guest_user). An address held by a user '
    'outside the crew becomes an invitation (invite_to_crew) answered exactly like a new guest, so the '
    'answer reveals nothing about other users; a pending member the caller removed comes back (same id). '
    'Arguments: data {email, first_name, last_name, phone?, '
    'notes?}. Returns the crew member (crew_member_json or crew_invitation_json). Errors: 23505 the '
    'address is the caller''s own, a crew member''s or an invitation''s they sent; 22023 missing or '
    'malformed email; 42501 no request user.';

CREATE OR REPLACE FUNCTION callmaster.list_crew(lim integer, skip integer)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_me     uuid := callmaster.require_user_id();
    v_result jsonb;
BEGIN
    WITH members AS (
        SELECT callmaster.crew_member_json(u, NULL::callmaster.crew_relationships) AS member, 0 AS rank,
               lower(u.last_name) AS last_name, lower(u.first_name) AS first_name, lower(u.email) AS email,
               u.id
        FROM callmaster.users AS u
        WHERE u.id = v_me
        UNION ALL
        SELECT callmaster.crew_member_json(u, cr), 1, lower(u.last_name), lower(u.first_name),
               lower(u.email), u.id
        FROM callmaster.crew_relationships AS cr
        JOIN callmaster.users AS u ON u.id = cr.crew_user_id
        WHERE cr.manager_user_id = v_me
        UNION ALL
        SELECT callmaster.crew_invitation_json(i), 1, lower(i.last_name), lower(i.first_name),
               lower(i.email), i.id
        FROM callmaster.crew_invitations_sent AS i
        WHERE i.manager_user_id = v_me
          AND i.removed_at IS NULL
    ),
    page AS (
        SELECT m.*
        FROM members AS m
        ORDER BY m.rank, m.last_name, m.first_name, m.email, m.id
        LIMIT lim OFFSET skip
    )
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(p.member ORDER BY p.rank, p.last_name, p.first_name, p.email, p.id)
                           FROM page AS p), '[]'),
        'total', (SELECT count(*) FROM members),
        'limit', lim,
        'offset', skip)
    INTO v_result;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.list_crew(integer, integer) IS
    'API: the requesting user (first, is_self true) and every user they manage, with the relationship '
    '(notes, active), pending invitations among them (crew_invitation_json), ordered by name. Arguments: '
    'lim, skip (page). Returns {items, total, limit, offset}. Errors: 42501 no request user.';

CREATE OR REPLACE FUNCTION callmaster.update_crew_member(crew_user_id uuid, patch jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me uuid := callmaster.require_user_id();
BEGIN
    IF patch ? 'is_active' AND jsonb_typeof(patch -> 'is_active') <> 'boolean' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'is_active must be true or false';
    END IF;
    UPDATE callmaster.crew_relationships AS r
    SET notes = CASE WHEN patch ? 'notes' THEN patch ->> 'notes' ELSE r.notes END,
        is_active = CASE WHEN patch ? 'is_active' THEN (patch ->> 'is_active')::boolean ELSE r.is_active END
    WHERE r.manager_user_id = v_me
      AND r.crew_user_id = update_crew_member.crew_user_id;
    IF NOT FOUND THEN
        UPDATE callmaster.crew_invitations AS i
        SET notes = CASE WHEN patch ? 'notes' THEN patch ->> 'notes' ELSE i.notes END,
            is_active = CASE WHEN patch ? 'is_active' THEN (patch ->> 'is_active')::boolean ELSE i.is_active END
        WHERE i.manager_user_id = v_me
          AND i.id = update_crew_member.crew_user_id
          AND i.removed_at IS NULL;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002',
            MESSAGE = format('user %s is not in your crew', update_crew_member.crew_user_id);
    END IF;
    RETURN callmaster.get_crew_member(update_crew_member.crew_user_id);
END
$$;
COMMENT ON FUNCTION callmaster.update_crew_member(uuid, jsonb) IS
    'API: changes the requesting user''s crew relationship with a user (or their pending invitation). '
    'Arguments: crew_user_id, patch {notes?, is_active?}. Returns the crew member (get_crew_member). '
    'Errors: P0002 not in the crew; 22023 is_active not boolean; 42501 no request user.';

CREATE OR REPLACE FUNCTION callmaster.remove_crew_member(crew_user_id uuid)
    RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me uuid := callmaster.require_user_id();
BEGIN
    DELETE FROM callmaster.crew_relationships AS r
    WHERE r.manager_user_id = v_me
      AND r.crew_user_id = remove_crew_member.crew_user_id;
    IF NOT FOUND THEN
        -- Withdrawn, not deleted: like a guest user, the pending member keeps its assignments.
        UPDATE callmaster.crew_invitations AS i
        SET removed_at = now()
        WHERE i.manager_user_id = v_me
          AND i.id = remove_crew_member.crew_user_id
          AND i.removed_at IS NULL;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002',
            MESSAGE = format('user %s is not in your crew', remove_crew_member.crew_user_id);
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.remove_crew_member(uuid) IS
    'API: ends the requesting user''s crew relationship with a user (the user remains), or withdraws a '
    'pending invitation (it remains, withdrawn, with its assignments, as a removed guest does: the invitee '
    'no longer sees it). Arguments: crew_user_id. Errors: P0002 not in the crew; 42501 no request user.';

-- The invitee's side: SECURITY DEFINER (keel_api may not read which user an invitation is for), each
-- acting only on the requesting user's own invitations.

CREATE OR REPLACE FUNCTION callmaster.list_crew_invitations(lim integer, skip integer)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    WITH mine AS (
        SELECT i.id, i.created_at, m.id AS manager_id, m.email, m.first_name, m.last_name, m.image_url
        FROM callmaster.crew_invitations AS i
        JOIN callmaster.users AS m ON m.id = i.manager_user_id
        WHERE i.invitee_user_id = callmaster.require_user_id()
          AND i.declined_at IS NULL
          AND i.removed_at IS NULL
          AND m.is_active
    ),
    page AS (
        SELECT * FROM mine ORDER BY created_at, id LIMIT lim OFFSET skip
    )
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                      'id', p.id,
                                      'created_at', p.created_at,
                                      'manager', jsonb_build_object('user_id', p.manager_id, 'email', p.email,
                                                                    'first_name', p.first_name,
                                                                    'last_name', p.last_name,
                                                                    'image_url', p.image_url))
                                  ORDER BY p.created_at, p.id)
                           FROM page AS p), '[]'),
        'total', (SELECT count(*) FROM mine),
        'limit', lim,
        'offset', skip)
$$;
COMMENT ON FUNCTION callmaster.list_crew_invitations(integer, integer) IS
    'API: the pending invitations into other users'' crews addressed to the requesting user, oldest first, '
    'each with the inviting manager (user_id, email, names, image_url); never the manager''s notes. '
    'Arguments: lim, skip (page). Returns {items, total, limit, offset}. Errors: 42501 no request user.';

CREATE OR REPLACE FUNCTION callmaster.accept_crew_invitation(invitation_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_me         uuid := callmaster.require_user_id();
    v_invitation callmaster.crew_invitations;
    v_table      text;
    v_column     text;
BEGIN
    -- Locked before anything moves: an assignment being added to the pending member holds a key-share lock
    -- on the invitation (its foreign key, or check_member_refs) until it commits, so it is either committed
    -- before the moves below read (each statement sees it) or waits and then finds no pending member.
    -- An invitation of a deactivated manager (Clerk user.deleted) is not listed and grants nothing.
    SELECT * INTO v_invitation
    FROM callmaster.crew_invitations AS i
    WHERE i.id = accept_crew_invitation.invitation_id
      AND i.invitee_user_id = v_me
      AND i.declined_at IS NULL
      AND i.removed_at IS NULL
      AND EXISTS (SELECT FROM callmaster.users AS m WHERE m.id = i.manager_user_id AND m.is_active)
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002',
            MESSAGE = format('invitation %s not found', accept_crew_invitation.invitation_id);
    END IF;
    -- The pending member's assignments become the user's; one the user already has (the manager could see
    -- and assign them otherwise) is kept once.
    DELETE FROM callmaster.crew_assignments AS a
    WHERE a.owner_id = v_invitation.manager_user_id
      AND a.invitation_id = v_invitation.id
      AND EXISTS (SELECT
                  FROM callmaster.crew_assignments AS k
                  WHERE k.show_id = a.show_id AND k.owner_id = a.owner_id AND k.user_id = v_me
                    AND k.department_id IS NOT DISTINCT FROM a.department_id);
    UPDATE callmaster.crew_assignments AS a
    SET user_id = v_me, invitation_id = NULL
    WHERE a.owner_id = v_invitation.manager_user_id
      AND a.invitation_id = v_invitation.id;
    -- Element crew and performers alike (keyed by element and member).
    FOR v_table, v_column IN VALUES ('script_element_crew_assignments', 'crew_user_id'),
                                    ('script_element_performer_assignments', 'performer_id') LOOP
        EXECUTE format('UPDATE callmaster.%1$I AS a SET %2$I = $2, invitation_id = NULL'
                       ' WHERE a.invitation_id = $1 AND NOT EXISTS (SELECT FROM callmaster.%1$I AS k'
                       ' WHERE k.element_id = a.element_id AND k.%2$I = $2)', v_table, v_column)
            USING v_invitation.id, v_me;
        EXECUTE format('DELETE FROM callmaster.%I AS a WHERE a.invitation_id = $1', v_table)
            USING v_invitation.id;
    END LOOP;

    INSERT INTO callmaster.crew_relationships (id, manager_user_id, crew_user_id, notes, is_active)
    VALUES (v_invitation.relationship_id, v_invitation.manager_user_id, v_me, v_invitation.notes,
            v_invitation.is_active)
    ON CONFLICT (manager_user_id, crew_user_id) DO NOTHING;
    DELETE FROM callmaster.crew_invitations AS i
    WHERE i.manager_user_id = v_invitation.manager_user_id AND i.id = v_invitation.id;
    RETURN jsonb_build_object(
        'relationship_id', (SELECT cr.id
                            FROM callmaster.crew_relationships AS cr
                            WHERE cr.manager_user_id = v_invitation.manager_user_id
                              AND cr.crew_user_id = v_me),
        'manager_user_id', v_invitation.manager_user_id);
END
$$;
COMMENT ON FUNCTION callmaster.accept_crew_invitation(uuid) IS
    'API: the requesting user accepts an invitation addressed to them: they join the manager''s crew (the '
    'relationship takes the id, notes and is_active the manager saw), every assignment the manager gave the '
    'pending member (show crew, element crew and performers) becomes theirs, and the invitation is gone, '
    'in one transaction. Arguments: invitation_id. Returns {relationship_id, manager_user_id}. Errors: '
    'P0002 no such pending invitation of theirs (declined or withdrawn ones included, and those of a '
    'deactivated manager, which list_crew_invitations does not list either); 42501 no request user.';

CREATE OR REPLACE FUNCTION callmaster.decline_crew_invitation(invitation_id uuid)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
BEGIN
    UPDATE callmaster.crew_invitations AS i
    SET declined_at = now()
    WHERE i.id = decline_crew_invitation.invitation_id
      AND i.invitee_user_id = callmaster.require_user_id()
      AND i.declined_at IS NULL
      AND i.removed_at IS NULL
      AND EXISTS (SELECT FROM callmaster.users AS m WHERE m.id = i.manager_user_id AND m.is_active);
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002',
            MESSAGE = format('invitation %s not found', decline_crew_invitation.invitation_id);
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.decline_crew_invitation(uuid) IS
    'API: the requesting user declines an invitation addressed to them. The manager''s side does not '
    'change (a declined invitation stays a pending member, as a guest who never signs up does, so it '
    'tells the manager nothing). Arguments: invitation_id. Errors: P0002 no such pending invitation of '
    'theirs (as for accept_crew_invitation); 42501 no request user.';

REVOKE EXECUTE ON FUNCTION callmaster.list_crew_invitations(integer, integer),
    callmaster.accept_crew_invitation(uuid), callmaster.decline_crew_invitation(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callmaster.list_crew_invitations(integer, integer),
    callmaster.accept_crew_invitation(uuid), callmaster.decline_crew_invitation(uuid) TO keel_api;
