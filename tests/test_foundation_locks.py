"""Advisory-lock keys come from one registry (api/locks.py) that SQL and Python share."""

from __future__ import annotations

import re

import psycopg
import pytest

from api.locks import LOCKS
from api.resources import SQL_DIR
from tests.test_foundation_imports import ROOT as API_DIR

# An advisory-lock call whose first key is a number written in place, not read from the registry.
LITERAL_KEY = re.compile(r"pg_(?:try_)?advisory_(?:xact_)?(?:un)?lock(?:_shared)?\(\s*-?\d", re.IGNORECASE)


def test_no_two_purposes_share_a_key() -> None:
    keys = [lock.key for lock in LOCKS.values()]
    assert len(set(keys)) == len(keys), {p: lock.key for p, lock in LOCKS.items()}
    assert all(-(2**31) <= key < 2**31 for key in keys)  # the first key of a two-key lock is an int4


def test_sql_reads_the_same_registry(dba: psycopg.Connection) -> None:
    registered = {
        purpose: dba.execute("SELECT keel.advisory_lock_key(%s)", (purpose,)).fetchone()[0]
        for purpose in LOCKS
    }
    assert registered == {purpose: lock.key for purpose, lock in LOCKS.items()}
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="no advisory lock is registered"):
        dba.execute("SELECT keel.advisory_lock_key('nobody')")


def test_every_lock_in_the_code_takes_its_key_from_the_registry() -> None:
    sources = [*API_DIR.rglob("*.py"), *SQL_DIR.rglob("*.sql")]
    literal = {str(path): LITERAL_KEY.findall(path.read_text()) for path in sources}
    assert {path: hits for path, hits in literal.items() if hits} == {}
    assert LITERAL_KEY.search("SELECT pg_try_advisory_lock_shared(1262831183, 2)")  # the check can fail


def test_the_refresh_lock_is_the_registered_one(dba: psycopg.Connection) -> None:
    # Holding the registered key makes a refresh skip: SQL really uses the registry's number.
    key = LOCKS["control_tower_refresh"].key
    with psycopg.connect(dba.info.dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, 300)", (key,))
        outcome = dba.execute("CALL clinic.refresh_control_tower()").fetchone()[0]
    assert outcome == "skipped"
