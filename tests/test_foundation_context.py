"""Each request runs as keel_api, with its claims visible to SQL, in its own transaction."""

from __future__ import annotations

from typing import Any

from litestar import get
from psycopg import pq

from api.app import create_app
from api.db import Database, call, context_params
from api.deps import CurrentPrincipal, Db
from tests.appointments_support import add_doctor, make_clinic
from tests.conftest import live_server

WHOAMI_SQL = """
SELECT current_user AS role,
       session_user AS login,
       keel.current_claims() AS claims,
       keel.current_clinic_id() AS clinic_id,
       keel.current_user_sub() AS sub,
       keel.current_role_claim() AS role_claim,
       current_setting('statement_timeout') AS statement_timeout,
       (SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user) AS bypass_rls
"""


@get("/test/whoami")
async def whoami(db: Db, principal: CurrentPrincipal) -> dict[str, Any]:
    return await db.fetch_one(principal, WHOAMI_SQL)


@get("/test/outside")
async def outside(db: Db) -> dict[str, Any]:
    return await db.fetch_one(None, "SELECT current_setting('request.jwt.claims', true) AS claims")


async def test_request_runs_as_keel_api_with_claims(settings, bearer, dba):
    clinic = make_clinic(dba)
    cro = str(add_doctor(dba, clinic.clinic_id, "Cee Ro", role="cro"))
    app = create_app(settings)
    app.register(whoami)
    app.register(outside)
    async with live_server(app) as client:
        # The token's role is stale (the staff member is a CRO): the request runs with the current one.
        response = await client.get(
            "/test/whoami", headers=bearer(cro, clinic_id=str(clinic.clinic_id), role="admin")
        )
        assert response.status_code == 200
        body = response.json()
        assert body["role"] == "keel_api"
        assert body["bypass_rls"] is False
        assert body["clinic_id"] == str(clinic.clinic_id)
        assert body["sub"] == cro
        assert body["role_claim"] == "cro"
        assert body["claims"]["clinic_id"] == str(clinic.clinic_id)
        assert body["statement_timeout"] == "5s"

        # Settings are transaction-local: the next transaction on a pooled connection sees none.
        for _ in range(3):
            later = await client.get("/test/outside")
            assert later.json()["claims"] in (None, "")


async def test_a_call_is_one_transaction_in_one_round_trip(settings, tmp_path):
    """Context statement, a statement before the call (e.g. a lock) and the call go out together and one
    Sync commits them: no BEGIN, no COMMIT."""
    db = Database(settings, settings.database_url)
    await db.open()
    trace = tmp_path / "libpq.trace"
    try:
        async with db.pool.connection() as conn:
            with trace.open("w") as sink:
                conn.pgconn.trace(sink.fileno())
                conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
                row = await call(
                    conn,
                    context_params(None, 1234),
                    WHOAMI_SQL,
                    None,
                    before=[("SELECT pg_advisory_xact_lock(%s)", (42,))],
                )
                conn.pgconn.untrace()
            after = await (await conn.execute("SELECT current_user AS role")).fetchone()
    finally:
        await db.close()
    assert row["role"] == "keel_api" and row["statement_timeout"] == "1234ms"
    assert after["role"] == row["login"]  # the role switch ended with the transaction
    sent = [
        line.split("\t")[2].split(" ")[0] for line in trace.read_text().splitlines() if line.startswith("F")
    ]
    assert sent.count("Sync") == 1
    assert sent.count("Execute") == 3
    assert "Query" not in sent  # no simple-protocol BEGIN/COMMIT
    received = [line for line in trace.read_text().splitlines() if line.startswith("B")]
    assert sum("ReadyForQuery" in line for line in received) == 1


def test_claim_helpers_are_null_outside_a_request_and_tolerate_bad_values(dba):
    row = dba.execute(
        "SELECT keel.current_claims(), keel.current_clinic_id(), keel.current_user_sub()"
    ).fetchone()
    assert row == (None, None, None)
    with dba.transaction():
        dba.execute(
            "SELECT set_config('request.jwt.claims', %s, true)", ('{"clinic_id": "not-a-uuid", "sub": "x"}',)
        )
        assert dba.execute("SELECT keel.current_clinic_id(), keel.current_user_sub()").fetchone() == (
            None,
            "x",
        )


def test_api_role_cannot_bypass_rls_and_cannot_log_in(dba):
    rows = {
        name: (login, bypass)
        for name, login, bypass in dba.execute(
            "SELECT rolname, rolcanlogin, rolbypassrls FROM pg_roles WHERE rolname IN ('keel_api', 'keel_owner')"
        )
    }
    assert rows["keel_api"] == (False, False)
    assert rows["keel_owner"][0] is False
