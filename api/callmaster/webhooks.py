"""`POST /api/webhooks/clerk`: Clerk user events, delivered by Svix, keep callmaster.users in step.

The signature is checked on the raw body before anything is parsed; the event is then applied by one
SQL call (`callmaster.apply_clerk_event`), idempotent by the `svix-id` header.
"""

from __future__ import annotations

import binascii
import logging
from typing import Any

import msgspec
from litestar import Request, post
from litestar.openapi.spec import OpenAPIType, Schema
from psycopg.types.json import Jsonb
from svix.webhooks import Webhook, WebhookVerificationError

from api.deps import AppSettings, Db
from api.errors import Problem
from api.openapi import raw_body_operation

APPLY_CLERK_EVENT = "SELECT callmaster.apply_clerk_event(%(event_id)s, %(event_type)s, %(data)s)"

log = logging.getLogger(__name__)

SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")
HANDLED_TYPES = frozenset({"user.created", "user.updated", "user.deleted"})


class ClerkEvent(msgspec.Struct):
    """The envelope of a Clerk webhook event (Clerk adds fields freely, so unknown ones are allowed)."""

    type: str
    data: dict[str, Any]


def _verifier(secret: str | None) -> Webhook:
    if not secret:
        raise Problem(
            503,
            "The Clerk webhook is not configured: set KEEL_CLERK_WEBHOOK_SECRET to the endpoint's "
            "signing secret.",
            code="webhook_not_configured",
        )
    try:
        return Webhook(secret)
    except (ValueError, binascii.Error) as exc:
        log.error("KEEL_CLERK_WEBHOOK_SECRET is not a valid whsec_ secret: %s", exc)
        raise Problem(
            503,
            "The Clerk webhook secret is malformed; expected whsec_<base64>.",
            code="webhook_not_configured",
        ) from exc


def verify(secret: str | None, body: bytes, headers: dict[str, str]) -> None:
    """Raise a problem unless `body` carries a valid, fresh Svix signature for `secret`."""
    webhook = _verifier(secret)
    missing = [name for name in SVIX_HEADERS if not headers.get(name)]
    if missing:
        log.warning("clerk webhook rejected: missing header(s) %s", ", ".join(missing))
        raise Problem(
            400, f"Missing webhook header(s): {', '.join(missing)}.", code="webhook_headers_missing"
        )
    try:
        webhook.verify(body, headers)
    except (WebhookVerificationError, ValueError) as exc:  # ValueError: malformed signature or body encoding
        log.warning("clerk webhook rejected (svix-id %s): %s", headers.get("svix-id"), exc)
        raise Problem(
            401, f"The webhook signature could not be verified: {exc}.", code="webhook_signature_invalid"
        ) from exc


@post(
    "/api/webhooks/clerk",
    tags=["callmaster"],
    summary="Clerk user events (Svix-signed)",
    description=(
        "user.created / user.updated upsert the user (a sign-up whose email matches a guest claims it), "
        "user.deleted deactivates; other types are acknowledged and ignored. Replays (same svix-id) change "
        "nothing. Bad, missing or stale signatures → 400/401 and nothing is written."
    ),
    status_code=200,
    security=[{}],
    operation_class=raw_body_operation(
        {
            "application/json": Schema(
                type=OpenAPIType.OBJECT,
                properties={"type": Schema(type=OpenAPIType.STRING), "data": Schema(type=OpenAPIType.OBJECT)},
                required=["type", "data"],
            )
        },
        "A Clerk event as Svix delivers it (the signature covers these exact bytes)",
        signature_headers=SVIX_HEADERS,
    ),
)
async def clerk_webhook(request: Request[Any, Any, Any], db: Db, settings: AppSettings) -> dict[str, Any]:
    body = await request.body()
    headers = {name: request.headers.get(name, "") for name in SVIX_HEADERS}
    verify(settings.clerk_webhook_secret, body, headers)
    try:
        event = msgspec.json.decode(body, type=ClerkEvent)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested beyond msgspec's limit
        raise Problem(
            400, f"The webhook body is not a Clerk event: {exc}.", code="webhook_body_invalid"
        ) from exc
    result: dict[str, Any] = await db.fetch_val(
        None,
        APPLY_CLERK_EVENT,
        {"event_id": headers["svix-id"], "event_type": event.type, "data": Jsonb(event.data)},
    )
    if event.type not in HANDLED_TYPES:
        log.info("clerk webhook: ignored event type %s (svix-id %s)", event.type, headers["svix-id"])
    else:
        outcome = result.get("outcome")
        log.info("clerk webhook: %s → %s (svix-id %s)", event.type, outcome, headers["svix-id"])
    return {"received": True, **result}


routes = [clerk_webhook]
