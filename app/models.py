"""SQLModel tables. Imports nothing else from the app."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC instants; always hands back an aware UTC datetime (SQLite drops zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """On SQLite, the stored text straight to an aware datetime (one `fromisoformat`, in
        place of SQLAlchemy's parse, then `process_result_value`)."""
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: str | datetime | None) -> datetime | None:
            if value is None:
                return None
            if isinstance(value, str):
                try:
                    return datetime.fromisoformat(value + "+00:00")  # stored naive, in UTC
                except ValueError:
                    value = datetime.fromisoformat(value)
            return self.process_result_value(value, dialect)

        return process


def _time(nullable: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable))


class Organisation(SQLModel, table=True):
    """`storage_used`: the bytes the organisation stores, kept as rows are written (the rule in
    app/domain/storage.py, docs/storage.md)."""

    __tablename__ = "organisations"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=1024)
    created_at: datetime = _time()
    storage_used: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )


class ApiKey(SQLModel, table=True):
    """An API key: only the SHA-256 of its secret is stored (`prefix` is the secret's first 8
    characters, null for keys made before it was kept). `scopes` is a JSON array of scope
    names; `assistant_ids` a JSON array of the assistants the key is restricted to, or null
    for every assistant of the organisation."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=64)
    org_id: str = Field(foreign_key="organisations.id", index=True, max_length=64)
    key_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = _time()
    revoked_at: datetime | None = _time(nullable=True)
    name: str = Field(max_length=200)
    prefix: str | None = Field(default=None, max_length=8)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    assistant_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    expires_at: datetime | None = _time(nullable=True)
    last_used_at: datetime | None = _time(nullable=True)


class Avatar(SQLModel, table=True):
    __tablename__ = "avatars"

    id: str = Field(primary_key=True, max_length=64)
    org_id: str = Field(foreign_key="organisations.id", index=True, max_length=64)
    content_type: str = Field(max_length=64)
    size: int
    sha256: str = Field(max_length=64)
    created_at: datetime = _time()


# the name as sorted: its first 256 characters (a PostgreSQL B-tree entry holds at most 2,704
# bytes); the same text in the index and in the statements, so that both databases match them
# (on SQLite, migration 0011 adds the whole name and the ref to the index, for searches)
NAME_SORT_KEY = text("substr(name, 1, 256)")


class Assistant(SQLModel, table=True):
    """One row per assistant; every config leaf is its own column, so merges are per column."""

    __tablename__ = "assistants"
    __table_args__ = (
        Index("ix_assistants_org_deleted_seq", "org_id", "deleted", "seq"),
        # finding assistants (docs/finding-assistants.md): each sort, and the common filters
        Index("ix_assistants_org_created", "org_id", "deleted", "created_at", "seq"),
        Index("ix_assistants_org_updated", "org_id", "deleted", "updated_at", "seq"),
        Index("ix_assistants_org_name", "org_id", "deleted", NAME_SORT_KEY, "seq"),
        Index(
            "ix_assistants_org_filters", "org_id", "deleted", "enabled", "language", "model", "seq"
        ),
        # `ref` is unique among the live assistants of an organisation; nulls never collide
        Index(
            "ux_assistants_org_ref",
            "org_id",
            "ref",
            unique=True,
            sqlite_where=text("deleted = 0"),
            postgresql_where=text("NOT deleted"),
        ),
    )

    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=64)
    org_id: str = Field(foreign_key="organisations.id", max_length=64)
    name: str = Field(max_length=1024)
    enabled: bool = True
    deleted: bool = False
    version: int = 1
    secret_key: str | None = Field(default=None, max_length=128)
    avatar_id: str | None = Field(default=None, foreign_key="avatars.id", max_length=64)
    ref: str | None = Field(default=None, max_length=64)  # docs/bundles.md

    language: str = Field(default="auto", max_length=64)
    model: str = Field(max_length=200)
    instructions: str = ""
    knowledge_scope: str = Field(default="all", max_length=16)
    timezone: str = Field(default="UTC", max_length=64)
    stt_model: str | None = Field(default=None, max_length=200)
    tts_model: str | None = Field(default=None, max_length=200)
    tts_voice_id: str | None = Field(default=None, max_length=200)

    thread_mode: str = Field(default="new", max_length=16)
    enable_memories: bool = False
    enable_transfer_to_human_tool: bool = False
    welcome_banner: str | None = None
    suggested_messages: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    auto_intro_message: str | None = None
    enable_end_conversation_tool: bool = False
    enable_block_contact_tool: bool = False
    enable_private_chats: bool = False
    enable_auto_resolve: bool = False
    enable_auto_follow_ups: bool = False
    enable_auto_csat: bool = False
    enable_update_contact_tool: bool = False

    created_at: datetime = _time()
    updated_at: datetime = _time()


class Integration(SQLModel, table=True):
    __tablename__ = "integrations"

    id: str = Field(primary_key=True, max_length=64)
    org_id: str = Field(foreign_key="organisations.id", max_length=64)
    assistant_id: str = Field(foreign_key="assistants.id", index=True, max_length=64)
    integration_id: str = Field(max_length=64)
    enabled: bool = True
    connection_id: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = None
    created_at: datetime = _time()
    updated_at: datetime = _time()


class Action(SQLModel, table=True):
    __tablename__ = "actions"
    __table_args__ = (Index("ix_actions_assistant_position", "assistant_id", "position"),)

    id: str = Field(primary_key=True, max_length=64)
    org_id: str = Field(foreign_key="organisations.id", max_length=64)
    assistant_id: str = Field(foreign_key="assistants.id", max_length=64)
    action_id: str = Field(max_length=128)
    enabled: bool = True
    name: str = Field(max_length=64)
    instructions: str = Field(default="", max_length=2048)
    connection_id: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    position: int
    created_at: datetime = _time()
    updated_at: datetime = _time()


class AssistantRevision(SQLModel, table=True):
    """One row per real change of an assistant, written in the same transaction as the change.

    `seq` orders every revision of the database (the event id of the change streams).
    """

    __tablename__ = "assistant_revisions"
    __table_args__ = (
        # one revision per version; `published` events (docs/releases.md) carry the version
        # they were made at, which another revision already holds
        Index(
            "ux_revisions_assistant_version",
            "assistant_id",
            "version",
            unique=True,
            sqlite_where=text("change_type != 'published'"),
            postgresql_where=text("change_type != 'published'"),
        ),
        Index("ix_revisions_org_seq", "org_id", "seq"),
    )

    seq: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(foreign_key="organisations.id", max_length=64)
    assistant_id: str = Field(foreign_key="assistants.id", max_length=64)
    version: int
    changed_at: datetime = _time()
    change_type: str = Field(max_length=32)
    actor_key_id: str | None = Field(default=None, max_length=64)
    source: str = Field(max_length=16)
    changes: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AssistantRelease(SQLModel, table=True):
    """One immutable release of an assistant (docs/releases.md): `document` is the JSON text of
    the release as the API answers it, written once and served as it is."""

    __tablename__ = "assistant_releases"

    assistant_id: str = Field(foreign_key="assistants.id", primary_key=True, max_length=64)
    number: int = Field(primary_key=True)
    org_id: str = Field(foreign_key="organisations.id", max_length=64)
    version: int
    note: str | None = Field(default=None, max_length=1024)
    created_at: datetime = _time()
    created_by_key_id: str | None = Field(default=None, max_length=64)
    document: str = Field(sa_column=Column(Text, nullable=False))


class AssistantEnvironment(SQLModel, table=True):
    """A named pointer at one release of an assistant (docs/releases.md)."""

    __tablename__ = "assistant_environments"

    assistant_id: str = Field(foreign_key="assistants.id", primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=32)
    release: int
    updated_at: datetime = _time()


class PersistedDocument(SQLModel, table=True):
    """A GraphQL document registered by a client through automatic persisted queries, found by
    the SHA-256 of its text. Only documents that parse and validate are stored; the table is
    bounded (GRAPHQL_PERSISTED_MAX): the ones used longest ago are evicted first."""

    __tablename__ = "persisted_documents"
    __table_args__ = (Index("ix_persisted_documents_last_used_at", "last_used_at"),)

    sha256: str = Field(primary_key=True, max_length=64)
    document: str
    created_at: datetime = _time()
    last_used_at: datetime = _time()


class Webhook(SQLModel, table=True):
    """An endpoint of an organisation that receives its change events (docs/webhooks.md).

    `event_types` and `assistant_ids` are JSON arrays, or null for every type / assistant;
    `secret` signs every attempt, and `previous_secret` too until `previous_secret_until`
    (after a rotation). `failing_since`: the first failed attempt since the last success."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_org_enabled", "org_id", "enabled"),)

    id: str = Field(primary_key=True, max_length=64)
    org_id: str = Field(foreign_key="organisations.id", max_length=64)
    url: str = Field(max_length=2048)
    description: str = Field(default="", max_length=500)
    event_types: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    assistant_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=16)
    secret: str = Field(max_length=128)
    previous_secret: str | None = Field(default=None, max_length=128)
    previous_secret_until: datetime | None = _time(nullable=True)
    failing_since: datetime | None = _time(nullable=True)
    created_at: datetime = _time()
    updated_at: datetime = _time()


