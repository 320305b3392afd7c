-- assistant.append_reply writes at an offset now (idempotent writes of streamed text): the function with
-- the new signature comes from sql/assistant/030_worker.sql; drop the old one.
-- depends: 0400_assistant_chat
DROP FUNCTION IF EXISTS assistant.append_reply(uuid, integer, text, double precision);
