-- CallMaster identity: who the request is, the user's own profile and preferences, and the Clerk
-- webhook that keeps callmaster.users in step with Clerk.

CREATE OR REPLACE FUNCTION callmaster.request_user_id()
    RETURNS uuid
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_sub    text := keel.current_user_sub();
    v_id     uuid;
    v_active boolean;
BEGIN
    IF keel.current_claims() IS NULL THEN
        RETURN NULL;  -- a DBA in psql: no request, RLS bypassed by the owner role
    END IF;
    SELECT u.id, u.is_active INTO v_id, v_active FROM callmaster.users AS u WHERE u.clerk_user_id = v_sub;
    IF v_id IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('Clerk user %s is not known to CallMaster (yet).', coalesce(v_sub, '(no sub)')),
            HINT = 'The user is created by the Clerk webhook on sign-up; retry once Clerk has delivered it.';
    END IF;
    IF NOT v_active THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('The CallMaster user of Clerk user %s is deactivated.', v_sub),
            HINT = 'The account was deleted in Clerk.';
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION callmaster.request_user_id() IS
    'The callmaster.users id of the current API request; NULL when called outside a request (no '
    'request.jwt.claims, e.g. a DBA in psql). Errors: 42501 when the token''s sub (Clerk user id) has no '
    'CallMaster user yet, or that user is deactivated.';

CREATE OR REPLACE FUNCTION callmaster.require_user_id()
    RETURNS uuid
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_id uuid := callmaster.request_user_id();
BEGIN
    IF v_id IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'This call acts as the requesting CallMaster user, and there is none.',
            HINT = 'Call it through the API, or set request.jwt.claims to {"sub": "<clerk user id>"} first.';
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION callmaster.require_user_id() IS
    'The callmaster.users id of the current API request. Errors: 42501 when there is no request user '
    '(no claims, unknown Clerk user, or deactivated user).';

CREATE OR REPLACE FUNCTION callmaster.user_json(u callmaster.users)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    SELECT jsonb_build_object(
        'id', u.id,
        'clerk_user_id', u.clerk_user_id,
        'email', u.email,
        'first_name', u.first_name,
        'last_name', u.last_name,
        'phone', u.phone,
        'image_url', u.image_url,
        'status', u.status,
        'role', u.role,
        'created_by', u.created_by,
        'notes', u.notes,
        'preferences', u.preferences,
        'is_active', u.is_active,
        'created_at', u.created_at,
        'updated_at', u.updated_at)
$$;
COMMENT ON FUNCTION callmaster.user_json(callmaster.users) IS
    'The API representation of a user row (jsonb). Arguments: the row. No errors.';

CREATE OR REPLACE FUNCTION callmaster.me()
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_me uuid := callmaster.require_user_id();
BEGIN
    RETURN (SELECT callmaster.user_json(u) FROM callmaster.users AS u WHERE u.id = v_me);
END
$$;
COMMENT ON FUNCTION callmaster.me() IS
    'The requesting user''s own profile (jsonb, see user_json). Errors: 42501 when the token''s Clerk '
    'user is unknown or deactivated.';

CREATE OR REPLACE FUNCTION callmaster.jsonb_merge_patch(target jsonb, patch jsonb)
    RETURNS jsonb
    LANGUAGE sql
    IMMUTABLE
    PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(patch) IS DISTINCT FROM 'object' THEN patch
        ELSE (
            SELECT coalesce(jsonb_object_agg(k, v), '{}')
            FROM (
                SELECT t.key AS k, t.value AS v
                FROM jsonb_each(CASE WHEN jsonb_typeof(target) = 'object' THEN target ELSE '{}' END) AS t
                WHERE NOT patch ? t.key
                UNION ALL
                SELECT p.key, callmaster.jsonb_merge_patch(
                           CASE WHEN jsonb_typeof(target) = 'object' THEN target -> p.key END, p.value)
                FROM jsonb_each(patch) AS p
                WHERE jsonb_typeof(p.value) <> 'null'
            ) AS merged
        )
    END
$$;
COMMENT ON FUNCTION callmaster.jsonb_merge_patch(jsonb, jsonb) IS
    'RFC 7396 JSON Merge Patch: target with patch applied (object members merged recursively, a null '
    'member removes the key, any other value replaces). Arguments: target, patch. No errors.';

