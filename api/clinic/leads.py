"""Leads: /api/leads, bulk import and conversion into a patient.

Sensitive fields are encrypted here, before any SQL sees them, and decrypted on the way out; the
database stores and compares only ciphertext and blind indexes.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any
from uuid import UUID, uuid4

from litestar import Request, Response, get, patch, post
from litestar.openapi.spec import OpenAPIType, Reference, Schema
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from psycopg import sql
from psycopg.types.json import Jsonb

from api.clinic import lead_import
from api.clinic.common import decrypt_lead, encrypt_lead_fields, keyring, require_clinic
from api.clinic.patients import REPLAY_PATIENT, patient_data
from api.clinic.schemas import (
    LEAD_ENCRYPTED_FIELDS,
    SEARCH_PATTERN,
    LeadConversion,
    LeadCreate,
    LeadStatus,
    LeadUpdate,
    normalize_mobile,
)
from api.crypto import Keyring, normalize_phone
from api.deps import LARGE_BODY, AppSettings, CurrentPrincipal, Db, Page
from api.errors import Problem
from api.idempotency import Replay, run_idempotent, run_idempotent_in
from api.openapi import raw_body_operation

CREATE_LEAD = sql.SQL("clinic.create_lead(%(data)s, %(matches)s)")
LIST_LEADS = (
    "SELECT clinic.list_leads(status => %(status)s, q => %(q)s, phone_matches => %(matches)s,"
    " assigned_to_id => %(assigned_to_id)s,"
    " page_limit => %(limit)s::integer, page_offset => %(offset)s::integer)"
)
GET_LEAD = "SELECT clinic.get_lead(%(id)s)"
UPDATE_LEAD = "SELECT clinic.update_lead(%(id)s, %(data)s)"
# An Idempotency-Key record keeps the lead's id and duplicate hint only (its name is personal data).
REPLAY_LEAD = Replay(sql.SQL("clinic.get_lead"), keep=("possible_duplicate_of",))
CONVERSION_FIELDS = tuple(LeadConversion.__struct_fields__)
MOBILE_RE = re.compile(r"^\+?[0-9]{6,15}$")  # patients_mobile_check
CONVERT_LEAD = sql.SQL("clinic.patient_json(clinic.convert_lead(%(lead_id)s, {args}))").format(
    args=sql.SQL(", ").join(
        sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in CONVERSION_FIELDS
    )
)
IMPORT_TIMEOUT_MS = 120_000
CSV_TYPES = ("text/csv", "application/csv", "text/plain")
_LEAD_ROWS = Schema(
    type=OpenAPIType.ARRAY,
    items=Reference(ref="#/components/schemas/LeadCreate"),
    max_items=lead_import.MAX_ROWS,
)
IMPORT_BODY: dict[str, Schema | Reference] = {
    "application/json": Schema(
        one_of=[
            _LEAD_ROWS,
            Schema(
                type=OpenAPIType.OBJECT,
                properties={"leads": _LEAD_ROWS},
                required=["leads"],
                additional_properties=False,
            ),
        ]
    ),
    "text/csv": Schema(
        type=OpenAPIType.STRING,
        description="A header row naming lead fields (each once; `name` and `phone` required), then one lead a row",
    ),
    "multipart/form-data": Schema(
        type=OpenAPIType.OBJECT,
        properties={"file": Schema(type=OpenAPIType.STRING, content_media_type="text/csv")},
        required=["file"],
    ),
}


@post("/api/leads", tags=["leads"], summary="Add a lead (honours Idempotency-Key)", status_code=201)
async def create_lead(
    request: Request[Any, Any, Any],
    db: Db,
    principal: CurrentPrincipal,
    settings: AppSettings,
    data: JSONBody[LeadCreate],
) -> Response[dict[str, Any]]:
    """The answer's `possible_duplicate_of` names the newest other lead with the same phone."""
    clinic_id = require_clinic(principal)
    ring = keyring(settings)
    clear = data.to_data()
    # The id is chosen here: the ciphertexts are bound to their row.
    lead_id = uuid4()
    outcome = await run_idempotent(
        db,
        principal,
        request,
        payload=_fingerprint_payload(ring, clear),
        call=CREATE_LEAD,
        params={
            "data": Jsonb({"id": str(lead_id), **encrypt_lead_fields(ring, clear, clinic_id, lead_id)}),
            "matches": ring.phone_matches(data.phone, str(clinic_id)),
        },
        replay=REPLAY_LEAD,
    )
    return Response(
        decrypt_lead(ring, outcome.body), status_code=outcome.status_code, headers=outcome.headers
    )


