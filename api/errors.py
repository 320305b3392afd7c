"""RFC 9457 problem documents, and the one place SQLSTATEs become HTTP statuses."""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from psycopg_pool import PoolTimeout

from api.redaction import redact_path

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "2"


class Problem(ProblemDetailsException):
    """An error answered as `application/problem+json` with `status`, `title`, `detail`, `code`."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body: dict[str, Any] = {"code": code} if code else {}
        body.update(extra or {})
        super().__init__(
            detail=detail,
            status_code=status,
            title=title or HTTPStatus(status).phrase,
            extra=body,
            headers=headers,
        )


@dataclass(frozen=True)
class Sqlstate:
    """What Keel does with one SQLSTATE (or a class of them): the one answer for the API, workers and CLIs."""

    status: int
    """HTTP status of the problem document."""
    transient: bool = False
    """The database was unavailable or the transaction lost a race: the same request, unchanged, may
    succeed later (workers retry it; the API answers 503 with `Retry-After`). Otherwise the request or the
    data must change first."""
    retried: bool = False
    """`api.db` re-runs the transaction at once, a few times, before answering `status`."""
    detail: str | None = None
    """Fixed detail for the client (the database's own message says nothing useful to it), else None."""


UNAVAILABLE = "The database is unavailable; try again shortly."
BAD_VALUE = "A value in the request is not valid for its field."

# SQLSTATE → behaviour. Keys are full codes or two-character classes; a full code wins over its class.
# Anything not listed is a server fault: logged, answered 500 without internals. DESIGN §6 is the contract.
SQLSTATES: dict[str, Sqlstate] = {
    "P0002": Sqlstate(404),  # no_data_found: no such row, or another tenant's (RLS hides it)
    "23505": Sqlstate(409),  # unique_violation
    "23P01": Sqlstate(409),  # exclusion_violation: e.g. overlapping appointments
    "55000": Sqlstate(
        409
    ),  # object_not_in_prerequisite_state: the row's state forbids it (status transition)
    "23503": Sqlstate(409),  # foreign_key_violation: 422 instead when the request named a missing row
    "23514": Sqlstate(422),  # check_violation
    "23502": Sqlstate(422),  # not_null_violation
    "22": Sqlstate(422),  # data_exception (class): bad value, bad format, out of range
    "42501": Sqlstate(403),  # insufficient_privilege
    "42883": Sqlstate(
        422, detail="A value in the request is outside the range its field accepts."
    ),  # undefined_function: no function for the argument types sent (an int above 2^31-1 travels as
    # bigint); the edge bounds every integer, this keeps any that slips past a 4xx
    "28000": Sqlstate(401),  # invalid_authorization_specification: the token's staff member is inactive or
    # gone (clinic.request_claims)
    "40001": Sqlstate(503, transient=True, retried=True),  # serialization_failure
    "40P01": Sqlstate(503, transient=True, retried=True),  # deadlock_detected
    "57014": Sqlstate(
        504, detail="The database took too long to answer."
    ),  # query_canceled: statement timeout
    "08": Sqlstate(503, transient=True, detail=UNAVAILABLE),  # connection_exception (class)
    "53300": Sqlstate(503, transient=True, detail=UNAVAILABLE),  # too_many_connections
    "57P01": Sqlstate(503, transient=True, detail=UNAVAILABLE),  # admin_shutdown
    "57P02": Sqlstate(503, transient=True, detail=UNAVAILABLE),  # crash_shutdown
    "57P03": Sqlstate(503, transient=True, detail=UNAVAILABLE),  # cannot_connect_now
}


def sqlstate_rule(sqlstate: str | None) -> Sqlstate | None:
    """The row of `SQLSTATES` for this code (exact, else its class); None for a server fault."""
    if not sqlstate:
        return None
    return SQLSTATES.get(sqlstate) or SQLSTATES.get(sqlstate[:2])


def status_for_sqlstate(sqlstate: str, detail: str = "") -> int | None:
    """HTTP status for a SQLSTATE a user can cause (DESIGN §6); None when it is a server fault."""
    if sqlstate == "23503" and "is not present" in detail:
        return 422  # the request named a row that does not exist (a delete hitting a used row stays 409)
    rule = sqlstate_rule(sqlstate)
    return rule.status if rule else None


def is_transient(exc: psycopg.Error) -> bool:
    """The database was unavailable (no SQLSTATE at all: the connection is gone) or the transaction lost a
    race: retrying the same work later may succeed."""
    if exc.sqlstate is None:
        return not isinstance(
            exc, psycopg.DataError
        )  # a DataError without SQLSTATE is psycopg refusing a value
    rule = sqlstate_rule(exc.sqlstate)
    return rule is not None and rule.transient


def is_retried(exc: psycopg.Error) -> bool:
    """`api.db` re-runs the transaction at once (serialization failure, deadlock)."""
    rule = sqlstate_rule(exc.sqlstate)
    return rule is not None and rule.retried


def describe_db_error(exc: psycopg.Error) -> str:
    """The database's message with its DETAIL and HINT lines, for a CLI or a log line."""
    diag = exc.diag
    lines = [(diag.message_primary or str(exc)).strip()]
    if diag.message_detail:
        lines.append(diag.message_detail)
    if diag.message_hint:
        lines.append(f"hint: {diag.message_hint}")
    return "\n".join(lines)


def raised_by_keel(exc: psycopg.Error) -> bool:
    """The error comes from a `RAISE` in Keel's own SQL (sql/), whose messages and DETAILs are written to
    name ids and the caller's own input, never other stored values. PostgreSQL's own errors quote values
    instead: every integrity DETAIL ("Failing row contains (…)", "Key (email)=(…) already exists") and the
    primary message of data exceptions (class 22: 'invalid input syntax for type date: "…"')."""
    return exc.diag.source_function == "exec_stmt_raise"


def _names(diag: Any) -> dict[str, str]:
    """The objects an error names (never a value): schema, table, column, constraint, data type."""
    fields = {
        "schema": diag.schema_name,
        "table": diag.table_name,
        "column": diag.column_name,
        "constraint": diag.constraint_name,
        "datatype": diag.datatype_name,
    }
    return {name: value for name, value in fields.items() if value}


def redacted(exc: BaseException) -> str:
    """A database error for a log line, without any value of a row (issue 13, finding 10): the SQLSTATE, the
    primary message (unless PostgreSQL's own data exception, which quotes the value), the names of the
    objects involved and the SQL functions it passed through; never the DETAIL. Any other exception as its
    own text."""
    if not isinstance(exc, psycopg.Error) or exc.sqlstate is None:
        return str(exc).strip()  # not from the server (connection lost, psycopg refusing a value): no row
    if exc.sqlstate.startswith("22") and not raised_by_keel(exc):
        message = "data exception"
    else:
        message = (exc.diag.message_primary or type(exc).__name__).strip()
    names = " ".join(f"{name}={value}" for name, value in _names(exc.diag).items())
    # Where in sql/ it happened: the function lines of the CONTEXT (its statement lines may quote values).
    where = [
        line.strip()
        for line in (exc.diag.context or "").splitlines()
        if line.startswith(("PL/pgSQL function", "SQL function"))
    ]
    return f"{exc.sqlstate} {message}" + (f" ({names})" if names else "") + "".join(f"; {w}" for w in where)


def problem_from_db_error(exc: psycopg.Error) -> Problem:
    diag = exc.diag
    sqlstate = exc.sqlstate or ""
    own = raised_by_keel(exc)
    status = status_for_sqlstate(sqlstate, diag.message_detail or "")
    if status is None:
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error("unmapped database error %s\nTraceback (values left out):\n%s", redacted(exc), frames)
        return Problem(500, "The server could not complete the request.", code=sqlstate or None)
    if sqlstate == "42883":  # the hint would only name SQL functions and types
        log.warning("argument out of its SQL type's range: %s", diag.message_primary)
        return Problem(status, SQLSTATES[sqlstate].detail or "", code=sqlstate)
    rule = sqlstate_rule(sqlstate)
    extra: dict[str, Any] = {}
    if diag.message_hint:
        extra["hint"] = diag.message_hint
    names = _names(diag)
    extra.update({name: names[name] for name in ("constraint", "column") if name in names})
    headers: dict[str, str] | None = None
    if status == 503:
        headers = {"Retry-After": RETRY_AFTER_SECONDS}
    elif status == 401:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    detail = rule.detail if rule else None
    if detail is None and sqlstate.startswith("22") and not own:
        detail = BAD_VALUE  # PostgreSQL's message quotes the value
    detail = detail or diag.message_primary or HTTPStatus(status).phrase  # str(exc) would hold the DETAIL
    if own and diag.message_detail and status in (409, 422):
        extra["db_detail"] = diag.message_detail  # PostgreSQL's own DETAILs quote rows: never sent
    return Problem(status, detail, code=sqlstate, extra=extra, headers=headers)


def _db_error(exc: psycopg.Error) -> Problem:
    if exc.sqlstate is None and isinstance(exc, psycopg.DataError):
        # Refused by psycopg before reaching the server, e.g. a NUL character in a text value.
        return Problem(422, f"The request holds a value PostgreSQL cannot store: {exc}")
    if exc.sqlstate is None:  # connection lost, server gone: no SQLSTATE to map
        log.warning("database connection error: %s", exc)
        return Problem(503, UNAVAILABLE, headers={"Retry-After": RETRY_AFTER_SECONDS})
    return problem_from_db_error(exc)


def _pool_timeout(exc: PoolTimeout) -> Problem:
    log.warning("connection pool exhausted: %s", exc)
    return Problem(
        503,
        "The server is busy: no database connection became free in time.",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def _http_exception(exc: HTTPException) -> Problem:
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationException) and exc.extra:
        extra["errors"] = exc.extra
    elif isinstance(exc.extra, dict):
        extra.update(exc.extra)
    detail = exc.detail or HTTPStatus(exc.status_code).phrase
    if exc.status_code == 401:
        headers = {"WWW-Authenticate": "Bearer", **(exc.headers or {})}
    else:
        headers = exc.headers
    return Problem(exc.status_code, detail, extra=extra, headers=headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, redact_path(request.url.path), exc_info=exc)
    return Problem(500, "The server could not complete the request.").to_response(request)


def problem_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            exception_to_problem_detail_map={
                HTTPException: _http_exception,
                psycopg.Error: _db_error,
                PoolTimeout: _pool_timeout,
            }
        )
    )


exception_handlers = {Exception: _unexpected}
