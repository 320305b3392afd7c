-- A show run's state as constraints (issue 16), so that no write — a command, or a DBA past the guard of
-- sql/callmaster/700_live_runs.sql — can leave a run the commands could not have: a run has started (the
-- show clock runs) exactly when it has had a GO; a standby run has had none; a running or holding run has;
-- a holding run has counted its hold; a current cue comes from a GO.
-- depends: 0920_callmaster_show_runs_deleted_cues
ALTER TABLE callmaster.show_runs
    ADD CONSTRAINT show_runs_started_check CHECK ((started_at IS NULL) = (go_count = 0)),
    ADD CONSTRAINT show_runs_status_go_check CHECK (CASE status
        WHEN 'standby' THEN go_count = 0
        WHEN 'running' THEN go_count > 0
        WHEN 'holding' THEN go_count > 0 AND hold_count > 0
        ELSE true END),
    ADD CONSTRAINT show_runs_current_check CHECK (current_element_id IS NULL OR go_count > 0);
