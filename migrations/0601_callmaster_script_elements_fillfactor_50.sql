-- Leave half of each script_elements heap page free (0600 left a fifth). Elements are rewritten a
-- script at a time (bulk updates, auto-sort, edit batches), and an update stays on its page as a HOT
-- update (no new entry in any of the table's eight indexes) only when that page has room for the new
-- row version: a statement that rewrites every element on a page needs room for a second copy of
-- each row. With a fifth free, about 5 of the ~24 rows of a freshly loaded page fit, so the first
-- full update of a 1,000-element script was 25% HOT and rows that moved went to pages filled to 80%
-- again; repeated full updates took about ten passes to become all HOT and left 157 heap + 67 index
-- pages. With half free, every update is HOT from the first pass and the same 14 updates leave 72 +
-- 49 pages (bench data, PostgreSQL 18). Applies to pages written from now on.

ALTER TABLE callmaster.script_elements SET (fillfactor = 50);
