"""Settings, read once from the environment (and `.env`)."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Literal

from limits import parse
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./data/assistants.db"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    log_level: str = "INFO"
    demo: bool = False

    default_model: str = "gpt-4o-mini"
    avatars_dir: Path = Path("./data/avatars")
    max_body_bytes: int = 1024 * 1024
    max_avatar_bytes: int = 2 * 1024 * 1024

    # SQLite durability: NORMAL in WAL mode never corrupts; FULL also survives power loss.
    sqlite_synchronous: str = "FULL"
    # Deprecated: DATABASE_TIMEOUT_SECONDS bounds the SQLite write-lock wait; when set, this
    # replaces it for that wait only (milliseconds). See docs/database-faults.md.
    sqlite_busy_timeout_ms: int | None = None

    graphql_introspection: bool = True
    graphql_max_depth: int = 10
    graphql_max_aliases: int = 15
    graphql_max_tokens: int = 2000
    graphql_max_root_fields: int = 10
    graphql_max_cost: int = 25_000  # list items an operation's answer may hold
    graphql_points: int = 10_000  # per API key (or client address) per minute; see ratelimit.py
    # Automatic persisted queries: documents kept in the database (0: off); see graphql/persisted.py
    graphql_persisted_max: int = 10_000
    # An Apollo persisted-query manifest: when set, only its operations run
    graphql_trusted_documents: Path | None = None

    revisions_keep: int | None = None  # REVISIONS_KEEP=N keeps the newest N per assistant
    rate_limit: str = "500/minute"  # per API key (or client address), per process
    # Origins allowed to call the API from a browser, comma-separated; empty: CORS closed.
    cors_allow_origins: str = ""

    # Live changes (GET /orgs/{org_id}/events and the assistantChanged subscription).
    events_poll_interval: float = 0.2  # SQLite: seconds between polls of assistant_revisions
    events_heartbeat_seconds: float = 15.0  # an SSE comment when nothing else was sent
    events_key_check_seconds: float = 2.0  # how often open streams re-check their API key
    events_max_streams: int = 1000  # open streams (SSE and subscriptions) per process
    events_queue_size: int = 1000  # events waiting for one slow subscriber before it is dropped
    graphql_max_subscriptions: int = 20  # operations per websocket connection

    # Processes and machines (docs/production.md, docs/configuration.md): where the limits count,
    # assistant creations per organisation, trusted proxies, live streams per API key.
    rate_limit_storage: str = "memory://"  # or redis://HOST:PORT/DB, shared by every process
    create_assistant_limit: str | None = None  # e.g. "10/hour" per organisation; unset: off
    forwarded_allow_ips: str = ""  # proxies whose X-Forwarded-For is believed; "*": any
    events_max_streams_per_key: int = 20  # open streams of one API key, per process

    # Fair shares of the websocket and the live streams (docs/websocket-and-streams.md):
    # seconds to send `connection_init`, handshakes not yet initialised per client address,
    # open streams of one organisation (its keys share them), each per process.
    graphql_ws_init_timeout: float = 3.0
    graphql_ws_max_pending_per_address: int = 50
    events_max_streams_per_org: int = 100

    @field_validator("rate_limit_storage")
    @classmethod
    def _known_storage(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("must be memory:// or redis://HOST:PORT/DB")
        return value

    @field_validator("create_assistant_limit")
    @classmethod
    def _a_rate(cls, value: str | None) -> str | None:
        if value:
            try:
                parse(value)
            except ValueError:
                raise ValueError(f"'{value}' is not a rate such as 10/hour") from None
        return value or None

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses(cls, value: str) -> str:
        for entry in value.split(","):
            if entry.strip() not in ("", "*"):
                try:
                    ip_network(entry.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"'{entry.strip()}' is not an address or CIDR") from None
        return value

    # Operations: GET /metrics unless METRICS_ENABLED=false; with
    # METRICS_TOKEN set it needs `Authorization: Bearer <METRICS_TOKEN>`.
    metrics_enabled: bool = True
    metrics_token: str | None = None

    # Stored-size bounds (docs/storage.md): bytes an organisation may store (assistants,
    # integrations, actions, avatars), counted as rows are written; beyond, 413 QUOTA_EXCEEDED.
    org_storage_quota: int = 256 * 1024 * 1024

    # SIGTERM: seconds for the requests in flight to finish before the process exits
    shutdown_grace_seconds: float = 20.0
    # SIGTERM: seconds the process keeps accepting after /readyz turns 503, so that a load
    # balancer's health checks take it out before it stops accepting (ops/README.md)
    shutdown_drain_seconds: float = 0.0

    # Database faults (docs/database-faults.md): a transaction that cannot get its connection,
    # run its statements and commit within this many seconds (a frozen network, a hung
    # server, a row lock, SQLite's write lock held elsewhere) is 503 DATABASE_UNAVAILABLE.
    database_timeout_seconds: float = 5.0

    @field_validator("database_timeout_seconds")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("must be a number of seconds above 0")
        return value

    @property
    def sqlite_busy_seconds(self) -> float:
        """How long a SQLite writer waits for the write lock: DATABASE_TIMEOUT_SECONDS, or the
        older SQLITE_BUSY_TIMEOUT_MS when it is set."""
        if self.sqlite_busy_timeout_ms is not None:
            return self.sqlite_busy_timeout_ms / 1000
        return self.database_timeout_seconds

    # Fair shares, GraphQL (docs/graphql-bounds.md): bytes of one answer, counted by the
    # executor as it writes (RESPONSE_TOO_LARGE), and bytes of one document's text.
    graphql_max_response_bytes: int = 8 * 1024 * 1024
    graphql_max_document_bytes: int = 32 * 1024
    # Fair shares of the CPU (docs/protection.md#fair-shares-of-the-cpu): expensive requests
    # (GraphQL operations of this cost or more, REST lists) run at most this many at once per
    # process while more than one caller uses it; the others wait in a queue per tenant
    # (organisation, or client address without a key), served in turn; a tenant's queue
    # holds at most this many (beyond: 429).
    fair_heavy_cost: int = 1000
    fair_heavy_concurrency: int = 1
    fair_queue_per_tenant: int = 100
    # Webhooks (docs/webhooks.md): the delivery engine runs in `serve` (inline) or only in
    # `python -m app deliver` processes (off); what a webhook URL may be; retries and limits.
    webhooks_delivery: Literal["inline", "off"] = "inline"
    webhooks_allow_http: bool = False
    webhooks_allow_private: bool = False
    webhook_timeout_seconds: float = 10.0
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"  # seconds
    webhook_secret_overlap: float = 86_400.0  # seconds both secrets sign after a rotation
    webhook_disable_after: float = 5 * 86_400.0  # seconds of nothing but failures
    webhook_concurrency_per_webhook: int = 4
    webhook_concurrency: int = 64  # attempts at once per process
    webhook_log_days: float = 30.0
    webhook_poll_seconds: float = 1.0  # due retries are looked for at least this often
    # Audit log (docs/audit-log.md): entries older than this many days are removed by `serve`
    # (at start, then hourly) and by `audit prune`; unset keeps every entry.
    audit_keep_days: float | None = Field(default=None, gt=0)
    # how often `serve` chains the entries pending (0: only when the log is read or verified)
    audit_seal_seconds: float = Field(default=1.0, ge=0)

    # Idempotency keys (docs/idempotency.md): how long the answer of a request sent with an
    # `Idempotency-Key` is kept and replayed (seconds, or an ISO 8601 duration such as P1D).
    idempotency_ttl: timedelta = timedelta(hours=24)

    @field_validator("idempotency_ttl", mode="before")
    @classmethod
    def _ttl(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
            value = float(value)  # a number of seconds
        if isinstance(value, int | float) and not value > 0:
            raise ValueError("IDEMPOTENCY_TTL: a duration above 0")
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError("WEBHOOK_RETRY_SCHEDULE: seconds, comma-separated") from None
        if any(delay < 0 for delay in delays):
            raise ValueError("WEBHOOK_RETRY_SCHEDULE: seconds may not be negative")
        return value

    @property
    def retry_delays(self) -> list[float]:
        return [float(part) for part in self.webhook_retry_schedule.split(",") if part.strip()]

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_allow_origins.split(",") if origin.strip()]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
