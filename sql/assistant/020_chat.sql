-- The API's side of the assistant: post a chat message (enqueue its reply), read messages and conversations.
-- All SECURITY INVOKER: they run under the caller's claims, so row-level security scopes every row to the
-- calling staff member in their clinic.

CREATE OR REPLACE FUNCTION assistant.message_json(m assistant.messages)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    SELECT jsonb_build_object(
        'id', m.id,
        'conversation_id', m.conversation_id,
        'role', m.role,
        'content', m.content,
        'status', m.status,
        'attempts', m.attempts,
        'error', m.error,
        'model', m.model,
        'tool_calls', m.tool_calls,
        'created_at', m.created_at,
        'started_at', m.started_at,
        'completed_at', m.completed_at,
        'lease_until', m.lease_until
    )
$$;
COMMENT ON FUNCTION assistant.message_json(assistant.messages) IS
    'The API''s JSON shape of one message row (status, content so far, error, timings). Raises nothing.';

CREATE OR REPLACE FUNCTION assistant.post_chat(message text, conversation_id uuid DEFAULT NULL, model text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_clinic uuid := keel.current_clinic_id();
    v_staff uuid := assistant.current_staff_id();
    v_conversation uuid := post_chat.conversation_id;
    v_text text := btrim(post_chat.message);
    v_user_id uuid;
    v_reply_id uuid;
BEGIN
    IF v_clinic IS NULL OR v_staff IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'the internal assistant answers clinic staff only',
            HINT = 'The token needs a clinic_id claim and a sub claim holding the staff member''s id.';
    END IF;
    IF v_text IS NULL OR v_text = '' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'message must not be empty';
    END IF;
    IF char_length(v_text) > 20000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'message is longer than 20000 characters';
    END IF;

    IF v_conversation IS NULL THEN
        BEGIN
            INSERT INTO assistant.conversations (clinic_id, staff_id, title)
            VALUES (v_clinic, v_staff, left(regexp_replace(v_text, '\s+', ' ', 'g'), 80))
            RETURNING id INTO v_conversation;
        EXCEPTION WHEN foreign_key_violation THEN
            RAISE EXCEPTION USING
                ERRCODE = '42501',
                MESSAGE = 'the caller is not a staff member of this clinic',
                HINT = 'The token''s sub claim must be the id of a staff member of its clinic_id.';
        END;
    ELSIF NOT EXISTS (SELECT FROM assistant.conversations AS c WHERE c.id = v_conversation) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002',
            MESSAGE = 'conversation not found',
            DETAIL = format('No conversation %s of yours exists.', v_conversation);
    END IF;

    INSERT INTO assistant.messages (clinic_id, staff_id, conversation_id, role, content, status, completed_at)
    VALUES (v_clinic, v_staff, v_conversation, 'user', v_text, 'done', now())
    RETURNING id INTO v_user_id;

    -- The reply is the job; the messages_notify trigger wakes the workers when this commits.
    INSERT INTO assistant.messages (clinic_id, staff_id, conversation_id, role, status, model, caller_role)
    VALUES (v_clinic, v_staff, v_conversation, 'assistant', 'queued', post_chat.model, keel.current_role_claim())
    RETURNING id INTO v_reply_id;

    RETURN jsonb_build_object(
        'message_id', v_reply_id,
        'conversation_id', v_conversation,
        'user_message_id', v_user_id,
        'status', 'queued'
    );
END
$$;
COMMENT ON FUNCTION assistant.post_chat(text, uuid, text) IS
    'Records a staff member''s chat message and queues the assistant''s reply, in one transaction: creates the '
    'conversation when conversation_id is NULL (titled from the message), inserts the user message and the '
    'queued assistant message (model: the LLM model to use), and NOTIFYs assistant_jobs with the reply''s id. '
    'Acts for the request''s claims (clinic_id, sub = staff id, role). Returns {message_id, conversation_id, '
    'user_message_id, status}. Errors: 42501 without clinic/staff claims or when sub is not staff of the clinic; '
    '22023 empty or over-long message; P0002 conversation not found (or another staff member''s).';

CREATE OR REPLACE FUNCTION assistant.get_message(id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT assistant.message_json(m) INTO result FROM assistant.messages AS m WHERE m.id = get_message.id;
    IF result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'message not found';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION assistant.get_message(uuid) IS
    'One message of the calling staff member: status, content so far, attempts, error, model, tool calls, '
    'timings. Arguments: id. Errors: P0002 when it does not exist or belongs to someone else.';

CREATE OR REPLACE FUNCTION assistant.get_conversation(id uuid, lim integer DEFAULT 50, off integer DEFAULT 0)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    conv assistant.conversations;
    result jsonb;
BEGIN
    IF lim IS NULL OR lim < 1 OR off IS NULL OR off < 0 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'limit must be positive and offset not negative';
    END IF;
    SELECT c.* INTO conv FROM assistant.conversations AS c WHERE c.id = get_conversation.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'conversation not found';
    END IF;
    SELECT jsonb_build_object(
        'id', conv.id,
        'title', conv.title,
        'staff_id', conv.staff_id,
        'created_at', conv.created_at,
        'items', coalesce((
            SELECT jsonb_agg(assistant.message_json(page) ORDER BY page.seq)
            FROM (
                SELECT m.* FROM assistant.messages AS m
                WHERE m.clinic_id = conv.clinic_id AND m.staff_id = conv.staff_id AND m.conversation_id = conv.id
                ORDER BY m.seq
                LIMIT lim OFFSET off
            ) AS page
        ), '[]'::jsonb),
        'total', (
            SELECT count(*) FROM assistant.messages AS m
            WHERE m.clinic_id = conv.clinic_id AND m.staff_id = conv.staff_id AND m.conversation_id = conv.id
        ),
        'limit', lim,
        'offset', off
    ) INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION assistant.get_conversation(uuid, integer, integer) IS
    'One conversation of the calling staff member with a page of its messages in order: '
    '{id, title, staff_id, created_at, items, total, limit, offset}. Arguments: id, lim (page size), off '
    '(messages to skip). Errors: P0002 when it does not exist or belongs to someone else; 22023 bad paging.';

CREATE OR REPLACE FUNCTION assistant.reply_progress(id uuid, after_attempt integer DEFAULT 0, after_offset integer DEFAULT 0)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    m assistant.messages;
    len integer;
    reset boolean;
BEGIN
    SELECT msg.* INTO m FROM assistant.messages AS msg WHERE msg.id = reply_progress.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'message not found';
    END IF;
    len := char_length(m.content);
    after_offset := greatest(coalesce(after_offset, 0), 0);
    -- The reader saw text of an earlier attempt, or of one since reset for a retry: start it over.
    reset := after_offset > 0 AND (coalesce(after_attempt, 0) <> m.attempts OR after_offset > len);
    IF reset THEN
        after_offset := 0;
    END IF;
    RETURN jsonb_build_object(
        'id', m.id,
        'status', m.status,
        'attempt', m.attempts,
        'reset', reset,
        'offset', after_offset,
        'length', len,
        'text', substr(m.content, after_offset + 1),
        'error', m.error
    );
END
$$;
COMMENT ON FUNCTION assistant.reply_progress(uuid, integer, integer) IS
    'What a Server-Sent-Events reader of a message has not seen yet. Arguments: id; after_attempt and '
    'after_offset, the attempt and character offset of the last text the reader received (0, 0 for none). '
    'Returns {id, status, attempt, reset, offset, length, text, error}: text is content from offset on; '
    'reset is true when the reader''s text belongs to an abandoned attempt and must be discarded (text then '
    'starts at 0). Errors: P0002 when it does not exist or belongs to someone else.';

CREATE OR REPLACE FUNCTION assistant.list_conversations(lim integer DEFAULT 50, off integer DEFAULT 0)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_clinic uuid := keel.current_clinic_id();
    v_staff uuid := assistant.current_staff_id();
BEGIN
    IF lim IS NULL OR lim < 1 OR off IS NULL OR off < 0 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'limit must be positive and offset not negative';
    END IF;
    RETURN jsonb_build_object(
        'items', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'id', c.id, 'title', c.title, 'created_at', c.created_at,
                       'messages', s.messages, 'last_message_at', s.last_message_at
                   ) ORDER BY c.created_at DESC, c.id)
            FROM (
                SELECT cv.* FROM assistant.conversations AS cv
                WHERE cv.clinic_id = v_clinic AND cv.staff_id = v_staff
                ORDER BY cv.created_at DESC, cv.id
                LIMIT lim OFFSET off
            ) AS c
            CROSS JOIN LATERAL (
                SELECT count(*) AS messages, max(m.created_at) AS last_message_at
                FROM assistant.messages AS m
                WHERE m.clinic_id = c.clinic_id AND m.staff_id = c.staff_id AND m.conversation_id = c.id
            ) AS s
        ), '[]'::jsonb),
        'total', (SELECT count(*) FROM assistant.conversations AS cv
                  WHERE cv.clinic_id = v_clinic AND cv.staff_id = v_staff),
        'limit', lim,
        'offset', off
    );
END
$$;
COMMENT ON FUNCTION assistant.list_conversations(integer, integer) IS
    'The calling staff member''s conversations, newest first: {items: [{id, title, created_at, messages, '
    'last_message_at}], total, limit, offset}. Arguments: lim (page size), off (rows to skip). '
    'Errors: 22023 bad paging.';
