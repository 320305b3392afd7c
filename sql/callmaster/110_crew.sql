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
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'crew member not found';
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.get_crew_member(uuid) IS
    'API: one member of the requesting user''s crew (crew_member_json), e.g. to replay an Idempotency-Key '
    'answer of add_guest. Arguments: user_id. Errors: P0002 not in the crew; 42501 no request user.';
-- The API replays add_guest answers with it.
REVOKE EXECUTE ON FUNCTION callmaster.get_crew_member(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callmaster.get_crew_member(uuid) TO keel_api;

CREATE OR REPLACE FUNCTION callmaster.add_guest(data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me uuid := callmaster.require_user_id();
    v_id uuid;
BEGIN
    v_id := callmaster.create_guest_user(v_me, data ->> 'email', data ->> 'first_name', data ->> 'last_name',
                                         data ->> 'phone', data ->> 'notes');
    RETURN callmaster.get_crew_member(v_id);
END
$$;
COMMENT ON FUNCTION callmaster.add_guest(jsonb) IS
    'API: creates a guest in the requesting user''s crew (see create_guest_user). Arguments: data '
    '{email, first_name, last_name, phone?, notes?}. Returns the crew member (crew_member_json). Errors: as '
    'create_guest_user; 42501 no request user.';

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
        SELECT u, NULL::callmaster.crew_relationships AS cr, 0 AS rank
        FROM callmaster.users AS u
        WHERE u.id = v_me
        UNION ALL
        SELECT u, cr, 1
        FROM callmaster.crew_relationships AS cr
        JOIN callmaster.users AS u ON u.id = cr.crew_user_id
        WHERE cr.manager_user_id = v_me
    ),
    page AS (
        SELECT m.u, m.cr, m.rank
        FROM members AS m
        ORDER BY m.rank, lower((m.u).last_name), lower((m.u).first_name), lower((m.u).email), (m.u).id
        LIMIT lim OFFSET skip
    )
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(callmaster.crew_member_json(p.u, p.cr)
                                            ORDER BY p.rank, lower((p.u).last_name), lower((p.u).first_name),
                                                     lower((p.u).email), (p.u).id)
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
    '(notes, active), ordered by name. Arguments: lim, skip (page). Returns {items, total, limit, offset}. '
    'Errors: 42501 no request user.';

CREATE OR REPLACE FUNCTION callmaster.update_crew_member(crew_user_id uuid, patch jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me uuid := callmaster.require_user_id();
    v_cr callmaster.crew_relationships;
BEGIN
    IF patch ? 'is_active' AND jsonb_typeof(patch -> 'is_active') <> 'boolean' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'is_active must be true or false';
    END IF;
    UPDATE callmaster.crew_relationships AS r
    SET notes = CASE WHEN patch ? 'notes' THEN patch ->> 'notes' ELSE r.notes END,
        is_active = CASE WHEN patch ? 'is_active' THEN (patch ->> 'is_active')::boolean ELSE r.is_active END
    WHERE r.manager_user_id = v_me
      AND r.crew_user_id = update_crew_member.crew_user_id
    RETURNING * INTO v_cr;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002',
            MESSAGE = format('user %s is not in your crew', update_crew_member.crew_user_id);
    END IF;
    RETURN (SELECT callmaster.crew_member_json(u, v_cr)
            FROM callmaster.users AS u
            WHERE u.id = v_cr.crew_user_id);
END
$$;
COMMENT ON FUNCTION callmaster.update_crew_member(uuid, jsonb) IS
    'API: changes the requesting user''s crew relationship with a user. Arguments: crew_user_id, patch '
    '{notes?, is_active?}. Returns the crew member (crew_member_json). Errors: P0002 not in the crew; '
    '22023 is_active not boolean; 42501 no request user.';

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
        RAISE EXCEPTION USING
            ERRCODE = 'P0002',
            MESSAGE = format('user %s is not in your crew', remove_crew_member.crew_user_id);
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.remove_crew_member(uuid) IS
    'API: ends the requesting user''s crew relationship with a user (the user remains). Arguments: '
    'crew_user_id. Errors: P0002 not in the crew; 42501 no request user.';
