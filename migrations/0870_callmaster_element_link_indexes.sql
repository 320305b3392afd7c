-- The indexes behind the foreign keys between a script's elements lead with the element, not the script.
--
-- A raw `DELETE FROM callmaster.scripts` of a 10,000-element script took 16-22 s: for each deleted
-- element the cascade `DELETE FROM script_element_groups WHERE script_id = $1 AND group_id = $2` ran on
-- script_element_groups_child_idx (script_id, child_element_id), matching script_id alone and filtering
-- every group row of the script (10,000 x 9,800). PostgreSQL's statistics do not know a script created
-- since the last ANALYZE, so it estimates one row for `script_id = $1`, and then every index that leads
-- with script_id looks as good as the one that matches both columns. Two changes fix the class:
--
-- * script_element_groups: the primary key becomes (group_id, script_id, child_element_id). It is as
--   unique as (group_id, child_element_id) was (an element id names one script) and now also serves the
--   group's foreign key (script_id, group_id), so script_element_groups_group_idx goes. The member's key
--   (script_id, child_element_id) gets (child_element_id, script_id). No index leads with script_id: the
--   functions reach a script's memberships through its elements (group_id), as every supporting table.
-- * script_elements: the parent link's index becomes (parent_element_id, script_id), so the SET NULL of
--   a deleted parent's children is found by the parent. script_elements must keep indexes that lead
--   with script_id (a script's elements in order, the script's key), so the planner must also stop
--   believing that a script unknown to the statistics has one element: script_id keeps no statistics
--   (STATISTICS 0), and `script_id = $1` is estimated at PostgreSQL's default 0.5 % of the rows, a
--   script's worth, whichever scripts existed at the last ANALYZE. With the ambiguity gone the same
--   raw DELETE takes 0.8 s, its 10,000 parent links each found by their index.
-- depends: 0860_callmaster_pending_member_assignments

ALTER TABLE callmaster.script_element_groups
    DROP CONSTRAINT script_element_groups_pkey,
    ADD CONSTRAINT script_element_groups_pkey PRIMARY KEY (group_id, script_id, child_element_id);
DROP INDEX callmaster.script_element_groups_group_idx;
DROP INDEX callmaster.script_element_groups_child_idx;
CREATE INDEX script_element_groups_child_idx
    ON callmaster.script_element_groups (child_element_id, script_id);

DROP INDEX callmaster.script_elements_parent_idx;
CREATE INDEX script_elements_parent_idx
    ON callmaster.script_elements (parent_element_id, script_id) WHERE parent_element_id IS NOT NULL;
ALTER TABLE callmaster.script_elements ALTER COLUMN script_id SET STATISTICS 0;
