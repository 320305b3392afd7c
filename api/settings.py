"""Configuration, read once from the environment.

Every variable is documented in the README; names here match it exactly.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _prepare_threshold(direct_url: str | None) -> int | None:
    """`KEEL_PREPARE_THRESHOLD`: psycopg's prepare_threshold; `off` never prepares. Unset: 5, or off when
    DATABASE_DIRECT_URL is set (DATABASE_URL is then a transaction pooler, which loses prepared statements)."""
    raw = (os.environ.get("KEEL_PREPARE_THRESHOLD") or "").strip().lower()
    if raw in ("off", "none"):
        return None
    if raw:
        return int(raw)
    return None if direct_url else 5


def default_data_dir() -> Path:
    return Path(os.environ.get("KEEL_DATA_DIR") or platformdirs.user_data_dir("keel"))


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    database_read_url: str | None = None
    # A session-capable URL (no transaction pooler) for LISTEN, session advisory locks, workers, the CLI
    # and migrations; unset = database_url. docs/scaling.md says which component uses which URL.
    database_direct_url: str | None = None
    # Dashboard reads go to database_read_url while its replay lag is at most this; past it, the primary.
    read_max_lag_seconds: float = 30.0
    # psycopg prepares a statement after this many executions; None never (needed behind PgBouncer 1.18).
    prepare_threshold: int | None = 5
    # `keel serve`: API processes sharing the port (KEEL_WEB_CONCURRENCY; --workers wins).
    web_concurrency: int = 1
    data_dir: Path = field(default_factory=default_data_dir)

    jwt_secret: str | None = None
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None

    encryption_keys: str | None = None
    clerk_webhook_secret: str | None = None
    notify_webhook_url: str | None = None
    notify_webhook_secret: str | None = None

    openai_api_key: str | None = None
    openai_base_url: str | None = None
    assistant_model: str = "gpt-4o-mini"
    assistant_timeout: float = 60.0
    assistant_concurrency: int = 16
    # Assistant worker: a claimed reply's lease (renewed while it streams), attempts before `failed`, the
    # first retry's delay (doubling, jittered), how often to poll besides LISTEN, and SSE keep-alive period.
    assistant_lease_seconds: float = 30.0
    assistant_max_attempts: int = 5
    assistant_retry_base: float = 1.0
    assistant_poll_interval: float = 2.0
    assistant_sse_keepalive: float = 15.0

    # CallMaster live (api/callmaster/live_relay.py): how often a busy relay polls, how long it stays
    # awake after the last event, how often it re-checks subscribers (revocation) and reports presence,
    # SSE keep-alive period, feed retention, share-link lookups per client and minute.
    live_poll_interval: float = 0.02
    live_linger: float = 2.0
    live_check_interval: float = 2.0
    live_sse_keepalive: float = 15.0
    live_retention_hours: float = 24.0
    share_link_rate_limit: int = 60

    pool_min_size: int = 2
    pool_max_size: int = 20
    pool_timeout: float = 5.0
    statement_timeout_ms: int = 5000
    max_body_bytes: int = 20 * 1024 * 1024

    log_level: str = "INFO"
    log_format: str = "auto"

    # Seconds between control-tower refreshes run by `keel serve` itself (0: off, leave it to cron/pg_cron).
    refresh_interval: float = 300.0

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ.get
        values: dict[str, object] = {
            "database_url": env("DATABASE_URL") or None,
            "database_read_url": env("DATABASE_READ_URL") or None,
            "database_direct_url": env("DATABASE_DIRECT_URL") or None,
            "read_max_lag_seconds": _float("KEEL_READ_MAX_LAG_SECONDS", 30.0),
            "prepare_threshold": _prepare_threshold(env("DATABASE_DIRECT_URL")),
            "web_concurrency": _int("KEEL_WEB_CONCURRENCY", 1),
            "data_dir": default_data_dir(),
            "jwt_secret": env("KEEL_JWT_SECRET") or None,
            "jwt_jwks_url": env("KEEL_JWT_JWKS_URL") or None,
            "jwt_audience": env("KEEL_JWT_AUDIENCE") or None,
            "jwt_issuer": env("KEEL_JWT_ISSUER") or None,
            "encryption_keys": env("KEEL_ENCRYPTION_KEYS") or None,
            "clerk_webhook_secret": env("KEEL_CLERK_WEBHOOK_SECRET") or None,
            "notify_webhook_url": env("KEEL_NOTIFY_WEBHOOK_URL") or None,
            "notify_webhook_secret": env("KEEL_NOTIFY_WEBHOOK_SECRET") or None,
            "openai_api_key": env("OPENAI_API_KEY") or None,
            "openai_base_url": env("OPENAI_BASE_URL") or None,
            "assistant_model": env("KEEL_ASSISTANT_MODEL") or "gpt-4o-mini",
            "assistant_timeout": _float("KEEL_ASSISTANT_TIMEOUT", 60.0),
            "assistant_concurrency": _int("KEEL_ASSISTANT_CONCURRENCY", 16),
            "assistant_lease_seconds": _float("KEEL_ASSISTANT_LEASE_SECONDS", 30.0),
            "assistant_max_attempts": _int("KEEL_ASSISTANT_MAX_ATTEMPTS", 5),
            "assistant_retry_base": _float("KEEL_ASSISTANT_RETRY_BASE", 1.0),
            "assistant_poll_interval": _float("KEEL_ASSISTANT_POLL_INTERVAL", 2.0),
            "assistant_sse_keepalive": _float("KEEL_ASSISTANT_SSE_KEEPALIVE", 15.0),
            "live_poll_interval": _float("KEEL_LIVE_POLL_INTERVAL", 0.02),
            "live_linger": _float("KEEL_LIVE_LINGER", 2.0),
            "live_check_interval": _float("KEEL_LIVE_CHECK_INTERVAL", 2.0),
            "live_sse_keepalive": _float("KEEL_LIVE_SSE_KEEPALIVE", 15.0),
            "live_retention_hours": _float("KEEL_LIVE_RETENTION_HOURS", 24.0),
            "share_link_rate_limit": _int("KEEL_SHARE_LINK_RATE_LIMIT", 60),
            "pool_min_size": _int("KEEL_POOL_MIN_SIZE", 2),
            "pool_max_size": _int("KEEL_POOL_MAX_SIZE", 20),
            "pool_timeout": _float("KEEL_POOL_TIMEOUT", 5.0),
            "statement_timeout_ms": _int("KEEL_STATEMENT_TIMEOUT_MS", 5000),
            "max_body_bytes": _int("KEEL_MAX_BODY_BYTES", 20 * 1024 * 1024),
            "log_level": env("KEEL_LOG_LEVEL") or "INFO",
            "log_format": env("KEEL_LOG_FORMAT") or "auto",
            "refresh_interval": _float("KEEL_REFRESH_INTERVAL", cls.refresh_interval),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def embedded(self) -> bool:
        return self.database_url is None

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
