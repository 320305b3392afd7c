ALTER TABLE callmaster.show_runs
    DROP CONSTRAINT show_runs_standby_fkey,
    DROP CONSTRAINT show_runs_current_fkey,
    ADD CONSTRAINT show_runs_standby_fkey FOREIGN KEY (script_id, standby_element_id)
        REFERENCES callmaster.script_elements (script_id, id) ON DELETE SET NULL (standby_element_id),
    ADD CONSTRAINT show_runs_current_fkey FOREIGN KEY (script_id, current_element_id)
        REFERENCES callmaster.script_elements (script_id, id) ON DELETE SET NULL (current_element_id);