CREATE OR REPLACE FUNCTION callmaster.update_my_preferences(patch jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me  uuid := callmaster.require_user_id();
    v_row callmaster.users;
BEGIN
    IF jsonb_typeof(update_my_preferences.patch) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'preferences must be a JSON object';
    END IF;
    UPDATE callmaster.users AS u
    SET preferences = callmaster.jsonb_merge_patch(u.preferences, update_my_preferences.patch)
    WHERE u.id = v_me
    RETURNING * INTO v_row;
    RETURN v_row.preferences;
END
$$;
COMMENT ON FUNCTION callmaster.update_my_preferences(jsonb) IS
    'Applies a JSON merge patch (RFC 7396: null removes a key) to the requesting user''s preferences and '
    'returns the resulting preferences object. Arguments: patch (jsonb object; keys are validated by the '
    'API). Errors: 22023 when patch is not an object; 42501 when there is no request user.';

-- Clerk webhook ---------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION callmaster.clerk_primary_value(
    data jsonb, list_key text, primary_key text, value_key text)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
AS $$
    SELECT nullif(btrim(item ->> value_key), '')
    FROM jsonb_array_elements(
             CASE WHEN jsonb_typeof(data -> list_key) = 'array' THEN data -> list_key ELSE '[]' END)
         WITH ORDINALITY AS a(item, n)
    WHERE jsonb_typeof(item) = 'object'
    ORDER BY (item ->> 'id') IS NOT DISTINCT FROM (data ->> primary_key) DESC, n
    LIMIT 1
$$;
COMMENT ON FUNCTION callmaster.clerk_primary_value(jsonb, text, text, text) IS
    'From a Clerk user object, the primary entry of a list (e.g. email_addresses / '
    'primary_email_address_id / email_address), else the first one; NULL when the list is empty. No errors.';

CREATE OR REPLACE FUNCTION callmaster.apply_clerk_event(event_id text, event_type text, data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_clerk_id text := nullif(btrim(data ->> 'id'), '');
    v_email    text;
    v_email_verified boolean;
    v_first    text := nullif(btrim(data ->> 'first_name'), '');
    v_last     text := nullif(btrim(data ->> 'last_name'), '');
    v_phone    text;
    v_image    text := nullif(btrim(coalesce(data ->> 'image_url', data ->> 'profile_image_url')), '');
    v_updated  timestamptz;
    v_user     callmaster.users;
    v_outcome  text;
BEGIN
    -- Only the verified webhook (no request claims) may write users for any Clerk id: a request
    -- session, whatever its token says, is refused (issue 13, finding 6).
    IF keel.current_claims() IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'callmaster.apply_clerk_event cannot be called within an API request';
    END IF;
    IF nullif(btrim(event_id), '') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'event_id is required';
    END IF;
    INSERT INTO keel.webhook_events (source, event_id, event_type)
    VALUES ('clerk', apply_clerk_event.event_id, coalesce(apply_clerk_event.event_type, ''))
    ON CONFLICT ON CONSTRAINT webhook_events_pkey DO NOTHING;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'duplicate');
    END IF;

    IF coalesce(event_type, '') NOT IN ('user.created', 'user.updated', 'user.deleted') THEN
        RETURN jsonb_build_object('outcome', 'ignored');
    END IF;
    IF jsonb_typeof(data) IS DISTINCT FROM 'object' OR v_clerk_id IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s event without a user id in data.id', event_type);
    END IF;

    IF event_type = 'user.deleted' THEN
        UPDATE callmaster.users AS u
        SET is_active = false,
            deactivated_at = coalesce(u.deactivated_at, now())
        WHERE u.clerk_user_id = v_clerk_id
        RETURNING * INTO v_user;
        RETURN jsonb_build_object('outcome', CASE WHEN FOUND THEN 'deactivated' ELSE 'ignored' END,
                                  'user_id', v_user.id);
    END IF;

    v_email := callmaster.clerk_primary_value(data, 'email_addresses', 'primary_email_address_id',
                                              'email_address');
    v_phone := callmaster.clerk_primary_value(data, 'phone_numbers', 'primary_phone_number_id',
                                              'phone_number');
    -- Whether Clerk has verified that address as the user's primary one: only then may it claim an
    -- existing record (issue 13, finding 4: any listed address, verified or not, used to claim it).
    v_email_verified := EXISTS (
        SELECT
        FROM jsonb_array_elements(
                 CASE WHEN jsonb_typeof(data -> 'email_addresses') = 'array'
                      THEN data -> 'email_addresses' ELSE '[]' END) AS a(item)
        WHERE jsonb_typeof(item) = 'object'
          AND item ->> 'id' = data ->> 'primary_email_address_id'
          AND lower(btrim(item ->> 'email_address')) = lower(v_email)
          AND item #>> '{verification,status}' = 'verified');
    IF data ->> 'updated_at' ~ '^[0-9]{1,15}$' THEN
        v_updated := to_timestamp((data ->> 'updated_at')::bigint / 1000.0);
    END IF;

    SELECT * INTO v_user FROM callmaster.users AS u WHERE u.clerk_user_id = v_clerk_id FOR UPDATE;
    IF FOUND THEN
        IF v_updated IS NOT NULL
           AND v_user.clerk_updated_at IS NOT NULL
           AND v_updated < v_user.clerk_updated_at THEN
            RETURN jsonb_build_object('outcome', 'stale', 'user_id', v_user.id);
        END IF;
        UPDATE callmaster.users AS u
        SET email = coalesce(v_email, u.email),
            first_name = v_first,
            last_name = v_last,
            phone = v_phone,
            image_url = v_image,
            status = 'verified',
            is_active = CASE WHEN event_type = 'user.created' THEN true ELSE u.is_active END,
            deactivated_at = CASE WHEN event_type = 'user.created' THEN NULL ELSE u.deactivated_at END,
            clerk_updated_at = coalesce(v_updated, u.clerk_updated_at)
        WHERE u.id = v_user.id;
        RETURN jsonb_build_object('outcome', 'updated', 'user_id', v_user.id);
    END IF;

    IF v_email IS NULL THEN
        -- CallMaster users need an email; a later user.updated that adds one creates the user.
        RETURN jsonb_build_object('outcome', 'skipped', 'reason', 'the Clerk user has no email address');
    END IF;

    -- Sign-up with the email of an existing guest (or of a user whose Clerk account was deleted):
    -- that record becomes this Clerk user's, keeping its crews and assignments.
    SELECT * INTO v_user FROM callmaster.users AS u WHERE lower(u.email) = lower(v_email) FOR UPDATE;
    IF FOUND THEN
        IF NOT v_email_verified THEN
            -- Not proof that the signer owns the address: claim nothing, create nothing (the address is
            -- taken), say nothing about the record. Clerk's user.updated once the address is verified
            -- as primary claims it then.
            RETURN jsonb_build_object('outcome', 'unverified',
                                      'reason', 'the primary email address is not verified');
        END IF;
        IF v_user.clerk_user_id IS NOT NULL AND v_user.is_active THEN
            RAISE EXCEPTION USING
                ERRCODE = '23505',
                MESSAGE = format('email %s already belongs to Clerk user %s', v_email, v_user.clerk_user_id),
                HINT = 'Deliver that user''s user.deleted or user.updated event first.';
        END IF;
        v_outcome := CASE WHEN v_user.clerk_user_id IS NULL THEN 'claimed' ELSE 'relinked' END;
        UPDATE callmaster.users AS u
        SET clerk_user_id = v_clerk_id,
            status = 'verified',
            first_name = coalesce(v_first, u.first_name),
            last_name = coalesce(v_last, u.last_name),
            phone = coalesce(v_phone, u.phone),
            image_url = v_image,
            is_active = true,
            deactivated_at = NULL,
            clerk_updated_at = v_updated
        WHERE u.id = v_user.id;
        RETURN jsonb_build_object('outcome', v_outcome, 'user_id', v_user.id);
    END IF;

    INSERT INTO callmaster.users (clerk_user_id, email, first_name, last_name, phone, image_url, status,
                                  clerk_updated_at)
    VALUES (v_clerk_id, v_email, v_first, v_last, v_phone, v_image, 'verified', v_updated)
    RETURNING * INTO v_user;
    RETURN jsonb_build_object('outcome', 'created', 'user_id', v_user.id);
END
$$;
COMMENT ON FUNCTION callmaster.apply_clerk_event(text, text, jsonb) IS
    'Applies one verified Clerk webhook event, once per event_id (the svix-id, recorded in '
    'keel.webhook_events; a replay returns outcome "duplicate" and changes nothing). user.created / '
    'user.updated upsert the user by Clerk id (email, names, phone, image); a new Clerk user whose email '
    'matches a guest (or a deactivated user) claims that record, which becomes verified, only when that '
    'email is the primary address and Clerk marks it verified (otherwise the outcome is "unverified" and '
    'nothing changes until an update shows it verified). user.deleted '
    'deactivates the user (history kept). Other types are recorded and ignored. An event older than the '
    'last applied one (data.updated_at) is skipped as "stale"; a new user without an email is "skipped" '
    '(a later update that adds one creates it). Arguments: event_id, event_type, data (the '
    'event''s data object). Returns {outcome, user_id}. Errors: 22023 no event_id or no data.id; 23505 the '
    'email is held by another user (an active Clerk user, or a guest when an update changes the email); '
    '42501 when called within an API request (request claims set).';
REVOKE EXECUTE ON FUNCTION callmaster.apply_clerk_event(text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callmaster.apply_clerk_event(text, text, jsonb) TO keel_api;
