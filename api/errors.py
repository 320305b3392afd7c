"""RFC 9457 problem documents, and the one place SQLSTATEs become HTTP statuses."""

from __future__ import annotations

import logging
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


def status_for_sqlstate(sqlstate: str, detail: str = "") -> int | None:
    """HTTP status for a SQLSTATE a user can cause (DESIGN §6); None when it is a server fault."""
    if sqlstate == "P0002":
        return 404
    if sqlstate in ("23505", "23P01", "55000"):  # 55000: the row's state forbids it (status transition)
        return 409
    if sqlstate == "23503":
        # The request named a row that does not exist (422), or a delete hit a row still in use (409).
        return 422 if "is not present" in detail else 409
    if sqlstate == "23514" or sqlstate == "23502" or sqlstate.startswith("22"):
        return 422
    if sqlstate == "42883":
        # No function for the argument types sent: a value outside its parameter's type (an int above
        # 2^31-1 travels as bigint). The edge bounds every integer; this keeps any that slips past a 4xx.
        return 422
    if sqlstate == "42501":
        return 403
    if sqlstate == "28000":  # the token no longer names an active staff member (clinic.request_claims)
        return 401
    if sqlstate in ("40001", "40P01"):
        return 503
    if sqlstate == "57014":
        return 504
    if sqlstate.startswith("08") or sqlstate in ("53300", "57P01", "57P02", "57P03"):
        return 503
    return None


def problem_from_db_error(exc: psycopg.Error) -> Problem:
    diag = exc.diag
    sqlstate = exc.sqlstate or ""
    status = status_for_sqlstate(sqlstate, diag.message_detail or "")
    if status is None:
        log.error("unmapped database error %s: %s", sqlstate, exc, exc_info=exc)
        return Problem(500, "The server could not complete the request.", code=sqlstate or None)
    if sqlstate == "42883":  # the hint would only name SQL functions and types
        log.warning("argument out of its SQL type's range: %s", diag.message_primary)
        return Problem(422, "A value in the request is outside the range its field accepts.", code=sqlstate)
    extra: dict[str, Any] = {}
    if diag.message_hint:
        extra["hint"] = diag.message_hint
    if diag.constraint_name:
        extra["constraint"] = diag.constraint_name
    headers = None
    detail = diag.message_primary or str(exc)
    if status == 503:
        headers = {"Retry-After": RETRY_AFTER_SECONDS}
        if sqlstate.startswith(("08", "57P")) or sqlstate == "53300":
            detail = "The database is unavailable; try again shortly."
    elif status == 504:
        detail = "The database took too long to answer."
    elif status == 401:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    elif diag.message_detail and status in (409, 422):
        extra["db_detail"] = diag.message_detail
    return Problem(status, detail, code=sqlstate, extra=extra, headers=headers)


def _db_error(exc: psycopg.Error) -> Problem:
    if exc.sqlstate is None and isinstance(exc, psycopg.DataError):
        # Refused by psycopg before reaching the server, e.g. a NUL character in a text value.
        return Problem(422, f"The request holds a value PostgreSQL cannot store: {exc}")
    if exc.sqlstate is None:  # connection lost, server gone: no SQLSTATE to map
        log.warning("database connection error: %s", exc)
        return Problem(
            503,
            "The database is unavailable; try again shortly.",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
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
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
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
