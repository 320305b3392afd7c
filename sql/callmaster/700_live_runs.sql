-- Show runs (issue 16): a performance of a script being called. The caller gives commands in
-- stage-management vocabulary, one function each:
--   live_standby(script, element?)  warn the crew of the next cue (or the given one); opens a run
--   live_go(script, element?)       execute the cue in standby (or the given one, or the next); the
--                                   first GO starts the show clock
--   live_hold(script)               stop the show (the clock stops; SAFETY in the old product is a hold)
--   live_resume(script)             continue after a hold
--   live_stop(script)               end the run (COMPLETE and STOP in the old product)
-- Who may call: the script's owner, crew actively assigned to the show with a caller role
-- (show_role `caller` or `stage_manager`, case and spaces ignored), or a DBA (no request claims).
-- Other crew get 42501 (403), strangers P0002 (404); an impossible transition is 55000 (409); an
-- element that is not an active cue of the script is 22023 (422). Each command locks the script's
-- feed head first (commands of one script are serialised), changes the run and appends a `command`
-- event carrying the new run to the feed.
-- Nothing else writes a run (live_runs_guard): a raw INSERT, UPDATE, or DELETE of an open run would
-- change the show behind the feed, so the crew's devices would never hear of it. The commands switch
-- the guard off from live_caller_script (their first step) to live_record (their last); the cascades
-- of deleted scripts, users and cues (triggers) pass. Migration 0921 holds the run's invariants.

CREATE OR REPLACE FUNCTION callmaster.live_is_caller_role(p_show_role text)
    RETURNS boolean
    LANGUAGE sql
    IMMUTABLE
AS $$
    SELECT regexp_replace(lower(btrim(coalesce(p_show_role, ''))), '[\s-]+', '_', 'g')
           IN ('caller', 'stage_manager')
$$;
COMMENT ON FUNCTION callmaster.live_is_caller_role(text) IS
    'Whether a crew assignment''s show_role lets its user call the show: caller or stage_manager, '
    'ignoring case, surrounding spaces, and spaces or hyphens between words. No errors.';
REVOKE ALL ON FUNCTION callmaster.live_is_caller_role(text) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_next_cue(p_script_id uuid, p_after uuid)
    RETURNS uuid
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_sequence integer;
    v_after    uuid;
BEGIN
    -- p_after's place first, then one ordered scan of the script. (A join to p_after's row, as this
    -- was, re-read that row for every element of the script: 15 ms a call at 610 cues, three calls a
    -- GO — most of a GO's latency in the live bench, bench/README.md.)
    SELECT a.sequence, a.id INTO v_sequence, v_after
    FROM callmaster.script_elements AS a
    WHERE a.id = p_after AND a.script_id = p_script_id;
    RETURN (SELECT e.id
            FROM callmaster.script_elements AS e
            WHERE e.script_id = p_script_id
              AND e.element_type = 'cue'
              AND e.is_active
              AND (v_after IS NULL OR (e.sequence, e.id) > (v_sequence, v_after))
            ORDER BY e.sequence, e.id
            LIMIT 1);
END
$$;
COMMENT ON FUNCTION callmaster.live_next_cue(uuid, uuid) IS
    'The active cue of the script that follows element p_after in sequence order (the first cue when '
    'p_after is NULL or gone); NULL after the last cue. No errors.';
REVOKE ALL ON FUNCTION callmaster.live_next_cue(uuid, uuid) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_run_json(r callmaster.show_runs)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    SELECT CASE WHEN r.id IS NULL THEN NULL ELSE jsonb_build_object(
        'id', r.id,
        'status', r.status,
        'standby_element_id', r.standby_element_id,
        'current_element_id', r.current_element_id,
        'next_element_id', CASE WHEN r.status <> 'stopped'
                                THEN callmaster.live_next_cue(r.script_id, r.current_element_id) END,
        'go_count', r.go_count,
        'hold_count', r.hold_count,
        'started_at', r.started_at,
        'hold_started_at', r.hold_started_at,
        'stopped_at', r.stopped_at,
        'held_ms', r.held_ms + CASE WHEN r.hold_started_at IS NULL THEN 0
                                    ELSE (extract(epoch FROM now() - r.hold_started_at) * 1000)::bigint END,
        'clock_ms', CASE WHEN r.started_at IS NULL THEN 0
                         ELSE greatest(0, (extract(epoch FROM coalesce(r.stopped_at, r.hold_started_at, now())
                                                               - r.started_at) * 1000)::bigint - r.held_ms) END,
        'updated_at', r.updated_at) END
