-- The script change feed (issue 16): triggers append every change of a script's elements and their
-- supporting rows — whoever wrote it: the API, bulk update, auto-sort, edit batches or a DBA's raw
-- SQL — to callmaster.live_events in the writing transaction, and ring the relays.
--
-- Order. A writer numbers its events from live_feed_heads.position, which it increments with an
-- UPDATE: the row lock is held to commit, so writers of one script commit in position order and
-- positions have no gaps (see migration 0800). The lock is taken at the end of the writing statement
-- (statement-level AFTER triggers), after the script locks of sql/callmaster/600_shows.sql, and for
-- several scripts in script id order.
--
-- Doorbell. A NOTIFY takes a cluster-wide lock from pre-commit to the end of the commit's WAL flush,
-- so notifying transactions commit one at a time (sql/keel/200_outbox.sql). Relays (api/callmaster/
-- live_relay.py) that are following a busy script poll on their own; only a relay that went to sleep
-- holds the "asleep" lock (shared, one per sleeping relay), and writers NOTIFY only while one does.
-- Every writer holds the "ringing" lock (shared) from its check to its commit, so a relay going to
-- sleep waits for the writers that saw it awake, then looks once more (live_relay_asleep). Show
-- commands NOTIFY always (live_record), so relays read a GO as soon as it commits.
-- Advisory lock keys (api/locks.py): (keel.advisory_lock_key('live_feed'), 1) ringing, (…, 2) asleep.
--
-- Privileges. The internals (live_ring, live_claim_positions, live_append_elements here; live_state,
-- live_record, live_open_run… in the other 700_live_* files) are called only by SECURITY DEFINER entry
-- points — the feed triggers, the show-run commands, live_open*, the share links — so they run as the
-- owner: each is REVOKEd from PUBLIC and keel_api (issue 13), which could otherwise forge events or skip
-- positions of any script it can see.

CREATE OR REPLACE FUNCTION callmaster.live_ring(p_script_ids uuid[])
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(keel.advisory_lock_key('live_feed'), 1);
    IF pg_try_advisory_lock(keel.advisory_lock_key('live_feed'), 2) THEN
        PERFORM pg_advisory_unlock(keel.advisory_lock_key('live_feed'), 2);  -- every relay is awake (or there is none)
    ELSE
        -- A relay sleeps: wake it at commit, once per script (ids only).
        PERFORM pg_notify('callmaster_live', s::text) FROM unnest(p_script_ids) AS s;
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.live_ring(uuid[]) IS
    'Internal (feed triggers and show-run commands): NOTIFY callmaster_live with each script id at commit '
    'when a relay sleeps, and hold the ringing lock to commit (see the header of 700_live_feed.sql). '
    'Arguments: p_script_ids. No errors.';
REVOKE ALL ON FUNCTION callmaster.live_ring(uuid[]) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_claim_positions(p_counts jsonb)
    RETURNS TABLE (script_id uuid, base bigint)
    LANGUAGE plpgsql
    VOLATILE
AS $$
DECLARE
    v_ids uuid[];
BEGIN
    -- Lock the heads in id order (no deadlock between writers of several scripts), skipping scripts
    -- gone (deleted in this statement) and scripts created by this transaction (unfollowable yet).
    SELECT array_agg(h.script_id ORDER BY h.script_id) INTO v_ids
    FROM (SELECT h.script_id
          FROM callmaster.live_feed_heads AS h
          JOIN callmaster.scripts AS s ON s.id = h.script_id
          WHERE h.script_id IN (SELECT k::uuid FROM jsonb_object_keys(p_counts) AS k)
            AND h.created_xid <> pg_current_xact_id()
          ORDER BY h.script_id
          FOR NO KEY UPDATE OF h) AS h;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    UPDATE callmaster.live_feed_heads AS h
    SET position = h.position + (p_counts ->> h.script_id::text)::bigint
    WHERE h.script_id = ANY (v_ids)
    RETURNING h.script_id, h.position - (p_counts ->> h.script_id::text)::bigint;
    PERFORM callmaster.live_ring(v_ids);
