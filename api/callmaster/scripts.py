"""Scripts: `GET/POST /api/shows/{id}/scripts`, `GET/PATCH/DELETE /api/scripts/{id}`,
`POST /api/scripts/{id}/duplicate`.

Each handler is one call of a `callmaster.*` function (sql/callmaster/610_scripts.sql). Duplication is
`callmaster.duplicate_script`: a set-based deep copy of the script, its elements and every supporting
row, all internal references remapped, in one statement.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody
from msgspec import UNSET, Meta, UnsetType
from psycopg import sql
from psycopg.types.json import Jsonb

from api.callmaster.identity import merge_patch
from api.callmaster.shows import Name, Notes, Timestamp
from api.deps import CurrentPrincipal, Db, Page
from api.idempotency import Replay, run_idempotent

LIST_SHOW_SCRIPTS = "SELECT callmaster.list_show_scripts(%(id)s, %(limit)s, %(offset)s)"
CREATE_SCRIPT = "SELECT callmaster.create_script(%(id)s, %(data)s)"
GET_SCRIPT = "SELECT callmaster.get_script(%(id)s)"
UPDATE_SCRIPT = "SELECT callmaster.update_script(%(id)s, %(patch)s)"
DELETE_SCRIPT = "SELECT count(*) FROM callmaster.delete_script(%(id)s)"

ScriptStatus = Literal["draft", "copy", "working", "final", "backup"]

DUPLICATE_SCRIPT = sql.SQL("callmaster.duplicate_script_json(%(id)s, %(name)s, %(show_id)s)")
# An Idempotency-Key record keeps the copy's id only; a retry re-reads the script with the caller's rights
# now (a deactivated user, or one who lost the script, is answered as on any other call).
REPLAY_SCRIPT = Replay(sql.SQL("callmaster.get_script"))


class ScriptCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    notes: Notes | None = None
    status: ScriptStatus = "draft"
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None
    actual_start_time: Timestamp | None = None


class ScriptPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields sent change; `null` clears a field (name and status cannot be cleared)."""

    name: Name | UnsetType = UNSET
    notes: Notes | None | UnsetType = UNSET
    status: ScriptStatus | UnsetType = UNSET
    start_time: Timestamp | None | UnsetType = UNSET
    end_time: Timestamp | None | UnsetType = UNSET
    actual_start_time: Timestamp | None | UnsetType = UNSET


class DuplicateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Both optional: the copy is named "<name> (copy)" and stays in the same show by default."""

    name: Name | None = None
    show_id: Annotated[UUID | None, Meta(description="Another show of the same owner")] = None


@get("/api/shows/{show_id:uuid}/scripts", tags=["callmaster"], summary="The scripts of a show")
async def list_show_scripts(
    show_id: FromPath[UUID], db: Db, principal: CurrentPrincipal, pagination: Page
) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        LIST_SHOW_SCRIPTS,
        {"id": show_id, "limit": pagination.limit, "offset": pagination.offset},
    )


@post("/api/shows/{show_id:uuid}/scripts", tags=["callmaster"], summary="Create a script", status_code=201)
async def create_script(
    show_id: FromPath[UUID], data: JSONBody[ScriptCreate], db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        CREATE_SCRIPT,
        {"id": show_id, "data": Jsonb(msgspec.to_builtins(data))},
    )


@get("/api/scripts/{script_id:uuid}", tags=["callmaster"], summary="One script")
async def get_script(script_id: FromPath[UUID], db: Db, principal: CurrentPrincipal) -> dict[str, Any]:
    return await db.fetch_val(principal, GET_SCRIPT, {"id": script_id})


@patch("/api/scripts/{script_id:uuid}", tags=["callmaster"], summary="Change a script")
async def update_script(
    script_id: FromPath[UUID], data: JSONBody[ScriptPatch], db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        UPDATE_SCRIPT,
        {"id": script_id, "patch": Jsonb(merge_patch(data))},
    )


@delete(
    "/api/scripts/{script_id:uuid}",
    tags=["callmaster"],
    summary="Delete a script with its elements",
    description="Elements and every supporting row go in one transaction (callmaster.delete_script).",
    status_code=204,
)
async def delete_script(script_id: FromPath[UUID], db: Db, principal: CurrentPrincipal) -> None:
    await db.execute(principal, DELETE_SCRIPT, {"id": script_id})


@post(
    "/api/scripts/{script_id:uuid}/duplicate",
    tags=["callmaster"],
    summary="Deep-copy a script",
    description="Copies the script, every element and every supporting row, with parent and group "
    "references remapped into the copy (callmaster.duplicate_script). Body optional: {name?, show_id?}. "
    "Honours Idempotency-Key.",
    status_code=201,
)
async def duplicate_script(
    request: Request[Any, Any, Any],
    script_id: FromPath[UUID],
    db: Db,
    principal: CurrentPrincipal,
    data: JSONBody[DuplicateRequest | None] = None,
) -> Response[dict[str, Any]]:
    body = data or DuplicateRequest()
    payload = msgspec.to_builtins(body)
    outcome = await run_idempotent(
        db,
        principal,
        request,
        payload=payload,
        call=DUPLICATE_SCRIPT,
        params={"id": script_id, "name": body.name, "show_id": body.show_id},
        replay=REPLAY_SCRIPT,
    )
    headers = {**outcome.headers, "Location": f"/api/scripts/{outcome.body['id']}"}
    return Response(outcome.body, status_code=outcome.status_code, headers=headers)


routes = [list_show_scripts, create_script, get_script, update_script, delete_script, duplicate_script]
