-- A show run whose current or standby cue is deleted keeps its place (issue 16): the element delete's
-- feed trigger (callmaster.live_feed_elements, sql/callmaster/700_live_feed.sql) moves the run after
-- it has locked the script's feed head. The foreign keys' ON DELETE SET NULL did it first, locking the
-- run before the head — the reverse of a show command's order (head, then run): a GO racing the delete
-- of the current cue deadlocked — and it left the run at the top of the script (the next GO was the
-- first cue). The keys still hold, checked at commit, after the trigger has moved the run.
-- depends: 0800_callmaster_live
ALTER TABLE callmaster.show_runs
    DROP CONSTRAINT show_runs_standby_fkey,
    DROP CONSTRAINT show_runs_current_fkey,
    ADD CONSTRAINT show_runs_standby_fkey FOREIGN KEY (script_id, standby_element_id)
        REFERENCES callmaster.script_elements (script_id, id) DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT show_runs_current_fkey FOREIGN KEY (script_id, current_element_id)
        REFERENCES callmaster.script_elements (script_id, id) DEFERRABLE INITIALLY DEFERRED;