$$;
COMMENT ON FUNCTION callmaster.live_run_json(callmaster.show_runs) IS
    'A show run as the API shows it: status, standby/current/next cue ids, GO and hold counts, the show '
    'clock (clock_ms: time since the first GO less holds, frozen while holding or stopped) and the time '
    'held (held_ms, including a hold in progress). NULL for a NULL run. No errors.';
REVOKE ALL ON FUNCTION callmaster.live_run_json(callmaster.show_runs) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_state(p_script_id uuid)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT jsonb_build_object(
        'script', jsonb_build_object('id', s.id, 'show_id', s.show_id, 'name', s.name, 'status', s.status,
                                     'version', h.position),
        'run', (SELECT callmaster.live_run_json(r)
                FROM callmaster.show_runs AS r
                WHERE r.script_id = s.id
                ORDER BY r.status = 'stopped', r.created_at DESC
                LIMIT 1))
    FROM callmaster.scripts AS s
    JOIN callmaster.live_feed_heads AS h ON h.script_id = s.id
    WHERE s.id = p_script_id
$$;
COMMENT ON FUNCTION callmaster.live_state(uuid) IS
    'Internal (checks no access): the live state of a script: {script: {id, show_id, name, status, '
    'version = its feed position}, run: the open run, else the last one, else null}. No errors.';
REVOKE ALL ON FUNCTION callmaster.live_state(uuid) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_caller_script(p_script_id uuid)
    RETURNS callmaster.scripts
    LANGUAGE plpgsql
    VOLATILE
AS $$
DECLARE
    v_me     uuid := callmaster.acting_user_id();
    v_script callmaster.scripts;
BEGIN
    SELECT s.* INTO v_script FROM callmaster.scripts AS s WHERE s.id = p_script_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('script %s not found', p_script_id);
    END IF;
    IF v_me IS NOT NULL AND v_script.owner_id <> v_me THEN
        IF NOT EXISTS (SELECT 1 FROM callmaster.crew_assignments AS ca
                       WHERE ca.show_id = v_script.show_id AND ca.user_id = v_me AND ca.is_active) THEN
            RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('script %s not found', p_script_id);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM callmaster.crew_assignments AS ca
                       WHERE ca.show_id = v_script.show_id AND ca.user_id = v_me AND ca.is_active
                         AND callmaster.live_is_caller_role(ca.show_role)) THEN
            RAISE EXCEPTION USING
                ERRCODE = '42501',
                MESSAGE = format('only the caller may call script %s', p_script_id),
                HINT = 'The show''s owner or crew assigned with show_role caller or stage_manager call the show.';
        END IF;
    END IF;
    PERFORM 1 FROM callmaster.live_feed_heads AS h WHERE h.script_id = p_script_id FOR NO KEY UPDATE;
    PERFORM set_config('callmaster.live_run_write', 'on', true);  -- until live_record (live_runs_guard)
    RETURN v_script;
END
$$;
COMMENT ON FUNCTION callmaster.live_caller_script(uuid) IS
    'Internal (show-run commands): the script if the acting user may call it (owner, crew with a caller '
    'role, or a DBA), with its feed head locked to commit and the run open to the command''s write '
    '(live_runs_guard, until live_record). Errors: P0002 not found (or not the user''s to see); 42501 crew '
    'without a caller role.';
REVOKE ALL ON FUNCTION callmaster.live_caller_script(uuid) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_cue(p_script_id uuid, p_element_id uuid)
    RETURNS uuid
    LANGUAGE plpgsql
    STABLE
AS $$
BEGIN
    IF p_element_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM callmaster.script_elements AS e
        WHERE e.id = p_element_id AND e.script_id = p_script_id AND e.element_type = 'cue' AND e.is_active
    ) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('element %s is not an active cue of script %s', p_element_id, p_script_id),
            HINT = 'Standby and GO name a cue (element_type cue, is_active) of the same script.';
    END IF;
    RETURN p_element_id;
