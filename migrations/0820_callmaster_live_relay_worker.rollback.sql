REVOKE USAGE ON SCHEMA callmaster FROM keel_worker;