@get("/api/leads", tags=["leads"], summary="List leads (filters: status, name, exact phone, assignee)")
async def list_leads(
    db: Db,
    principal: CurrentPrincipal,
    settings: AppSettings,
    pagination: Page,
    status: FromQuery[LeadStatus | None] = None,
    q: Annotated[
        str | None,
        QueryParameter(
            min_length=1, max_length=200, pattern=SEARCH_PATTERN, description="Substring of the name"
        ),
    ] = None,
    phone: Annotated[
        str | None,
        QueryParameter(
            max_length=40,
            # as normalize_phone counts: 11 digits or more, only zeros, or 6 digits after leading zeros
            pattern=(
                r"^[^0-9\x00]*(([0-9][^0-9\x00]*){11,}|(0[^0-9\x00]*){6,}"
                r"|(0[^0-9\x00]*)*[1-9][^0-9\x00]*([0-9][^0-9\x00]*){5,})$"
            ),
            description="Exact phone (any formatting, at least 6 digits after leading zeros)",
        ),
    ] = None,
    assigned_to_id: FromQuery[UUID | None] = None,
) -> dict[str, Any]:
    clinic_id = require_clinic(principal)
    ring = keyring(settings)
    matches = None
    if phone is not None:
        if len(normalize_phone(phone)) < 6:
            raise Problem(400, "phone must contain at least 6 digits.", extra={"field": "phone"})
        matches = ring.phone_matches(phone, str(clinic_id))
    page = await db.fetch_val(
        principal,
        LIST_LEADS,
        {
            "status": status,
            "q": q.strip() or None if q else None,
            "matches": matches,
            "assigned_to_id": assigned_to_id,
            "limit": pagination.limit,
            "offset": pagination.offset,
        },
    )
    return pagination.page([decrypt_lead(ring, lead) for lead in page["items"]], page["total"])


@get("/api/leads/{lead_id:uuid}", tags=["leads"], summary="One lead, decrypted")
async def get_lead(
    db: Db, principal: CurrentPrincipal, settings: AppSettings, lead_id: FromPath[UUID]
) -> dict[str, Any]:
    require_clinic(principal)
    ring = keyring(settings)
    lead = await db.fetch_val(principal, GET_LEAD, {"id": lead_id})
    return decrypt_lead(ring, lead)


@patch(
    "/api/leads/{lead_id:uuid}",
    tags=["leads"],
    summary="Change a lead (status 'converted' only via /convert)",
)
async def update_lead(
    db: Db,
    principal: CurrentPrincipal,
    settings: AppSettings,
    lead_id: FromPath[UUID],
    data: JSONBody[LeadUpdate],
) -> dict[str, Any]:
    clinic_id = require_clinic(principal)
    ring = keyring(settings)
    lead = await db.fetch_val(
        principal,
        UPDATE_LEAD,
        {"id": lead_id, "data": Jsonb(encrypt_lead_fields(ring, data.to_data(), clinic_id, lead_id))},
    )
    return decrypt_lead(ring, lead)


@post(
    "/api/leads/{lead_id:uuid}/convert",
    tags=["leads"],
    summary="Convert a lead into a patient (honours Idempotency-Key)",
    status_code=201,
)
async def convert_lead(
    request: Request[Any, Any, Any],
    db: Db,
    principal: CurrentPrincipal,
    settings: AppSettings,
    lead_id: FromPath[UUID],
    data: JSONBody[LeadConversion],
) -> Response[dict[str, Any]]:
    """Answers the new patient; the lead becomes `converted` in the same transaction (409 the second time).

    Every patient field the lead holds defaults to it: `name`, `gender`, and `mobile` (the lead's
    phone, decrypted here — SQL cannot read it, so a body without `mobile` costs one read first)."""
    require_clinic(principal)
    sent = data.to_data()
    fields = patient_data(dict(sent))
    if fields.get("mobile") is None:
        fields["mobile"] = await _lead_mobile(db, principal, keyring(settings), lead_id)
    outcome = await run_idempotent(
        db,
        principal,
        request,
        payload=sent,
        call=CONVERT_LEAD,
        params={"lead_id": lead_id, **{name: fields.get(name) for name in CONVERSION_FIELDS}},
        replay=REPLAY_PATIENT,
    )
    return Response(outcome.body, status_code=outcome.status_code, headers=outcome.headers)


