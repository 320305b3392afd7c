"""Internal assistant: staff chat answered asynchronously by an LLM worker, followed over SSE.

Endpoints (DESIGN §6), all scoped to the caller's clinic and staff member (another's rows answer 404):

- `POST /api/internal-assistant/chat` `{message, conversation_id?}` → 202 `{message_id, conversation_id,
  user_message_id, status: "queued"}` + `Location`. One SQL call (`assistant.post_chat`) inserts the user
  message, the queued assistant message (and the conversation when new); a trigger NOTIFYs the workers.
  Honours `Idempotency-Key`. Without an LLM configured: 503 naming OPENAI_API_KEY / OPENAI_BASE_URL /
  KEEL_ASSISTANT_MODEL.
- `GET /api/internal-assistant/messages/{id}`: status, text so far, attempts, error, tool calls, timings.
- `GET /api/internal-assistant/messages/{id}/events`: SSE — `delta` `{"text"}` (id `<attempt>:<offset>`),
  then `done` or `error`; `reset` when a restarted reply's earlier text must be discarded; `Last-Event-ID`
  resumes; keep-alive comments (`api/assistant/events.py`).
- `GET /api/internal-assistant/conversations/{id}?limit=&offset=`: the conversation and a page of messages.

The worker (`api/assistant/worker.py`, in `api.workers.WORKERS`) runs under `keel serve` or `keel worker`.
Read-only tools for the model: `api/assistant/tools.py` over `sql/assistant/040_tools.sql`.

Settings (environment): `OPENAI_API_KEY`, `OPENAI_BASE_URL` (any OpenAI-compatible server),
`KEEL_ASSISTANT_MODEL` (gpt-4o-mini), `KEEL_ASSISTANT_TIMEOUT` (60 s without progress from the LLM),
`KEEL_ASSISTANT_CONCURRENCY` (16 replies in flight per worker), `KEEL_ASSISTANT_LEASE_SECONDS` (30),
`KEEL_ASSISTANT_MAX_ATTEMPTS` (5), `KEEL_ASSISTANT_RETRY_BASE` (1 s, doubling, jittered; Retry-After wins),
`KEEL_ASSISTANT_POLL_INTERVAL` (2 s, besides LISTEN), `KEEL_ASSISTANT_SSE_KEEPALIVE` (15 s).

For a DBA: `SELECT status, attempts, error FROM assistant.messages WHERE …`; a raw `INSERT` of an
assistant message with status `queued` is answered like any other; a failed reply is retried by
`UPDATE assistant.messages SET status = 'queued', available_at = now() WHERE id = …`.
"""

from api.assistant.routes import routes

__all__ = ["routes"]
