ALTER TABLE callmaster.script_elements SET (fillfactor = 80);
