"""`Idempotency-Key` for creating POSTs: a retry with the same key and body gets the first answer.

Usage in a handler (the SQL call is an *expression* returning the JSON document to answer with):

    outcome = await run_idempotent(
        db, principal, idempotency_key(request),
        method=request.method, path=request.url.path, payload=msgspec.to_builtins(data),
        call=sql.SQL("clinic.create_patient(%(data)s)"), params={"data": Jsonb(payload)},
    )
    return Response(outcome.body, status_code=outcome.status_code, headers=outcome.headers)

Without a key this is one `SELECT <call>`. With a key it is one transaction: an advisory lock on the
key (pipelined with the main statement, so still one round trip) and one statement that either returns
the stored answer or runs the call and stores its result in `keel.idempotency_keys` — so the key and the
created rows commit together or not at all. What is stored is the SQL result, not the HTTP body: a
handler that decrypts fields for its answer keeps only ciphertext at rest.

Same key with another method, path or body → 422. A failed call stores nothing; a retry runs again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Request
from psycopg import sql
from psycopg.types.json import Jsonb

from api.db import Database, HasClaims
from api.errors import Problem

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")

# The scope (who owns a key) comes from the verified claims, in SQL: keel.idempotency_scope(), which the
# table's row-level security also checks (sql/keel/020_idempotency.sql).
_LOCK = sql.SQL(
    "SELECT pg_advisory_xact_lock(hashtextextended(keel.idempotency_scope() || '/' || %(_idem_key)s, 7))"
)

_RUN = sql.SQL(
    """
    WITH existing AS (
        SELECT k.method, k.path, k.request_hash, k.status_code, k.response_body
        FROM keel.idempotency_keys AS k
        WHERE k.principal = keel.idempotency_scope() AND k.key = %(_idem_key)s
    ), fresh AS MATERIALIZED (
        SELECT {call} AS body
        WHERE NOT EXISTS (SELECT FROM existing)
    ), stored AS (
        INSERT INTO keel.idempotency_keys (principal, key, method, path, request_hash, status_code, response_body)
        SELECT keel.idempotency_scope(), %(_idem_key)s, %(_idem_method)s, %(_idem_path)s, %(_idem_hash)s,
               %(_idem_status)s, fresh.body
        FROM fresh
        ON CONFLICT (principal, key) DO NOTHING
        RETURNING 1
    )
    SELECT false AS replayed, fresh.body, %(_idem_status)s AS status_code, NULL::text AS method,
           NULL::text AS path, NULL::text AS request_hash, (SELECT count(*) FROM stored) AS stored
    FROM fresh
    UNION ALL
    SELECT true, e.response_body, e.status_code, e.method, e.path, e.request_hash, 0
    FROM existing AS e
    """
)


@dataclass(frozen=True)
class Outcome:
    body: Any
    status_code: int
    replayed: bool

    @property
    def headers(self) -> dict[str, str]:
        return {REPLAY_HEADER: "true"} if self.replayed else {}


class _LostRace(Exception):
    """Another request stored this key between our check and our insert: roll back, then replay."""


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    """The request's Idempotency-Key header (None when absent); 400 when malformed."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if not _KEY_RE.match(value):
        raise Problem(
            400, f"{HEADER} must be 1-255 visible ASCII characters.", code="idempotency_key_invalid"
        )
    return value


def request_hash(method: str, path: str, payload: Any) -> str:
    canonical = json.dumps(
        [method.upper(), path, payload], sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def run_idempotent(
    db: Database,
    principal: HasClaims,
    key: str | None,
    *,
    method: str,
    path: str,
    payload: Any,
    call: sql.Composable,
    params: Mapping[str, Any],
    status_code: int = 201,
) -> Outcome:
    """Run `SELECT <call>` once per (caller, key); see the module docstring."""
    if key is None:
        body = await db.fetch_val(principal, sql.SQL("SELECT {call}").format(call=call), params)
        return Outcome(body, status_code, replayed=False)

    fingerprint = request_hash(method, path, payload)
    all_params = {
        **params,
        "_idem_key": key,
        "_idem_method": method.upper(),
        "_idem_path": path,
        "_idem_hash": fingerprint,
        "_idem_status": status_code,
    }
    query = _RUN.format(call=call)
    try:
        row = await _run_locked(db, principal, query, all_params)
    except _LostRace:
        row = await _run_locked(db, principal, query, all_params)
    if not row["replayed"]:
        return Outcome(row["body"], row["status_code"], replayed=False)
    if (row["method"], row["path"], row["request_hash"]) != (method.upper(), path, fingerprint):
        raise Problem(
            422,
            f"This {HEADER} was already used with a different request; use a new key for a new request.",
            code="idempotency_key_reused",
        )
    return Outcome(row["body"], row["status_code"], replayed=True)


async def _run_locked(
    db: Database, principal: HasClaims, query: sql.Composable, params: Mapping[str, Any]
) -> Any:
    row = await db.fetch_one(principal, query, params, before=[(_LOCK, params)])
    if row is None or (not row["replayed"] and row["stored"] == 0):
        raise _LostRace
    return row


__all__ = ["HEADER", "REPLAY_HEADER", "Jsonb", "Outcome", "idempotency_key", "run_idempotent"]
