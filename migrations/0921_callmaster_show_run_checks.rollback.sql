ALTER TABLE callmaster.show_runs
    DROP CONSTRAINT show_runs_started_check,
    DROP CONSTRAINT show_runs_status_go_check,
    DROP CONSTRAINT show_runs_current_check;