END
$$;
COMMENT ON FUNCTION callmaster.live_claim_positions(jsonb) IS
    'Internal (feed triggers, show-run commands): reserves positions in the feed of each script of '
    'p_counts ({script_id: number of events}), locking its head to commit, and rings the relays. Returns '
    '(script_id, base): the events take positions base+1..base+n. Scripts deleted in this statement or '
    'created in this transaction are left out (their changes are not logged). No errors.';
REVOKE ALL ON FUNCTION callmaster.live_claim_positions(jsonb) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_lock_head(p_script_id uuid)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_me uuid := callmaster.acting_user_id();
BEGIN
    -- Before any element row: a writer holding a row while it waits for the head (its statement's end)
    -- deadlocks with a transaction that holds the head and then wants that row.
    IF v_me IS NULL THEN
        PERFORM 1 FROM callmaster.live_feed_heads AS h WHERE h.script_id = p_script_id FOR NO KEY UPDATE;
    ELSE  -- only the user's own script (the tenant key, too: tests/test_scale_citus_lint.py)
        PERFORM 1
        FROM callmaster.live_feed_heads AS h
        JOIN callmaster.scripts AS s ON s.id = h.script_id AND s.owner_id = v_me
        WHERE h.script_id = p_script_id
        FOR NO KEY UPDATE OF h;
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.live_lock_head(uuid) IS
    'Internal (the element functions of sql/callmaster/620_elements.sql, after their script lock): locks '
    'the feed head of a script the acting user owns (any, for a DBA) to commit, before the write locks '
    'any element row (lock order: sql/callmaster/600_shows.sql). Arguments: p_script_id. Errors: 42501 '
    'keel_api without a request user.';
REVOKE ALL ON FUNCTION callmaster.live_lock_head(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callmaster.live_lock_head(uuid) TO keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_append_elements(
    p_event text,
    p_element_ids uuid[],
    p_script_ids uuid[],
    p_fields text[]
)
    RETURNS void
    LANGUAGE sql
    VOLATILE
AS $$
    -- Events of one script (a statement's usual case) keep their arrays as they are; several scripts'
    -- are split by script (unnest and regroup cost more than the trigger's own comparison).
    WITH one_script AS (
        SELECT cardinality(p_element_ids) > 0 AND p_script_ids[1] = ALL (p_script_ids)
               AND array_position(p_element_ids, NULL) IS NULL AS yes
    ),
    per_script AS MATERIALIZED (
        SELECT p_script_ids[1] AS script_id, p_element_ids AS ids, p_fields AS fields
        FROM one_script AS o
        WHERE o.yes
        UNION ALL
        SELECT r.script_id, array_agg(r.element_id ORDER BY r.ord) AS ids,
               CASE WHEN p_fields IS NOT NULL THEN array_agg(r.fields ORDER BY r.ord) END AS fields
        FROM one_script AS o,
             unnest(p_element_ids, p_script_ids, p_fields) WITH ORDINALITY AS r (element_id, script_id, fields, ord)
        WHERE o.yes IS NOT TRUE
          AND r.element_id IS NOT NULL
        GROUP BY r.script_id
    ),
    bases AS (
        SELECT p.script_id, p.base
        FROM (SELECT jsonb_object_agg(s.script_id, cardinality(s.ids)) AS j FROM per_script AS s) AS counts,
             callmaster.live_claim_positions(counts.j) AS p
        WHERE counts.j IS NOT NULL
    )
    INSERT INTO callmaster.live_events (script_id, first_position, position, event, element_ids, fields)
    SELECT s.script_id, b.base + 1, b.base + cardinality(s.ids), p_event, s.ids, s.fields
    FROM per_script AS s
    JOIN bases AS b ON b.script_id = s.script_id
$$;
COMMENT ON FUNCTION callmaster.live_append_elements(text, uuid[], uuid[], text[]) IS
    'Internal (feed triggers): appends one p_event event per element (p_element_ids, of the scripts '
    'p_script_ids, with its changed columns comma-separated in p_fields, or p_fields NULL; same order) to '
    'the feeds, one log row per script, in array order. No errors.';
REVOKE ALL ON FUNCTION callmaster.live_append_elements(text, uuid[], uuid[], text[]) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_written_here(p_xmin xid)
    RETURNS boolean
    LANGUAGE sql
    STABLE
AS $$
    -- A visible row whose xmin is still in progress was written by this transaction or one of its
    -- subtransactions (an edit batch runs each operation in one): another transaction's uncommitted row
    -- is not visible. pg_xact_status needs the xid with its epoch: the 64-bit xid within 2^31 of this
    -- transaction's (every xid a visible row can still carry is).
    SELECT pg_xact_status((t.x + ((p_xmin::text::bigint - (t.x & 4294967295) + 2147483648) % 4294967296
                                  + 4294967296) % 4294967296 - 2147483648)::text::xid8) = 'in progress'
    FROM (SELECT pg_current_xact_id()::text::bigint AS x) AS t
$$;
COMMENT ON FUNCTION callmaster.live_written_here(xid) IS
    'Internal (feed triggers): whether the visible row with this xmin was written by the current '
    'transaction, in any of its subtransactions. No errors.';
REVOKE ALL ON FUNCTION callmaster.live_written_here(xid) FROM PUBLIC, keel_api;

-- A new script gets its feed head in the creating transaction (any writer: API, duplicate, psql).
CREATE OR REPLACE FUNCTION callmaster.live_feed_script_created()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
BEGIN
    INSERT INTO callmaster.live_feed_heads (script_id) SELECT n.id FROM new_rows AS n;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION callmaster.live_feed_script_created() IS
    'Trigger (AFTER INSERT, per statement, on callmaster.scripts): creates the feed head of each new '
    'script. No errors.';

CREATE OR REPLACE TRIGGER scripts_live_feed_head
    AFTER INSERT ON callmaster.scripts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION callmaster.live_feed_script_created();

-- A deleted script's feed goes with it (live_events has no foreign key: see migration 0800).
CREATE OR REPLACE FUNCTION callmaster.live_feed_script_deleted()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
BEGIN
    DELETE FROM callmaster.live_events AS e WHERE e.script_id IN (SELECT o.script_id FROM old_rows AS o);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION callmaster.live_feed_script_deleted() IS
    'Trigger (AFTER DELETE, per statement, on callmaster.live_feed_heads, which cascade from scripts): '
    'deletes the feed events of the deleted scripts. No errors.';

CREATE OR REPLACE TRIGGER live_feed_heads_delete_events
    AFTER DELETE ON callmaster.live_feed_heads
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION callmaster.live_feed_script_deleted();

-- Element rows: one event per element, one log row per statement and script. The changed columns are
-- compared one by one (a jsonb diff of whole rows cost more than the bulk update it follows); tests
-- check that every column of script_elements is listed.
CREATE OR REPLACE FUNCTION callmaster.live_feed_elements()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        -- concat_ws skips the NULLs of unchanged columns; OFFSET 0 keeps the list computed once per row
        -- (pushed into the join's filter, it was computed twice).
        PERFORM callmaster.live_append_elements('element.updated',
            array_agg(c.element_id ORDER BY c.script_id, c.sequence, c.element_id),
            array_agg(c.script_id ORDER BY c.script_id, c.sequence, c.element_id),
            array_agg(c.fields ORDER BY c.script_id, c.sequence, c.element_id))
        FROM (SELECT n.script_id, n.id AS element_id, n.sequence, concat_ws(',',
                    CASE WHEN n.element_type IS DISTINCT FROM o.element_type THEN 'element_type' END,
                    CASE WHEN n.sequence IS DISTINCT FROM o.sequence THEN 'sequence' END,
                    CASE WHEN n.cue_id IS DISTINCT FROM o.cue_id THEN 'cue_id' END,
                    CASE WHEN n.description IS DISTINCT FROM o.description THEN 'description' END,
                    CASE WHEN n.cue_notes IS DISTINCT FROM o.cue_notes THEN 'cue_notes' END,
                    CASE WHEN n.department_id IS DISTINCT FROM o.department_id THEN 'department_id' END,
                    CASE WHEN n.parent_element_id IS DISTINCT FROM o.parent_element_id THEN 'parent_element_id' END,
                    CASE WHEN n.trigger_type IS DISTINCT FROM o.trigger_type THEN 'trigger_type' END,
                    CASE WHEN n.follows_cue_id IS DISTINCT FROM o.follows_cue_id THEN 'follows_cue_id' END,
                    CASE WHEN n.priority IS DISTINCT FROM o.priority THEN 'priority' END,
                    CASE WHEN n.time_offset_ms IS DISTINCT FROM o.time_offset_ms THEN 'time_offset_ms' END,
                    CASE WHEN n.duration_ms IS DISTINCT FROM o.duration_ms THEN 'duration_ms' END,
                    CASE WHEN n.fade_in_ms IS DISTINCT FROM o.fade_in_ms THEN 'fade_in_ms' END,
                    CASE WHEN n.fade_out_ms IS DISTINCT FROM o.fade_out_ms THEN 'fade_out_ms' END,
                    CASE WHEN n.location IS DISTINCT FROM o.location THEN 'location' END,
                    CASE WHEN n.location_details IS DISTINCT FROM o.location_details THEN 'location_details' END,
                    CASE WHEN n.custom_color IS DISTINCT FROM o.custom_color THEN 'custom_color' END,
                    CASE WHEN n.group_level IS DISTINCT FROM o.group_level THEN 'group_level' END,
                    CASE WHEN n.is_collapsed IS DISTINCT FROM o.is_collapsed THEN 'is_collapsed' END,
                    CASE WHEN n.is_safety_critical IS DISTINCT FROM o.is_safety_critical THEN 'is_safety_critical' END,
                    CASE WHEN n.safety_notes IS DISTINCT FROM o.safety_notes THEN 'safety_notes' END,
                    CASE WHEN n.version IS DISTINCT FROM o.version THEN 'version' END,
                    CASE WHEN n.is_active IS DISTINCT FROM o.is_active THEN 'is_active' END,
                    CASE WHEN n.created_by IS DISTINCT FROM o.created_by THEN 'created_by' END,
                    CASE WHEN n.updated_by IS DISTINCT FROM o.updated_by THEN 'updated_by' END,
                    CASE WHEN n.created_at IS DISTINCT FROM o.created_at THEN 'created_at' END,
                    CASE WHEN n.script_id IS DISTINCT FROM o.script_id THEN 'script_id' END,
                    CASE WHEN n.owner_id IS DISTINCT FROM o.owner_id THEN 'owner_id' END
                  ) AS fields
              FROM new_rows AS n
              JOIN old_rows AS o ON o.id = n.id
              OFFSET 0) AS c
        WHERE c.fields <> '';
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM callmaster.live_append_elements('element.created',
            array_agg(n.id ORDER BY n.script_id, n.sequence, n.id),
            array_agg(n.script_id ORDER BY n.script_id, n.sequence, n.id), NULL::text[])
        FROM new_rows AS n;
    ELSE
        PERFORM callmaster.live_append_elements('element.deleted',
            array_agg(o.id ORDER BY o.script_id, o.sequence, o.id),
            array_agg(o.script_id ORDER BY o.script_id, o.sequence, o.id), NULL::text[])
        FROM old_rows AS o;
        -- Runs whose current or standby cue went, now that the feed heads are locked (a show command's
        -- order: head, then run; see migration 0920). An open run stands after the cue before its
        -- deleted current one, so the next GO is the cue after it; a stopped run forgets it.
        UPDATE callmaster.show_runs AS r
        SET current_element_id = CASE
                WHEN g.current_sequence IS NULL THEN r.current_element_id
                WHEN r.status = 'stopped' THEN NULL
                ELSE (SELECT e.id
                      FROM callmaster.script_elements AS e
                      WHERE e.script_id = r.script_id AND e.element_type = 'cue' AND e.is_active
                        AND (e.sequence, e.id) < (g.current_sequence, r.current_element_id)
                      ORDER BY e.sequence DESC, e.id DESC
                      LIMIT 1) END,
            standby_element_id = CASE WHEN g.standby_gone THEN NULL ELSE r.standby_element_id END,
            updated_at = now()
        FROM (SELECT r0.id,
                     (SELECT o.sequence FROM old_rows AS o WHERE o.id = r0.current_element_id) AS current_sequence,
                     r0.standby_element_id IN (SELECT o.id FROM old_rows AS o) AS standby_gone
              FROM callmaster.show_runs AS r0
              WHERE r0.script_id IN (SELECT o.script_id FROM old_rows AS o)
                AND (r0.current_element_id IN (SELECT o.id FROM old_rows AS o)
                     OR r0.standby_element_id IN (SELECT o.id FROM old_rows AS o))) AS g
        WHERE r.id = g.id;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION callmaster.live_feed_elements() IS
    'Trigger (AFTER INSERT/UPDATE/DELETE, per statement, on callmaster.script_elements): appends '
    'element.created / element.updated (with the names of the changed columns) / element.deleted to the '
    'feed of each script touched, in the writing transaction; on delete, moves the show runs whose current '
    'cue (to the cue before it) or standby cue (to none) went. No errors.';

CREATE OR REPLACE TRIGGER script_elements_live_feed_insert
    AFTER INSERT ON callmaster.script_elements
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION callmaster.live_feed_elements();
CREATE OR REPLACE TRIGGER script_elements_live_feed_update
    AFTER UPDATE ON callmaster.script_elements
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION callmaster.live_feed_elements();
CREATE OR REPLACE TRIGGER script_elements_live_feed_delete
    AFTER DELETE ON callmaster.script_elements
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION callmaster.live_feed_elements();

-- Supporting rows (equipment, element crew and performers, conditional rules, group members): an
-- element.updated event naming the kind of row, once per element and statement. Elements written
-- earlier in the same transaction are skipped: their own event already tells readers to reload them
-- (create or patch with nested rows is one event), and deleted elements have theirs.
CREATE OR REPLACE FUNCTION callmaster.live_feed_children()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
BEGIN
    -- TG_ARGV: [0] the field name readers see, [1] the column holding the element id.
    EXECUTE format(
        $q$SELECT callmaster.live_append_elements('element.updated',
                     array_agg(e.id ORDER BY e.script_id, e.sequence, e.id),
                     array_agg(e.script_id ORDER BY e.script_id, e.sequence, e.id), array_agg(%L::text))
           FROM callmaster.script_elements AS e
           WHERE e.id IN (SELECT t.%I FROM %I AS t)
             AND NOT callmaster.live_written_here(e.xmin)$q$,
        TG_ARGV[0], TG_ARGV[1], CASE TG_OP WHEN 'DELETE' THEN 'old_rows' ELSE 'new_rows' END);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION callmaster.live_feed_children() IS
    'Trigger (AFTER INSERT/UPDATE/DELETE, per statement, on the supporting tables of script elements): '
    'appends element.updated with fields [<kind of row>] for each element whose supporting rows changed, '
    'unless the element itself was written earlier in the transaction. Arguments (trigger): the field '
    'name, the element id column. No errors.';

-- A row moved to another script or element (a DBA's UPDATE of script_id, element_id or group_id): the
-- plain triggers tell where it went (script_id or the kind of row among the fields); this tells the
-- script it left (element.deleted) or the element it left (element.updated). Per moved row: only an
-- UPDATE naming the column fires it (transition tables cannot go with a column list), and the API
-- never moves rows.
CREATE OR REPLACE FUNCTION callmaster.live_feed_moved()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
BEGIN
    IF TG_TABLE_NAME = 'script_elements' THEN
        PERFORM callmaster.live_append_elements('element.deleted', ARRAY[OLD.id], ARRAY[OLD.script_id], NULL);
    ELSE  -- TG_ARGV: [0] the field name readers see, [1] the column holding the element id
        PERFORM callmaster.live_append_elements('element.updated', ARRAY[e.id], ARRAY[e.script_id], ARRAY[TG_ARGV[0]])
        FROM callmaster.script_elements AS e
        WHERE e.id = (to_jsonb(OLD) ->> TG_ARGV[1])::uuid
          AND NOT callmaster.live_written_here(e.xmin);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION callmaster.live_feed_moved() IS
    'Trigger (AFTER UPDATE OF the parent column, per moved row, on callmaster.script_elements and its '
    'supporting tables): appends element.deleted to the feed of the script an element left, or '
    'element.updated (the kind of row as field) for the element a supporting row left, unless written '
    'earlier in the transaction. Arguments (trigger, supporting tables): the field name, the element id '
    'column. No errors.';

CREATE OR REPLACE TRIGGER script_elements_live_feed_move
    AFTER UPDATE OF script_id ON callmaster.script_elements
    FOR EACH ROW WHEN (OLD.script_id IS DISTINCT FROM NEW.script_id)
    EXECUTE FUNCTION callmaster.live_feed_moved();

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT * FROM (VALUES
            ('script_element_equipment', 'equipment', 'element_id'),
            ('script_element_crew_assignments', 'crew_assignments', 'element_id'),
            ('script_element_performer_assignments', 'performer_assignments', 'element_id'),
            ('script_element_conditional_rules', 'conditional_rules', 'element_id'),
            ('script_element_groups', 'group_members', 'group_id')
        ) AS v (tab, field, col)
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER INSERT ON callmaster.%I REFERENCING NEW TABLE AS '
                       'new_rows FOR EACH STATEMENT EXECUTE FUNCTION callmaster.live_feed_children(%L, %L)',
                       t.tab || '_live_feed_insert', t.tab, t.field, t.col);
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER UPDATE ON callmaster.%I REFERENCING NEW TABLE AS '
                       'new_rows FOR EACH STATEMENT EXECUTE FUNCTION callmaster.live_feed_children(%L, %L)',
                       t.tab || '_live_feed_update', t.tab, t.field, t.col);
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER DELETE ON callmaster.%I REFERENCING OLD TABLE AS '
                       'old_rows FOR EACH STATEMENT EXECUTE FUNCTION callmaster.live_feed_children(%L, %L)',
                       t.tab || '_live_feed_delete', t.tab, t.field, t.col);
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER UPDATE OF %I ON callmaster.%I FOR EACH ROW '
                       'WHEN (OLD.%I IS DISTINCT FROM NEW.%I) EXECUTE FUNCTION callmaster.live_feed_moved(%L, %L)',
                       t.tab || '_live_feed_move', t.col, t.tab, t.col, t.col, t.field, t.col);
    END LOOP;
END
$$;

-- Relays -----------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION callmaster.live_relay_asleep(p_wait interval)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_deadline timestamptz := clock_timestamp() + p_wait;
BEGIN
    PERFORM pg_advisory_lock_shared(keel.advisory_lock_key('live_feed'), 2);  -- stacked by retries: live_relay_awake drops all
    -- Writers that saw every relay awake hold the ringing lock (shared) until they end. Only try the
    -- exclusive lock, never queue for it: a queued request would hold up every new writer behind it.
    LOOP
        IF pg_try_advisory_lock(keel.advisory_lock_key('live_feed'), 1) THEN
            PERFORM pg_advisory_unlock(keel.advisory_lock_key('live_feed'), 1);
            RETURN true;
        END IF;
        EXIT WHEN clock_timestamp() >= v_deadline;
        PERFORM pg_sleep(0.002);
    END LOOP;
    RETURN false;
END
$$;
COMMENT ON FUNCTION callmaster.live_relay_asleep(interval) IS
    'Relay call, on its LISTEN session: announces that this relay sleeps (writers NOTIFY callmaster_live '
    'from now on), then waits up to p_wait for the writers that did not ring meanwhile to end. Returns true '
    'when they all ended (the relay then looks once more and sleeps), false when one is still open (look '
    'again soon). Raises nothing.';

CREATE OR REPLACE FUNCTION callmaster.live_relay_awake()
    RETURNS void
    LANGUAGE sql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT pg_advisory_unlock_all()
$$;
COMMENT ON FUNCTION callmaster.live_relay_awake() IS
    'Relay call, on its LISTEN session: withdraws the "asleep" announcement of live_relay_asleep (the relay '
    'polls on its own now, writers stop notifying for it). Raises nothing.';

CREATE OR REPLACE FUNCTION callmaster.live_events_after(
    p_script_ids uuid[],
    p_positions bigint[],
    p_limit integer DEFAULT 10000
)
    RETURNS TABLE (script_id uuid, id bigint, event text, element_id uuid, run_id uuid, fields text[],
                   command text, run jsonb, created_at timestamptz)
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT e.script_id, e.first_position + x.ord - 1, e.event, x.element_id, e.run_id,
           string_to_array(e.fields[x.ord], ','), e.command, e.run, e.created_at
    FROM unnest(p_script_ids, p_positions) AS k (script_id, after)
    CROSS JOIN LATERAL (
        SELECT l.*
        FROM callmaster.live_events AS l
        WHERE l.script_id = k.script_id AND l.position > k.after
        ORDER BY l.position
        LIMIT p_limit
    ) AS e
    CROSS JOIN LATERAL unnest(coalesce(e.element_ids, ARRAY[e.element_id])) WITH ORDINALITY AS x (element_id, ord)
    WHERE e.first_position + x.ord - 1 > k.after
    ORDER BY e.script_id, e.position, x.ord
$$;
COMMENT ON FUNCTION callmaster.live_events_after(uuid[], bigint[], integer) IS
    'Relay call: the feed events of each script of p_script_ids after the position at the same index of '
    'p_positions, in position (commit) order, at most p_limit per script. Returns (script_id, id = '
    'position, event, element_id, run_id, fields, command, run, created_at). Checks no access: the relay '
    'delivers only to subscribers it has checked (live_open, live_heartbeat). No errors.';

CREATE OR REPLACE FUNCTION callmaster.prune_live_events(p_keep interval)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_deleted bigint;
BEGIN
    WITH gone AS (
        DELETE FROM callmaster.live_events AS e
        WHERE e.created_at < now() - p_keep
        RETURNING e.script_id, e.position
    ),
    per_script AS (
        SELECT g.script_id, max(g.position) AS through, count(*) AS n FROM gone AS g GROUP BY g.script_id
    ),
    marked AS (
        UPDATE callmaster.live_feed_heads AS h
        SET pruned_through = greatest(h.pruned_through, p.through)
        FROM per_script AS p
        WHERE h.script_id = p.script_id
        RETURNING p.n
    )
    SELECT coalesce(sum(m.n), 0) INTO v_deleted FROM marked AS m;
    RETURN v_deleted;
END
$$;
COMMENT ON FUNCTION callmaster.prune_live_events(interval) IS
    'Deletes feed events older than p_keep (a reader asking for one of them gets `reset` and reloads). '
    'Run by the relay of every API process at most once a minute (KEEL_LIVE_RETENTION_HOURS); a DBA may '
    'call it too. Returns the number of log rows deleted (a row holds the events of one statement). No '
    'errors.';
