"""Configuration: one typed `Settings`, read once from the environment.

Each setting is one field: its type, `env("VARIABLE", default)`, and a docstring under it. `from_env`
reads every field's variable (parsed by the field's type); an empty variable means the default. The
README's configuration table lists the same variables for operators.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs



def _flag(raw: str) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off (any case)."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{raw!r} is not a yes/no value (true/false, 1/0, yes/no, on/off)")


_PARSERS: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "Path": Path, "bool": _flag}


def env(name: str | None, default: Any = None, parse: Callable[[str], Any] | None = None) -> Any:
    """A field read from the environment variable `name` (None: set in code only, never from the shell);
    `parse` reads the variable when the field's type alone cannot."""
    return field(default=default, metadata={"env": name, "parse": parse})


def _prepare_threshold(raw: str) -> int | None:
    """`KEEL_PREPARE_THRESHOLD`: a count, or `off` (`none`) never to prepare."""
    return None if raw.strip().lower() in ("off", "none") else int(raw)


@dataclass(frozen=True)
class Settings:
    database_url: str | None = env("DATABASE_URL")
    """PostgreSQL URL; unset: the embedded server under `data_dir`."""
    database_read_url: str | None = env("DATABASE_READ_URL")
    """A streaming replica for dashboard reads."""
    database_direct_url: str | None = env("DATABASE_DIRECT_URL")
    """A session-capable URL (no transaction pooler) for LISTEN, session advisory locks, workers, the CLI
    and migrations; unset: `database_url`. docs/scaling.md says which component uses which URL."""
    read_max_lag_seconds: float = env("KEEL_READ_MAX_LAG_SECONDS", 30.0)
    """Dashboard reads go to `database_read_url` while its replay lag is at most this; past it, the primary."""
    prepare_threshold: int | None = env("KEEL_PREPARE_THRESHOLD", 5, parse=_prepare_threshold)
    """psycopg prepares a statement after this many executions; `off` never (needed behind PgBouncer 1.18).
    Unset: 5, or off when `DATABASE_DIRECT_URL` is set (`DATABASE_URL` is then a transaction pooler, which
    loses prepared statements)."""
    web_concurrency: int = env("KEEL_WEB_CONCURRENCY", 1)
    """`keel serve`: API processes sharing the port (`--workers` wins)."""
    data_dir: Path = field(
        default_factory=lambda: Path(platformdirs.user_data_dir("keel")), metadata={"env": "KEEL_DATA_DIR"}
    )
    """Embedded mode: PostgreSQL data, generated JWT secret, encryption key and webhook secret."""

    jwt_secret: str | None = env("KEEL_JWT_SECRET")
    """HS256 secret for bearer tokens (generated in the data dir in embedded mode)."""
    jwt_jwks_url: str | None = env("KEEL_JWT_JWKS_URL")
    """JWKS URL for RS256 tokens (Clerk)."""
    jwt_audience: str | None = env("KEEL_JWT_AUDIENCE")
    """When set, tokens must carry this `aud`."""
    jwt_issuer: str | None = env("KEEL_JWT_ISSUER")
    """When set, tokens must carry this `iss`."""

    encryption_keys: str | None = env("KEEL_ENCRYPTION_KEYS")
    """Lead field keys `key_id:base64(32 bytes)`, comma-separated, oldest first; the last encrypts."""
    accept_v1_ciphertexts: bool = env("KEEL_ACCEPT_V1_CIPHERTEXTS", False)
    """Read lead fields still in the v1 format (encrypted before values were bound to their clinic and
    row, so one copied elsewhere decrypts there) and match their v1 phone indexes. Off: they read as
    unreadable until `keel keys rotate` rewrites them; on only for the upgrade window."""
    clerk_webhook_secret: str | None = env("KEEL_CLERK_WEBHOOK_SECRET")
    """Svix signing secret (`whsec_…`) of the Clerk webhook; unset: the webhook answers 503."""

    notify_webhook_url: str | None = env("KEEL_NOTIFY_WEBHOOK_URL")
    """Where the outbox dispatcher POSTs events; unset: events are logged and marked delivered."""
    notify_webhook_secret: str | None = env("KEEL_NOTIFY_WEBHOOK_SECRET")
    """Standard Webhooks signing secret (`whsec_<base64>`), generated in embedded mode."""
    notify_timeout: float = env("KEEL_NOTIFY_TIMEOUT", 10.0)
    """Seconds a receiver gets to answer one delivery."""
    notify_connect_timeout: float = env(None, 3.0)
    """Seconds to connect to the receiver (capped by `notify_timeout`)."""
    outbox_batch_size: int = env("KEEL_OUTBOX_BATCH_SIZE", 50)
    """Events claimed per round trip."""
    outbox_concurrency: int = env("KEEL_OUTBOX_CONCURRENCY", 8)
    """Deliveries in flight at once per dispatcher."""
    outbox_poll_interval: float = env("KEEL_OUTBOX_POLL_INTERVAL", 5.0)
    """Seconds between polls when no NOTIFY arrives (covers lost notifications and delayed retries)."""
    outbox_busy_poll_interval: float = env("KEEL_OUTBOX_BUSY_POLL_INTERVAL", 0.05)
    """Seconds between polls while awake (events keep coming; writers do not NOTIFY meanwhile)."""
    outbox_linger: float = env("KEEL_OUTBOX_LINGER", 2.0)
    """Seconds without a new event after which an awake dispatcher goes back to waiting for NOTIFY."""
    outbox_lease_seconds: float = env("KEEL_OUTBOX_LEASE_SECONDS", 60.0)
    """How long a claimed event is reserved; `from_env` keeps it above `notify_timeout`."""
    outbox_max_attempts: int = env("KEEL_OUTBOX_MAX_ATTEMPTS", 12)
    """Attempts before an event is marked failed."""
    outbox_backoff_base: float = env("KEEL_OUTBOX_BACKOFF_BASE", 5.0)
    """Seconds before the first retry; doubled per attempt (with ±20 % jitter)."""
    outbox_backoff_max: float = env("KEEL_OUTBOX_BACKOFF_MAX", 3600.0)
    """The longest wait between two attempts, in seconds."""
    outbox_retention_hours: float = env("KEEL_OUTBOX_RETENTION_HOURS", 168.0)
    """Delivered events are deleted after this long (failed ones are kept)."""
    outbox_prune_interval: float = env(None, 300.0)
    """Seconds between two prunes of delivered events by one dispatcher."""
    outbox_listen_keepalive: float = env(None, 30.0)
    """Seconds of LISTEN silence after which the dispatcher probes its connection."""

    openai_api_key: str | None = env("OPENAI_API_KEY")
    """Key of the LLM behind the internal assistant; unset: chat answers 503 naming it."""
    openai_base_url: str | None = env("OPENAI_BASE_URL")
    """Any OpenAI-compatible server."""
    assistant_model: str = env("KEEL_ASSISTANT_MODEL", "gpt-4o-mini")
    """Model name sent to the LLM."""
    assistant_timeout: float = env("KEEL_ASSISTANT_TIMEOUT", 60.0)
    """Seconds without progress from the LLM before an attempt is abandoned and retried."""
    assistant_concurrency: int = env("KEEL_ASSISTANT_CONCURRENCY", 16)
    """Replies in flight per worker process."""
    assistant_lease_seconds: float = env("KEEL_ASSISTANT_LEASE_SECONDS", 30.0)
    """Lease on a claimed reply (renewed while it streams); a dead worker's reply is taken over after it."""
    assistant_max_attempts: int = env("KEEL_ASSISTANT_MAX_ATTEMPTS", 5)
    """Attempts before a reply is `failed` with a readable error."""
    assistant_retry_base: float = env("KEEL_ASSISTANT_RETRY_BASE", 1.0)
    """Seconds before the first retry (doubling, jittered; a provider's `Retry-After` wins)."""
    assistant_poll_interval: float = env("KEEL_ASSISTANT_POLL_INTERVAL", 2.0)
    """Seconds between polls besides `NOTIFY` wake-ups."""
    assistant_sse_keepalive: float = env("KEEL_ASSISTANT_SSE_KEEPALIVE", 15.0)
    """Seconds between SSE keep-alive comments."""
    assistant_max_streams: int = env("KEEL_ASSISTANT_MAX_STREAMS", 20)
    """Reply streams (`…/messages/{id}/events`) one staff member may hold open per API process; one more
    answers 429 with `Retry-After` (each stream re-reads its reply on every wake-up)."""

    live_poll_interval: float = env("KEEL_LIVE_POLL_INTERVAL", 0.02)
    """CallMaster live (api/callmaster/live_relay.py): seconds between polls of a busy relay."""
    live_linger: float = env("KEEL_LIVE_LINGER", 2.0)
    """Seconds a relay stays awake after the last event."""
    live_check_interval: float = env("KEEL_LIVE_CHECK_INTERVAL", 2.0)
    """Seconds between re-checks of the subscribers (revocation) and presence reports."""
    live_sse_keepalive: float = env("KEEL_LIVE_SSE_KEEPALIVE", 15.0)
    """Seconds between keep-alive comments on a live SSE stream."""
    live_stall_timeout: float = env("KEEL_LIVE_STALL_TIMEOUT", 30.0)
    """Seconds a live stream's client may leave its socket full (not reading) before it is disconnected,
    dropping what was buffered for it; it resumes with Last-Event-ID."""
    live_retention_hours: float = env("KEEL_LIVE_RETENTION_HOURS", 24.0)
    """Live feed events are deleted after this long."""
    live_max_streams: int = env("KEEL_LIVE_MAX_STREAMS", 300)
    """Live streams one follower (a CallMaster user, or a share link) may hold open per API process; one
    more answers 429 with `Retry-After`. A crew's devices on one link fit; a client opening streams in a
    loop no longer takes every connection of the process."""
    share_link_rate_limit: int = env("KEEL_SHARE_LINK_RATE_LIMIT", 60)
    """Share-link lookups per client address and minute, across every API process (keel.rate_limits)."""
    forwarded_allow_ips: str = env("KEEL_FORWARDED_ALLOW_IPS", "127.0.0.1")
    """`keel serve`: the proxies (load balancers) whose `X-Forwarded-For`/`-Proto` are believed, as
    comma-separated addresses or networks (`*`: any). Per-client limits count the client they name; behind
    a proxy not listed, every client counts as the proxy."""

    pool_min_size: int = env("KEEL_POOL_MIN_SIZE", 2)
    """Connections the pool keeps open."""
    pool_max_size: int = env("KEEL_POOL_MAX_SIZE", 20)
    """Most connections the pool opens."""
    pool_timeout: float = env("KEEL_POOL_TIMEOUT", 5.0)
    """Seconds to wait for a free connection before answering 503 with `Retry-After`."""
    ready_timeout: float = env("KEEL_READY_TIMEOUT", 2.0)
    """Seconds `/api/ready` waits for a connection, and as many for the database's answer, before
    answering 503 with `Retry-After` (a stalled pool or network never hangs the probe)."""
    statement_timeout_ms: int = env("KEEL_STATEMENT_TIMEOUT_MS", 5000)
    """Per-request statement timeout (exceeded: 504)."""
    max_body_bytes: int = env("KEEL_MAX_BODY_BYTES", 20 * 1024 * 1024)
    """Largest request body of the bulk routes (lead import, element writes, bulk update, edit batches;
    larger: 413)."""
    max_json_body_bytes: int = env("KEEL_MAX_JSON_BODY_BYTES", 2 * 1024 * 1024)
    """Largest request body of every other route (larger: 413). Its bodies are a few fields of bounded
    length; a JSON body costs its process about 25 times its size to decode, on the event loop."""

    log_level: str = env("KEEL_LOG_LEVEL", "INFO")
    """Log level."""
    log_format: str = env("KEEL_LOG_FORMAT", "auto")
    """`json`, `text`, or `auto` (JSON when stderr is not a terminal)."""

    refresh_interval: float = env("KEEL_REFRESH_INTERVAL", 300.0)
    """Seconds between control-tower refreshes run by `keel serve` itself (0: off, leave it to cron/pg_cron)."""

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Every field from its environment variable (empty or unset: the default), then `overrides`."""
        values: dict[str, Any] = {}
        for item in fields(cls):
            name = item.metadata["env"]
            raw = os.environ.get(name) if name else None
            if raw:
                kind = str(item.type).removesuffix(" | None")
                values[item.name] = (item.metadata.get("parse") or _PARSERS.get(kind, str))(raw)
        values.update(overrides)
        if "prepare_threshold" not in values and values.get("database_direct_url"):
            values["prepare_threshold"] = None  # DATABASE_URL is a transaction pooler: never prepare
        settings = cls(**values)
        if settings.outbox_lease_seconds <= settings.notify_timeout:  # a lease must outlive a delivery
            return cls(**{**values, "outbox_lease_seconds": settings.notify_timeout * 2 + 5})
        return settings

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def llm_configured(self) -> bool:
        """An LLM is configured when OPENAI_API_KEY or OPENAI_BASE_URL (any compatible server) is set.
        (Here, not beside the assistant worker: an API process that only answers requests never imports
        `openai`, ~1 s of CPU at every start.)"""
        return bool(self.openai_api_key or self.openai_base_url)

    @property
    def direct_url(self) -> str | None:
        """The URL for components that need a session (LISTEN, session locks): never a pooler's."""
        return self.database_direct_url or self.database_url

    def data_file(self, name: str) -> Path:
        return self.data_dir / name

    def local_secret(self, name: str, nbytes: int = 32) -> str:
        """A secret generated once and kept in the data dir (embedded/dev mode only)."""
        path = self.data_file(name)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(nbytes))
        return path.read_text().strip()

    def resolved_jwt_secret(self) -> str | None:
        if self.jwt_secret:
            return self.jwt_secret
        if self.embedded and not self.jwt_jwks_url:
            return self.local_secret("jwt-secret")
        return None
