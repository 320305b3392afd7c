-- The digest of the sql/ sources last reloaded by `keel migrate`, so a process can refuse a database whose
-- functions are older than its own code (a pending migration is not the only way to be behind).
CREATE TABLE keel.sql_sources (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    digest      text        NOT NULL,
    reloaded_at timestamptz NOT NULL DEFAULT now()
);