@post(
    "/api/leads/import",
    tags=["leads"],
    summary="Import up to 10,000 leads from a JSON array or a CSV (all or nothing unless partial=true;"
    " honours Idempotency-Key)",
    status_code=201,
    operation_class=raw_body_operation(IMPORT_BODY, "Leads as a JSON array (or `{leads: [...]}`) or a CSV"),
    opt=LARGE_BODY,
)
async def import_leads(
    request: Request[Any, Any, Any],
    db: Db,
    principal: CurrentPrincipal,
    settings: AppSettings,
    partial: Annotated[
        bool, QueryParameter(description="Import the good rows and report the bad ones")
    ] = False,
) -> Response[dict[str, Any]]:
    """Body: `application/json` (an array, or `{"leads": [...]}`), `text/csv` with a header row, or a
    `multipart/form-data` upload whose first file is the CSV. Every bad row is reported by its
    0-based position among the data rows. A retry with the same `Idempotency-Key` and upload gets
    the first answer and inserts nothing."""
    clinic_id = require_clinic(principal)
    ring = keyring(settings)
    raw, from_csv = await _upload(request)
    try:
        prepared = await lead_import.prepare_upload(ring, str(clinic_id), raw, from_csv=from_csv)
    except lead_import.ImportRejected as exc:
        raise Problem(422, exc.detail, code="22023", extra=exc.extra) from exc
    if prepared.total == 0:
        raise Problem(422, "There are no leads to import.", code="22023")
    if prepared.rejected and (not partial or not prepared.accepted):
        raise _rejected(prepared.rejected, prepared.total)
    async with db.transaction(principal, timeout_ms=IMPORT_TIMEOUT_MS) as conn:
        await lead_import.stage_prepared(conn, prepared)
        outcome = await run_idempotent_in(
            conn,
            principal,
            request,
            # The upload itself (by digest: it may be 10,000 rows), not the ciphertexts made from it.
            payload={"body": hashlib.sha256(raw).hexdigest(), "csv": from_csv, "partial": partial},
            call=lead_import.IMPORT_STAGED,
            params={"partial": partial},
        )
    result = outcome.body
    rejected = sorted(prepared.rejected + result["rejected"], key=lambda item: item["index"])
    if result["imported"] == 0:
        raise _rejected(rejected, prepared.total)
    return Response(
        {"imported": result["imported"], "rejected": rejected, "total_rows": prepared.total},
        status_code=outcome.status_code,
        headers=outcome.headers,
    )


async def _lead_mobile(db: Db, principal: CurrentPrincipal, ring: Keyring, lead_id: UUID) -> str:
    """The lead's phone as a patient mobile; 422 when it cannot be one (the value is not echoed)."""
    lead = decrypt_lead(ring, await db.fetch_val(principal, GET_LEAD, {"id": lead_id}))
    mobile = normalize_mobile(lead["phone"]) if lead.get("phone") else ""
    if not MOBILE_RE.match(mobile):
        raise Problem(
            422,
            "The lead's phone is not a usable mobile number (6-15 digits); send mobile.",
            code="22023",
            extra={"field": "mobile"},
        )
    return mobile


def _fingerprint_payload(ring: Keyring, clear: dict[str, Any]) -> dict[str, Any]:
    """The request as the idempotency fingerprint sees it: sensitive values only as keyed hashes."""
    return {
        name: ring.digest(value) if name in LEAD_ENCRYPTED_FIELDS and isinstance(value, str) else value
        for name, value in clear.items()
    }


def _rejected(rejected: list[dict[str, Any]], total: int) -> Problem:
    return Problem(
        422,
        f"{len(rejected)} of {total} rows are invalid; nothing was imported.",
        code="22023",
        extra={"errors": rejected},
    )


async def _upload(request: Request[Any, Any, Any]) -> tuple[bytes, bool]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form()
        for value in form.values():
            if hasattr(value, "read"):
                return await value.read(), True
        raise Problem(422, "The multipart upload has no file.", code="22023")
    if content_type in CSV_TYPES:
        return await request.body(), True
    if content_type in ("application/json", ""):
        return await request.body(), False
    raise Problem(
        415,
        f"Unsupported content type {content_type!r}: send application/json, text/csv or multipart/form-data.",
    )


routes: list[Any] = [create_lead, list_leads, get_lead, update_lead, convert_lead, import_leads]
