"""Each request runs as keel_api, with its claims visible to SQL, in its own transaction."""

from __future__ import annotations

from typing import Any

from litestar import get

from api.app import create_app
from api.deps import CurrentPrincipal, Db
from tests.conftest import live_server

CLINIC = "22222222-2222-2222-2222-222222222222"

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


async def test_request_runs_as_keel_api_with_claims(settings, bearer):
    app = create_app(settings)
    app.register(whoami)
    app.register(outside)
    async with live_server(app) as client:
        response = await client.get("/test/whoami", headers=bearer("staff-9", clinic_id=CLINIC, role="cro"))
        assert response.status_code == 200
        body = response.json()
        assert body["role"] == "keel_api"
        assert body["bypass_rls"] is False
        assert body["clinic_id"] == CLINIC
        assert body["sub"] == "staff-9"
        assert body["role_claim"] == "cro"
        assert body["claims"]["clinic_id"] == CLINIC
        assert body["statement_timeout"] == "5s"

        # Settings are transaction-local: the next transaction on a pooled connection sees none.
        for _ in range(3):
            later = await client.get("/test/outside")
            assert later.json()["claims"] in (None, "")


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
