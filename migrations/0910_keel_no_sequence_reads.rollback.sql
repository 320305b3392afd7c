ALTER DEFAULT PRIVILEGES FOR ROLE keel_owner IN SCHEMA clinic, assistant, callmaster
    GRANT USAGE, SELECT ON SEQUENCES TO keel_api;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA clinic, assistant, callmaster TO keel_api;