class WebhookDelivery(SQLModel, table=True):
    """One event to send to one webhook, recorded in the change's transaction; `seq` orders
    first attempts per webhook (commit order). `attempts` is a JSON array of {at, duration_ms,
    status_code | error, body}. A process that claims it holds it until `locked_until`."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_seq", "webhook_id", "seq"),
        Index("ix_webhook_deliveries_created_at", "created_at"),
        # a webhook's deliveries still waiting for their first attempt (claiming in order)
        Index("ix_webhook_deliveries_first", "webhook_id", "attempt_count", "seq"),
    )

    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=64)
    webhook_id: str = Field(foreign_key="webhooks.id", max_length=64)
    org_id: str = Field(foreign_key="organisations.id", max_length=64)
    event_id: str | None = Field(default=None, max_length=32)
    type: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=16)
    attempts: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    attempt_count: int = 0
    next_attempt_at: datetime | None = _time(nullable=True)
    locked_until: datetime | None = _time(nullable=True)
    created_at: datetime = _time()
    updated_at: datetime = _time()


class AuditEntry(SQLModel, table=True):
    """One entry of an organisation's audit log (docs/audit-log.md): written in the
    transaction of the change it records (a refusal in its own), never changed afterwards.
    `hash` chains the organisation's entries in `id` order; `prev_hash` is the hash of the
    entry before it (so that the oldest kept entry can be checked after retention)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_org_id", "org_id", "id"),
        Index("ix_audit_log_at", "at"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    org_id: str = Field(foreign_key="organisations.id", max_length=64)
    at: datetime = _time()
    actor_type: str = Field(max_length=16)
    actor_key_id: str | None = Field(default=None, max_length=64)
    actor_key_name: str | None = Field(default=None, max_length=200)
    actor_key_prefix: str | None = Field(default=None, max_length=8)
    action: str = Field(max_length=64)
    resource_type: str = Field(max_length=32)
    resource_id: str | None = Field(default=None, max_length=64)
    outcome: str = Field(max_length=8)
    transport: str = Field(max_length=16)
    request_id: str | None = Field(default=None, max_length=128)
    client_ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=200)
    version: int | None = None
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The end of an organisation's audit chain: its row is locked by the transaction that
    adds an entry, so that the organisation's entries follow one another with no fork."""

    __tablename__ = "audit_heads"

    org_id: str = Field(primary_key=True, foreign_key="organisations.id", max_length=64)
    last_id: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    last_hash: str = Field(max_length=64)


