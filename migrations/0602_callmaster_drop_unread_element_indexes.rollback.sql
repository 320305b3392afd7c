CREATE INDEX IF NOT EXISTS script_elements_owner_id_idx ON callmaster.script_elements (owner_id, id);
CREATE INDEX IF NOT EXISTS script_element_groups_child_element_id_idx
    ON callmaster.script_element_groups (child_element_id);
