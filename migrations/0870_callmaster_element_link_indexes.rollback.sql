-- The script-first indexes of migrations 0500 and 0602, and script_id's statistics.
ALTER TABLE callmaster.script_elements ALTER COLUMN script_id SET STATISTICS -1;
DROP INDEX callmaster.script_elements_parent_idx;
CREATE INDEX script_elements_parent_idx
    ON callmaster.script_elements (script_id, parent_element_id) WHERE parent_element_id IS NOT NULL;

DROP INDEX callmaster.script_element_groups_child_idx;
CREATE INDEX script_element_groups_child_idx
    ON callmaster.script_element_groups (script_id, child_element_id);
CREATE INDEX script_element_groups_group_idx ON callmaster.script_element_groups (script_id, group_id);
ALTER TABLE callmaster.script_element_groups
    DROP CONSTRAINT script_element_groups_pkey,
    ADD CONSTRAINT script_element_groups_pkey PRIMARY KEY (group_id, child_element_id);
