DROP FUNCTION IF EXISTS keel.rate_limit_hit(text, integer, integer);
DROP TABLE IF EXISTS keel.rate_limits;
