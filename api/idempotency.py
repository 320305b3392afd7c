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

An answer that carries personal data (a patient, a lead's name, a guest's email) is not stored at all:
pass `replay=Replay(sql.SQL("clinic.get_patient"))` and only the row's id (and the `keep` keys) is
stored; a retry answers the stored keys merged with the row as `get_patient(id)` reads it then. So
`keel.idempotency_keys` never holds personal data, and a replay shows the row as it is now.

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
from psycopg import AsyncConnection, sql
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
               %(_idem_status)s,
               CASE WHEN %(_idem_keep)s::text[] IS NULL THEN fresh.body
                    ELSE (SELECT jsonb_object_agg(f.key, f.value) FROM jsonb_each(fresh.body) AS f
                          WHERE f.key = ANY (%(_idem_keep)s::text[])) END
        FROM fresh
        ON CONFLICT (principal, key) DO NOTHING
        RETURNING 1
    )
    SELECT false AS replayed, fresh.body, %(_idem_status)s AS status_code, NULL::text AS method,
           NULL::text AS path, NULL::text AS request_hash, (SELECT count(*) FROM stored) AS stored
    FROM fresh
    UNION ALL
    SELECT true, {replay}, e.status_code, e.method, e.path, e.request_hash, 0
    FROM existing AS e
    """
)


@dataclass(frozen=True)
class Replay:
    """Store only `ref` (the row's id key) and `keep` of an answer; a retry re-reads the row with
    `reader(id)`, a SQL function returning its JSON (e.g. clinic.get_patient)."""

    reader: sql.Composable
    ref: str = "id"
    keep: tuple[str, ...] = ()

    def stored_keys(self) -> list[str]:
        return [self.ref, *self.keep]

    def expression(self) -> sql.Composable:
        return sql.SQL("e.response_body || {reader}((e.response_body ->> {ref})::uuid)").format(
            reader=self.reader, ref=sql.Literal(self.ref)
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
    replay: Replay | None = None,
) -> Outcome:
    """Run `SELECT <call>` once per (caller, key); see the module docstring."""
    if key is None:
        body = await db.fetch_val(principal, sql.SQL("SELECT {call}").format(call=call), params)
        return Outcome(body, status_code, replayed=False)

    query, all_params = _statement(principal, key, method, path, payload, call, params, status_code, replay)
    try:
        row = await _run_locked(db, principal, query, all_params)
    except _LostRace:
        row = await _run_locked(db, principal, query, all_params)
    return _outcome(row, method, path, all_params["_idem_hash"])


async def run_idempotent_in(
    conn: AsyncConnection[dict[str, Any]],
    principal: HasClaims,
    key: str | None,
    *,
    method: str,
    path: str,
    payload: Any,
    call: sql.Composable,
    params: Mapping[str, Any],
    status_code: int = 201,
    replay: Replay | None = None,
) -> Outcome:
    """`run_idempotent` inside the caller's transaction on `conn` (`Database.transaction`), for a call
    that needs statements before it, such as a COPY that stages rows: a replay runs those for nothing
    (they roll back with the staging table) and answers the stored result."""
    if key is None:
        cur = await conn.execute(sql.SQL("SELECT {call} AS body").format(call=call), params)
        row = await cur.fetchone()
        assert row is not None
        return Outcome(row["body"], status_code, replayed=False)
    query, all_params = _statement(principal, key, method, path, payload, call, params, status_code, replay)
    await conn.execute(_LOCK, all_params)
    row = await (await conn.execute(query, all_params)).fetchone()
    if row is None or (not row["replayed"] and row["stored"] == 0):
        # Not reachable while the advisory lock is held; a clear answer all the same.
        raise Problem(
            409, f"A request with this {HEADER} is still running; retry it.", code="idempotency_key_busy"
        )
    return _outcome(row, method, path, all_params["_idem_hash"])


def _statement(
    principal: HasClaims,
    key: str,
    method: str,
    path: str,
    payload: Any,
    call: sql.Composable,
    params: Mapping[str, Any],
    status_code: int,
    replay: Replay | None,
) -> tuple[sql.Composable, dict[str, Any]]:
    all_params = {
        **params,
        "_idem_key": key,
        "_idem_method": method.upper(),
        "_idem_path": path,
        "_idem_hash": request_hash(method, path, payload),
        "_idem_status": status_code,
        "_idem_keep": replay.stored_keys() if replay else None,
    }
    answer = replay.expression() if replay else sql.SQL("e.response_body")
    return _RUN.format(call=call, replay=answer), all_params


def _outcome(row: Any, method: str, path: str, fingerprint: str) -> Outcome:
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


__all__ = [
    "HEADER",
    "REPLAY_HEADER",
    "Jsonb",
    "Outcome",
    "Replay",
    "idempotency_key",
    "run_idempotent",
    "run_idempotent_in",
]
