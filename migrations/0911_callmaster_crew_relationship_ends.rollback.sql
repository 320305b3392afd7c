REVOKE UPDATE (notes, is_active) ON callmaster.crew_relationships FROM keel_api;
GRANT UPDATE ON callmaster.crew_relationships TO keel_api;
