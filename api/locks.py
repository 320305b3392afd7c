"""Advisory-lock keys: the one registry.

Every advisory lock Keel takes is a two-key lock `(class, object)`: the class says what the lock is for
(one row below), the object which one of those it is (a doctor, the awake dispatcher, …). Python reads
a class as `LOCKS["<purpose>"].key`; SQL as `keel.advisory_lock_key('<purpose>')`, a function that every
`keel migrate` generates from this table before it reloads `sql/` (an IMMUTABLE call with a constant
argument, so the planner folds it to the number). Python needs the table itself because the migration
lock is taken before the database holds anything. `tests/test_foundation_locks.py` proves no two purposes
share a class and that no advisory-lock call in `api/` or `sql/` names a number of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql


@dataclass(frozen=True)
class LockClass:
    key: int
    """The first key of the lock (a signed 32-bit integer)."""
    use: str
    """Who takes it, for how long, and what the second key means."""


LOCKS: dict[str, LockClass] = {
    "migrate": LockClass(
        0x6B6D6967,  # "kmig"
        "api/migrate.py: a session lock serialising whole `keel migrate` runs; object 0.",
    ),
    "outbox": LockClass(
        1262831183,
        "sql/keel/200_outbox.sql: object 1, the doorbell writers hold shared until they commit; object 2, "
        "held for a session by the dispatcher that is awake and polling.",
    ),
    "doctor_schedule": LockClass(
        1095782484,
        "clinic.lock_doctor_schedule: a transaction lock per doctor (object hashtext(doctor id)), so "
        "concurrent bookings of one doctor queue.",
    ),
    "control_tower_refresh": LockClass(
        0x6B65656C,  # "keel"
        "clinic.refresh_control_tower: a session lock, object 300; a second refresh skips instead of waiting.",
    ),
    "live_feed": LockClass(
        1818850917,  # "live"
        "sql/callmaster/700_live_feed.sql: object 1, the doorbell feed writers hold shared until they commit; "
        "object 2, held shared for a session by each CallMaster live relay that sleeps (waits for NOTIFY).",
    ),
    "idempotency": LockClass(
        0x6964656D,  # "idem"
        "api/idempotency.py: a transaction lock per principal and Idempotency-Key (object hashtext of both).",
    ),
}

_REGISTRY_FUNCTION = """
CREATE OR REPLACE FUNCTION keel.advisory_lock_key(p_purpose text)
    RETURNS integer
    LANGUAGE plpgsql
    IMMUTABLE
    PARALLEL SAFE
AS $$
DECLARE
    v_key integer := CASE p_purpose {cases} END;
BEGIN
    IF v_key IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('no advisory lock is registered for %L', p_purpose),
            HINT = 'The registry is LOCKS in api/locks.py.';
    END IF;
    RETURN v_key;
END
$$;
COMMENT ON FUNCTION keel.advisory_lock_key(text) IS {comment};
REVOKE ALL ON FUNCTION keel.advisory_lock_key(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION keel.advisory_lock_key(text) TO keel_api, keel_worker;
"""


def registry_sql() -> sql.Composed:
    """`keel.advisory_lock_key(purpose)`, generated from `LOCKS` (run by every migrate, as keel_owner)."""
    cases = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(purpose), sql.Literal(lock.key))
        for purpose, lock in LOCKS.items()
    )
    comment = (
        "The first key of the advisory lock of a purpose (generated from api/locks.py by keel migrate): "
        + "; ".join(f"{purpose}: {lock.use}" for purpose, lock in LOCKS.items())
        + " Raises 22023 for an unregistered purpose."
    )
    return sql.SQL(_REGISTRY_FUNCTION).format(cases=cases, comment=sql.Literal(comment))
