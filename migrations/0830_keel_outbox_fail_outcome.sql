-- depends: 0710_keel_outbox_claim_token
-- Issue 13: keel.fail_outbox answers which outcome it recorded (retry, failed, lost) instead of a
-- timestamp that was NULL both for "gave up" and for "the claim was taken over". The return type changes:
-- drop the old function (sql/keel/200_outbox.sql creates the new one on every migrate).

DROP FUNCTION IF EXISTS keel.fail_outbox(uuid, uuid, text, integer, integer, interval, interval);
