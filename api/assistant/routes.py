"""HTTP endpoints of the internal assistant (DESIGN §6): post a chat message, read replies, follow them live."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.response import ServerSentEvent
from psycopg import sql

from api.assistant.events import hub_for, parse_last_event_id, reply_events, reply_progress
from api.deps import AppSettings, CurrentPrincipal, Db, Page
from api.errors import Problem
from api.idempotency import run_idempotent
from api.streams import AdmittedStream

TAGS = ["assistant"]
BASE = "/api/internal-assistant"

POST_CHAT = sql.SQL("assistant.post_chat(%(message)s, %(conversation_id)s, %(model)s)")
GET_MESSAGE = "SELECT assistant.get_message(%(id)s)"
GET_CONVERSATION = "SELECT assistant.get_conversation(%(id)s, %(limit)s, %(offset)s)"
LIST_CONVERSATIONS = "SELECT assistant.list_conversations(%(limit)s, %(offset)s)"


class ChatRequest(msgspec.Struct, forbid_unknown_fields=True):
    message: Annotated[
        str, msgspec.Meta(min_length=1, max_length=20000, description="What the staff member asks")
    ]
    conversation_id: Annotated[
        UUID | None, msgspec.Meta(description="Continue this conversation; omit to start a new one")
    ] = None


def _not_configured() -> Problem:
    return Problem(
        503,
        "The internal assistant has no LLM configured. Set OPENAI_API_KEY (and OPENAI_BASE_URL for any "
        "OpenAI-compatible server other than OpenAI's), and optionally KEEL_ASSISTANT_MODEL, then restart.",
        title="Assistant not configured",
        code="assistant_not_configured",
        extra={"settings": ["OPENAI_API_KEY", "OPENAI_BASE_URL", "KEEL_ASSISTANT_MODEL"]},
    )


@post(
    f"{BASE}/chat",
    tags=TAGS,
    summary="Ask the assistant: records the message and queues the reply (202)",
    status_code=202,
    opt={"error_statuses": (404,)},  # a conversation_id that is not the caller's
)
async def post_chat(
    request: Request[Any, Any, Any],
    data: JSONBody[ChatRequest],
    db: Db,
    principal: CurrentPrincipal,
    settings: AppSettings,
) -> Response[dict[str, Any]]:
    """Answers at once with the queued reply's id; follow it at `Location` or its `/events` stream.

    Honours `Idempotency-Key`: a retry with the same key and body returns the first answer.
    """
    if not settings.llm_configured:
        raise _not_configured()
    outcome = await run_idempotent(
        db,
        principal,
        request,
        payload=msgspec.to_builtins(data),
        call=POST_CHAT,
        params={
            "message": data.message,
            "conversation_id": data.conversation_id,
            "model": settings.assistant_model,
        },
        status_code=202,
    )
    body: dict[str, Any] = outcome.body
    headers = {"Location": f"{BASE}/messages/{body['message_id']}", **outcome.headers}
    return Response(body, status_code=outcome.status_code, headers=headers)


@get(
    f"{BASE}/messages/{{message_id:uuid}}",
    tags=TAGS,
    summary="A message: status, text so far, error, timings",
)
async def get_message(message_id: FromPath[UUID], db: Db, principal: CurrentPrincipal) -> dict[str, Any]:
    return await db.fetch_val(principal, GET_MESSAGE, {"id": message_id})


@get(
    f"{BASE}/messages/{{message_id:uuid}}/events",
    tags=TAGS,
    opt={"error_statuses": (429,)},  # past assistant_max_streams of the staff member (api.streams)
    summary="Server-Sent Events of a reply: delta…, then done or error",
)
async def message_events(
    request: Request[Any, Any, Any],
    message_id: FromPath[UUID],
    db: Db,
    principal: CurrentPrincipal,
    settings: AppSettings,
    last_event_id: Annotated[
        str | None,
        HeaderParameter(
            name="Last-Event-ID",
            required=False,
            max_length=200,
            description="Resume after this event id (`<attempt>:<offset>`); any other value starts over",
        ),
    ] = None,
) -> ServerSentEvent:
    """`delta` events (`{"text": …}`, id `<attempt>:<offset>`) as text arrives, then `done` or `error`.

    A late reader first gets everything written so far; `Last-Event-ID` resumes after that event; a
    `reset` event (`{"attempt": n}`) tells a reader to discard text of an abandoned attempt.
    """
    attempt, offset = parse_last_event_id(last_event_id)
    await reply_progress(db, principal, message_id, attempt, offset)  # 404 before the stream starts
    hub = hub_for(request.app.state, db)
    staff = (principal.clinic_id, principal.sub)
    return AdmittedStream(
        reply_events(db, principal, hub, settings, message_id, attempt, offset),
        lambda: hub.streams.admit(staff, settings.assistant_max_streams),
    )


@get(f"{BASE}/conversations/{{conversation_id:uuid}}", tags=TAGS, summary="A conversation and its messages")
async def get_conversation(
    conversation_id: FromPath[UUID], db: Db, principal: CurrentPrincipal, pagination: Page
) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        GET_CONVERSATION,
        {"id": conversation_id, "limit": pagination.limit, "offset": pagination.offset},
    )


@get(f"{BASE}/conversations", tags=TAGS, summary="The caller's conversations, newest first")
async def list_conversations(db: Db, principal: CurrentPrincipal, pagination: Page) -> dict[str, Any]:
    return await db.fetch_val(
        principal, LIST_CONVERSATIONS, {"limit": pagination.limit, "offset": pagination.offset}
    )


routes = [post_chat, get_message, message_events, list_conversations, get_conversation]
