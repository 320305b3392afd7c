-- Who may see what: a staff member sees only their own conversations and messages, in their own clinic.
-- Also the triggers that keep the job rows honest for a DBA's raw INSERT/UPDATE as much as for the API.

CREATE OR REPLACE FUNCTION assistant.current_staff_id()
    RETURNS uuid
    LANGUAGE sql
    STABLE
    PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN s ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN s::uuid
    END
    FROM keel.current_user_sub() AS s
$$;
COMMENT ON FUNCTION assistant.current_staff_id() IS
    'The sub claim of the current request as a staff id (uuid); NULL when absent or not a uuid. Raises nothing.';

DROP POLICY IF EXISTS conversations_own ON assistant.conversations;
CREATE POLICY conversations_own ON assistant.conversations
    USING (clinic_id = (SELECT keel.current_clinic_id()) AND staff_id = (SELECT assistant.current_staff_id()))
    WITH CHECK (clinic_id = (SELECT keel.current_clinic_id()) AND staff_id = (SELECT assistant.current_staff_id()));

DROP POLICY IF EXISTS messages_own ON assistant.messages;
CREATE POLICY messages_own ON assistant.messages
    USING (clinic_id = (SELECT keel.current_clinic_id()) AND staff_id = (SELECT assistant.current_staff_id()))
    WITH CHECK (clinic_id = (SELECT keel.current_clinic_id()) AND staff_id = (SELECT assistant.current_staff_id()));

CREATE OR REPLACE FUNCTION assistant.messages_notify()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    -- Payloads carry ids only; readers fetch the text through their own RLS-scoped call.
    IF NEW.role = 'assistant' THEN
        -- Workers: a reply became claimable now (queued, or handed back). A retry queued for later is
        -- found by its own worker's timer or the others' polling.
        IF NEW.status = 'queued' AND NEW.available_at <= now()
           AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'queued') THEN
            PERFORM pg_notify('assistant_jobs', NEW.id::text);
        END IF;
        -- Readers: text was appended or cleared, or the reply became final. (A claim that changes
        -- nothing a reader sees stays quiet: every NOTIFY serialises its transaction's commit.)
        IF TG_OP = 'UPDATE' AND (OLD.content IS DISTINCT FROM NEW.content
                                 OR (NEW.status IN ('done', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)) THEN
            PERFORM pg_notify('assistant_messages', NEW.id::text);
        END IF;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION assistant.messages_notify() IS
    'Trigger function (AFTER INSERT OR UPDATE on assistant.messages): NOTIFY assistant_jobs with the id when an '
    'assistant reply becomes claimable now (wakes workers), and assistant_messages with the id when a reply''s '
    'text changes or it becomes done or failed (wakes SSE readers). Payloads are ids only. Raises nothing.';

CREATE OR REPLACE TRIGGER messages_notify
    AFTER INSERT OR UPDATE ON assistant.messages
    FOR EACH ROW EXECUTE FUNCTION assistant.messages_notify();

CREATE OR REPLACE FUNCTION assistant.touch_updated_at()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT keel.keeps_updated_at() THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION assistant.touch_updated_at() IS
    'Trigger function: sets updated_at to now() on every UPDATE of the row, except during a maintenance '
    'write (keel.keeps_updated_at()). No arguments; raises nothing.';

CREATE OR REPLACE TRIGGER messages_touch_updated_at
    BEFORE UPDATE ON assistant.messages
    FOR EACH ROW EXECUTE FUNCTION assistant.touch_updated_at();