END
$$;
COMMENT ON FUNCTION callmaster.live_cue(uuid, uuid) IS
    'Internal (show-run commands): p_element_id when it is NULL or an active cue of the script. Errors: '
    '22023 otherwise.';
REVOKE ALL ON FUNCTION callmaster.live_cue(uuid, uuid) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_record(r callmaster.show_runs, p_command text, p_element_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
AS $$
DECLARE
    v_run jsonb := callmaster.live_run_json(r);
BEGIN
    PERFORM set_config('callmaster.live_run_write', 'off', true);  -- the command has written the run
    INSERT INTO callmaster.live_events (script_id, first_position, position, event, element_id, run_id, command, run)
    SELECT p.script_id, p.base + 1, p.base + 1, 'command', p_element_id, r.id, p_command, v_run
    FROM callmaster.live_claim_positions(jsonb_build_object(r.script_id, 1)) AS p;
    -- A command rings even awake relays, which then read it at once instead of at their next poll:
    -- commands come a few a second at most, so serialising their commits (NOTIFY) costs nothing.
    PERFORM pg_notify('callmaster_live', r.script_id::text);
    RETURN callmaster.live_state(r.script_id);
END
$$;
COMMENT ON FUNCTION callmaster.live_record(callmaster.show_runs, text, uuid) IS
    'Internal (show-run commands): appends the command event (with the run as it now is) to the script''s '
    'feed, rings every relay (NOTIFY callmaster_live), closes the run to writes again (live_runs_guard) and '
    'returns the script''s live state. No errors.';
REVOKE ALL ON FUNCTION callmaster.live_record(callmaster.show_runs, text, uuid) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_open_run(p_script_id uuid)
    RETURNS callmaster.show_runs
    LANGUAGE sql
    VOLATILE
AS $$
    SELECT r.* FROM callmaster.show_runs AS r
    WHERE r.script_id = p_script_id AND r.status <> 'stopped'
    FOR UPDATE
$$;
COMMENT ON FUNCTION callmaster.live_open_run(uuid) IS
    'Internal (show-run commands): the script''s run that is not stopped, locked; all-NULL when none. '
    'No errors.';
REVOKE ALL ON FUNCTION callmaster.live_open_run(uuid) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_standby(p_script_id uuid, p_element_id uuid DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_script callmaster.scripts := callmaster.live_caller_script(p_script_id);
    v_run    callmaster.show_runs := callmaster.live_open_run(p_script_id);
    v_cue    uuid := coalesce(callmaster.live_cue(p_script_id, p_element_id),
                              callmaster.live_next_cue(p_script_id, v_run.current_element_id));
BEGIN
    IF v_cue IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = format('script %s has no cue left to stand by', p_script_id),
            HINT = 'Name a cue (element_id), or stop the run.';
    END IF;
    IF v_run.id IS NULL THEN
        INSERT INTO callmaster.show_runs (script_id, owner_id, status, standby_element_id, called_by)
        VALUES (p_script_id, v_script.owner_id, 'standby', v_cue, callmaster.acting_user_id())
        RETURNING * INTO v_run;
    ELSE
        UPDATE callmaster.show_runs AS r SET standby_element_id = v_cue, updated_at = now()
        WHERE r.id = v_run.id RETURNING * INTO v_run;
    END IF;
    RETURN callmaster.live_record(v_run, 'standby', v_cue);
END
$$;
COMMENT ON FUNCTION callmaster.live_standby(uuid, uuid) IS
    'Show-run command STANDBY: puts a cue in standby (p_element_id, default the cue after the current one), '
    'opening a run (status standby) when none is open. Returns the live state {script, run}. Errors: P0002 '
    'script not found; 42501 not a caller; 22023 not an active cue of the script; 55000 no cue left.';

CREATE OR REPLACE FUNCTION callmaster.live_go(p_script_id uuid, p_element_id uuid DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_script callmaster.scripts := callmaster.live_caller_script(p_script_id);
    v_run    callmaster.show_runs := callmaster.live_open_run(p_script_id);
    v_cue    uuid := coalesce(callmaster.live_cue(p_script_id, p_element_id), v_run.standby_element_id,
                              callmaster.live_next_cue(p_script_id, v_run.current_element_id));
BEGIN
    IF v_run.status = 'holding' THEN
        RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = format('script %s is holding', p_script_id),
            HINT = 'Resume before the next GO.';
    END IF;
    IF v_cue IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = format('script %s has no cue left to go', p_script_id),
            HINT = 'Name a cue (element_id), or stop the run.';
    END IF;
    IF v_run.id IS NULL THEN
        INSERT INTO callmaster.show_runs (script_id, owner_id, status, current_element_id, go_count, started_at,
                                          called_by)
        VALUES (p_script_id, v_script.owner_id, 'running', v_cue, 1, now(), callmaster.acting_user_id())
        RETURNING * INTO v_run;
    ELSE
        UPDATE callmaster.show_runs AS r
        SET status = 'running', current_element_id = v_cue, standby_element_id = NULL,
            go_count = r.go_count + 1, started_at = coalesce(r.started_at, now()), updated_at = now()
        WHERE r.id = v_run.id RETURNING * INTO v_run;
    END IF;
    RETURN callmaster.live_record(v_run, 'go', v_cue);
END
$$;
COMMENT ON FUNCTION callmaster.live_go(uuid, uuid) IS
    'Show-run command GO: executes a cue — p_element_id, else the one in standby, else the cue after the '
    'current one — making it current; the first GO opens the run if needed and starts the show clock. '
    'Returns the live state {script, run}. Errors: P0002 script not found; 42501 not a caller; 22023 not '
    'an active cue of the script; 55000 holding (resume first) or no cue left.';

-- HOLD and RESUME are one transition each way between running and holding.
CREATE OR REPLACE FUNCTION callmaster.live_pause(p_script_id uuid, p_hold boolean)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
AS $$
DECLARE
    v_script  callmaster.scripts := callmaster.live_caller_script(p_script_id);
    v_run     callmaster.show_runs := callmaster.live_open_run(p_script_id);
    v_command text := CASE WHEN p_hold THEN 'hold' ELSE 'resume' END;
BEGIN
    IF v_run.status IS DISTINCT FROM (CASE WHEN p_hold THEN 'running' ELSE 'holding' END) THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('script %s cannot %s: it is %s', v_script.id, v_command,
                             coalesce(v_run.status, 'not running')),
            HINT = CASE WHEN p_hold THEN 'Only a running show holds (after its first GO).'
                        ELSE 'Only a holding show resumes.' END;
    END IF;
    UPDATE callmaster.show_runs AS r
    SET status = CASE WHEN p_hold THEN 'holding' ELSE 'running' END,
        hold_started_at = CASE WHEN p_hold THEN now() END,
        hold_count = r.hold_count + CASE WHEN p_hold THEN 1 ELSE 0 END,
        held_ms = r.held_ms + CASE WHEN p_hold THEN 0
                                   ELSE (extract(epoch FROM now() - r.hold_started_at) * 1000)::bigint END,
        updated_at = now()
    WHERE r.id = v_run.id RETURNING * INTO v_run;
    RETURN callmaster.live_record(v_run, v_command, NULL);
END
$$;
COMMENT ON FUNCTION callmaster.live_pause(uuid, boolean) IS
    'Internal (live_hold, live_resume): holds a running show (p_hold true: the clock stops) or resumes a '
    'holding one (false: the hold''s length is added to held_ms), and records the command. Returns the live '
    'state. Errors: P0002 script not found; 42501 not a caller; 55000 the run is not running (hold) or not '
    'holding (resume).';
REVOKE ALL ON FUNCTION callmaster.live_pause(uuid, boolean) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_hold(p_script_id uuid)
    RETURNS jsonb
    LANGUAGE sql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT callmaster.live_pause(p_script_id, true)
$$;
COMMENT ON FUNCTION callmaster.live_hold(uuid) IS
    'Show-run command HOLD: stops a running show; the show clock stops until live_resume. Returns the live '
    'state. Errors: P0002 script not found; 42501 not a caller; 55000 the run is not running.';

CREATE OR REPLACE FUNCTION callmaster.live_resume(p_script_id uuid)
    RETURNS jsonb
    LANGUAGE sql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT callmaster.live_pause(p_script_id, false)
$$;
COMMENT ON FUNCTION callmaster.live_resume(uuid) IS
    'Show-run command RESUME: continues a holding show; the hold''s length is added to held_ms. Returns '
    'the live state. Errors: P0002 script not found; 42501 not a caller; 55000 the run is not holding.';

CREATE OR REPLACE FUNCTION callmaster.live_stop(p_script_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_script callmaster.scripts := callmaster.live_caller_script(p_script_id);
    v_run    callmaster.show_runs := callmaster.live_open_run(p_script_id);
BEGIN
    IF v_run.id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = format('script %s has no run to stop', v_script.id),
            HINT = 'A run opens with the first STANDBY or GO.';
    END IF;
    UPDATE callmaster.show_runs AS r
    SET status = 'stopped', stopped_at = now(), standby_element_id = NULL, hold_started_at = NULL,
        held_ms = r.held_ms + CASE WHEN r.hold_started_at IS NULL THEN 0
                                   ELSE (extract(epoch FROM now() - r.hold_started_at) * 1000)::bigint END,
        updated_at = now()
    WHERE r.id = v_run.id RETURNING * INTO v_run;
    RETURN callmaster.live_record(v_run, 'stop', NULL);
END
$$;
COMMENT ON FUNCTION callmaster.live_stop(uuid) IS
    'Show-run command STOP: ends the open run (the show clock freezes; a hold in progress is closed). The '
    'next STANDBY or GO opens a new run. Returns the live state. Errors: P0002 script not found; 42501 not a '
    'caller; 55000 no open run.';

CREATE OR REPLACE FUNCTION callmaster.live_runs_guard()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    -- Depth 1 is this trigger on a statement of a session or a function; deeper, another trigger's
    -- statement: the cascades of scripts and users, the element delete's feed trigger.
    IF pg_trigger_depth() > 1 OR current_setting('callmaster.live_run_write', true) = 'on'
       OR (TG_OP = 'DELETE' AND OLD.status = 'stopped') THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = '42501',
        MESSAGE = format('show run %s of script %s changes only through the show-run commands',
                         CASE WHEN TG_OP = 'INSERT' THEN NEW.id ELSE OLD.id END,
                         CASE WHEN TG_OP = 'INSERT' THEN NEW.script_id ELSE OLD.script_id END),
        HINT = 'Call callmaster.live_standby, live_go, live_hold, live_resume or live_stop: they check the '
               'caller and tell the crew''s devices (the feed). A stopped run may be deleted.';
END
$$;
COMMENT ON FUNCTION callmaster.live_runs_guard() IS
    'Trigger (BEFORE INSERT/UPDATE/DELETE, per row, on callmaster.show_runs): refuses writes other than the '
    'show-run commands'' (and the cascades of triggers), and the deletion of a run that is not stopped. '
    'Errors: 42501 with a HINT naming the commands.';

CREATE OR REPLACE TRIGGER show_runs_guard
    BEFORE INSERT OR UPDATE OR DELETE ON callmaster.show_runs
    FOR EACH ROW EXECUTE FUNCTION callmaster.live_runs_guard();

-- Show runs are readable under RLS by whoever reads the script; written only by the commands.
DROP POLICY IF EXISTS show_runs_read ON callmaster.show_runs;
CREATE POLICY show_runs_read ON callmaster.show_runs FOR SELECT TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.scripts AS s WHERE s.id = show_runs.script_id));

REVOKE EXECUTE ON FUNCTION callmaster.live_standby(uuid, uuid), callmaster.live_go(uuid, uuid),
    callmaster.live_hold(uuid), callmaster.live_resume(uuid), callmaster.live_stop(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callmaster.live_standby(uuid, uuid), callmaster.live_go(uuid, uuid),
    callmaster.live_hold(uuid), callmaster.live_resume(uuid), callmaster.live_stop(uuid) TO keel_api;