class AuditPending(SQLModel, table=True):
    """PostgreSQL: an audit entry written in its change's transaction, waiting to be chained
    (docs/audit-log.md): `seal_pending` gives it its id and hash under the organisation's chain
    head, so that changes of one organisation never wait for each other's commit."""

    __tablename__ = "audit_pending"
    __table_args__ = (Index("ix_audit_pending_org_seq", "org_id", "seq"),)

    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    org_id: str = Field(foreign_key="organisations.id", max_length=64)
    at: datetime = _time()
    actor_type: str = Field(max_length=16)
    actor_key_id: str | None = Field(default=None, max_length=64)
    actor_key_name: str | None = Field(default=None, max_length=200)
    actor_key_prefix: str | None = Field(default=None, max_length=8)
    action: str = Field(max_length=64)
    resource_type: str = Field(max_length=32)
    resource_id: str | None = Field(default=None, max_length=64)
    outcome: str = Field(max_length=8)
    transport: str = Field(max_length=16)
    request_id: str | None = Field(default=None, max_length=128)
    client_ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=200)
    version: int | None = None


class IdempotentAnswer(SQLModel, table=True):
    """The stored answer of a request sent with an `Idempotency-Key` (docs/idempotency.md),
    written in the transaction of the request's effect; per API key (`key_hash`, the SHA-256
    of its secret, as in `api_keys`) and key. `id`: 64 bits of the SHA-256 of (key_hash, key),
    the row's only index (SQLite's rowid; each answer writes one B-tree page); `fingerprint`:
    the SHA-256 of what makes the request the same one; `headers` a JSON object of the stored
    answer headers (ETag, Location, Content-Type). Past `expires_at` the row counts as absent;
    it is replaced by the next request with its key, or removed by the sweep."""

    __tablename__ = "idempotency_keys"

    id: int = Field(
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
        )
    )
    key_hash: str = Field(max_length=64)
    key: str = Field(max_length=255)
    fingerprint: str = Field(max_length=64)
    status: int
    headers: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    expires_at: datetime = _time()
