ALTER TABLE callmaster.script_elements RESET (fillfactor);
