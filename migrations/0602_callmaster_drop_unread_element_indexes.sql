-- Two indexes that no query reads, each costing an index insertion for every element (or group
-- membership) written: 19,000 of them when the bench's 10,000-element script is duplicated.
-- * script_elements (owner_id, id): every statement on script_elements (sql/callmaster, the RLS
--   policies of the supporting tables) looks rows up by id or by script_id; the tenant key is always
--   a filter beside one of those, never the access path. Foreign keys through owner_id are composite
--   and indexed by script_elements_script_sequence_idx and script_elements_department_idx.
-- * script_element_groups (child_element_id): members are read by group_id (group_idx, primary key)
--   or by script_id; the foreign key on the child, (script_id, child_element_id), is served by
--   script_element_groups_child_idx.

DROP INDEX callmaster.script_elements_owner_id_idx;
DROP INDEX callmaster.script_element_groups_child_element_id_idx;
