"""Revisions: every real change of an assistant, with its leaf-level diff and a snapshot.

Written by the use cases that change an assistant, in their transaction, never by a transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select

from app.domain.documents import avatar_url, config_document, rfc3339
from app.domain.errors import NotFound
from app.domain.shape import COLUMN_PATHS, LEAVES, NOT_RESTORED
from app.domain.storage import DEFAULT_QUOTA
from app.domain.webhook_events import (
    ENABLED_WEBHOOKS,
    ENABLED_WEBHOOKS_POSTGRESQL,
    record_deliveries,
    webhooks_for_change,
)
from app.models import Assistant, AssistantRevision
from app.observability import metrics
from app.store import Statement, Tx
from app.store.records import AssistantRecord, RevisionRecord

CREATED, UPDATED, SECRET_KEY_ROTATED, RESTORED, DELETED, PUBLISHED = (
    "created",
    "updated",
    "secret_key_rotated",
    "restored",
    "deleted",
    "published",  # an event, not a change of the draft (app/domain/releases.py): not history
)

# the source a duplicate's `created` revision names, {"assistant_id", "version"}: kept in its
# snapshot (shown beside it, never in it) and carried by its event (docs/duplicate.md)
DUPLICATED_FROM = "duplicated_from"


@dataclass(frozen=True, slots=True)
class Writer:
    """Who writes (the API key's id, or None for the CLI), through what, the history kept and
    the bytes its organisation may store (ORG_STORAGE_QUOTA, app/domain/storage.py)."""

    key_id: str | None
    source: str  # "rest" | "graphql" | "cli" | "bundle" (docs/bundles.md)
    revisions_keep: int | None = None
    storage_quota: int = DEFAULT_QUOTA


CLI_WRITER = Writer(key_id=None, source="cli")


def leaf_values(assistant: AssistantRecord) -> dict[str, Any]:
    """{"config.tts.voice_id": "v1", …}: every leaf of the assistant by its dotted path."""
    return {".".join(path): _plain(getattr(assistant, column)) for path, column in LEAVES.items()}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def leaf_change(column: str, before: Any, after: Any) -> dict[str, Any]:
    """One entry of `changes`: the leaf's dotted path, its value before and after."""
    return {"path": ".".join(COLUMN_PATHS[column]), "from": _plain(before), "to": _plain(after)}


def snapshot_of(assistant: AssistantRecord) -> dict[str, Any]:
    """The assistant as it is now, without its secret key (avatar as an id: URLs are rendered)."""
    return {
        "id": assistant.id,
        "version": assistant.version,
        "name": assistant.name,
        "enabled": assistant.enabled,
        "avatar_id": assistant.avatar_id,
        "config": config_document(assistant),
        "created_at": rfc3339(assistant.created_at),
        "updated_at": rfc3339(assistant.updated_at),
    }


# mypy ignore below: SQLModel's metaclass sets __table__
REVISIONS = AssistantRevision.__table__  # type: ignore[attr-defined]
# PostgreSQL notifications of new revisions, `<org_id>:<seq>`, sent at COMMIT by the trigger of
# migration 0005 (app/events/sources.py listens)
CHANNEL = "assistant_changes"


# built once (SQLAlchemy Core, compiled once per dialect)
# the same, answering the new seq (the event id) and the organisation's enabled webhooks: with
# none, a change costs no statement more than before webhooks existed; with some, one INSERT
# per webhook that wants it (docs/webhooks.md)
def _revision_insert(webhooks: Any) -> Any:
    return (
        insert(REVISIONS)
        .values({c.key: bindparam(c.key, type_=c.type) for c in REVISIONS.c if c.key != "seq"})
        .returning(REVISIONS.c.seq, webhooks.scalar_subquery())
    )


_REVISION_INSERT_HOOKED = Statement(
    _revision_insert(ENABLED_WEBHOOKS), postgresql=_revision_insert(ENABLED_WEBHOOKS_POSTGRESQL)
)
_PRUNE = Statement(
    delete(REVISIONS).where(
        REVISIONS.c.assistant_id == bindparam("assistant_id"),
        REVISIONS.c.version <= bindparam("oldest_dropped"),
    )
)


async def record_revision(
    tx: Tx,
    assistant: AssistantRecord,
    *,
    change_type: str,
    changes: list[dict[str, Any]],
    writer: Writer,
    changed_at: datetime,
    snapshot: dict[str, Any] | None = None,
    event_fields: dict[str, Any] | None = None,
) -> None:
    """The revision of a real change, in the change's transaction (on PostgreSQL its trigger
    notifies the live streams of every process), and its webhook deliveries. `snapshot` and
    `event_fields` are a `published` event's (its release and environment)."""
    values = {
        "org_id": assistant.org_id,
        "assistant_id": assistant.id,
        "version": assistant.version,
        "changed_at": changed_at,
        "change_type": change_type,
        "actor_key_id": writer.key_id,
        "source": writer.source,
        "changes": changes,
        "snapshot": snapshot_of(assistant) if snapshot is None else snapshot,
    }
    row = await tx.first(_REVISION_INSERT_HOOKED, {**values, "hooks_org_id": assistant.org_id})
    assert row is not None
    seq, hooks = row
    webhook_ids = []
    if hooks:  # its deliveries, in this transaction (docs/webhooks.md)
        webhook_ids = webhooks_for_change(
            hooks, assistant_id=assistant.id, event_type="assistant." + change_type
        )
    if webhook_ids:
        event = {
            "id": str(seq),
            "org_id": assistant.org_id,
            "assistant_id": assistant.id,
            "version": assistant.version,
            "change_type": change_type,
            "changes": changes,
            **(event_fields or {}),
        }
        await record_deliveries(tx, webhook_ids, event=event, changed_at=changed_at)
    if metrics.active is not None:
        metrics.active.revision_written(change_type)
    if writer.revisions_keep is not None:
        oldest_dropped = assistant.version - writer.revisions_keep
        await tx.execute(_PRUNE, {"assistant_id": assistant.id, "oldest_dropped": oldest_dropped})


MAX_VERSION = 2**31 - 1
# the history: every revision but the `published` events (the partial unique index's predicate)
_HISTORY = REVISIONS.c.change_type != PUBLISHED
_COUNT = Statement(
    select(func.count())
    .select_from(REVISIONS)
    .where(REVISIONS.c.assistant_id == bindparam("assistant_id"), _HISTORY)
)
_PAGE = Statement(
    select(REVISIONS)
    .where(
        REVISIONS.c.assistant_id == bindparam("assistant_id"),
        REVISIONS.c.version <= bindparam("highest"),
        _HISTORY,
    )
    .order_by(REVISIONS.c.version.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_ONE = Statement(
    select(REVISIONS).where(
        REVISIONS.c.assistant_id == bindparam("assistant_id"),
        REVISIONS.c.version == bindparam("version"),
        _HISTORY,
    )
)


async def count_revisions(tx: Tx, *, assistant_id: str) -> int:
    return int(await tx.scalar(_COUNT, {"assistant_id": assistant_id}) or 0)


async def list_revisions(
    tx: Tx,
    *,
    assistant_id: str,
    limit: int,
    offset: int = 0,
    before_version: int | None = None,
) -> list[RevisionRecord]:
    """Newest first: a window at an `offset` (pages) or below a version (cursors)."""
    highest = MAX_VERSION if before_version is None else min(before_version - 1, MAX_VERSION)
    parameters = {
        "assistant_id": assistant_id,
        "highest": highest,
        "limit": limit,
        "offset": offset,
    }
    return await tx.all(_PAGE, parameters, RevisionRecord)


async def get_revision(tx: Tx, *, assistant_id: str, version: int) -> RevisionRecord:
    revision = None
    if 1 <= version <= MAX_VERSION:
        parameters = {"assistant_id": assistant_id, "version": version}
        revision = await tx.first(_ONE, parameters, RevisionRecord)
    if revision is None:
        raise NotFound(f"assistant '{assistant_id}' has no revision {version}")
    return revision


def revision_document(
    revision: RevisionRecord, *, base_url: str, with_snapshot: bool = False
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "assistant_id": revision.assistant_id,
        "version": revision.version,
        "changed_at": rfc3339(revision.changed_at),
        "change_type": revision.change_type,
        "actor_key_id": revision.actor_key_id,
        "source": revision.source,
        "changes": revision.changes,
    }
    if DUPLICATED_FROM in revision.snapshot:
        document[DUPLICATED_FROM] = revision.snapshot[DUPLICATED_FROM]
    if with_snapshot:
        snapshot = dict(revision.snapshot)
        snapshot.pop(DUPLICATED_FROM, None)
        snapshot["avatar_url"] = avatar_url(base_url, snapshot.get("avatar_id"))
        document["snapshot"] = snapshot
    return document


def snapshot_columns(snapshot: dict[str, Any]) -> dict[str, Any]:
    """{column: value} of every leaf a snapshot holds (what a restore writes back; a `ref`
    stays the assistant's own)."""
    values: dict[str, Any] = {}
    for path, column in LEAVES.items():
        if column in NOT_RESTORED:
            continue
        node: Any = snapshot
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        values[column] = node
    return values


def assistant_from_snapshot(snapshot: dict[str, Any], org_id: str) -> Assistant:
    """An unsaved assistant as it was (no secret key: snapshots never hold one)."""
    assistant = Assistant(
        id=snapshot["id"],
        org_id=org_id,
        version=snapshot["version"],
        created_at=_parse_time(snapshot["created_at"]),
        updated_at=_parse_time(snapshot["updated_at"]),
        name=snapshot["name"],
        model="",
        suggested_messages=[],
    )
    for column, value in snapshot_columns(snapshot).items():
        setattr(assistant, column, value)
    return assistant


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
