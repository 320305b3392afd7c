DROP TABLE IF EXISTS keel.sql_sources;
