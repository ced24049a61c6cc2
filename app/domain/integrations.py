"""Integration use cases: create, read, list, update, delete (under a live assistant).

An assistant holds at most MAX_INTEGRATIONS; the count is taken while the assistant's row is
locked (FOR UPDATE on PostgreSQL; SQLite's write transactions run one at a time), so concurrent
creates cannot pass the cap together.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select

from app.domain.access import Access, Scope, requires
from app.domain.assistants import find_assistant
from app.domain.audit import record_audit
from app.domain.child_input import IntegrationCreate, IntegrationPatch, parse_body
from app.domain.children import (
    INTEGRATIONS,
    delete_child,
    load_child,
    too_many,
    update_child,
)
from app.domain.storage import charge, integration_bytes
from app.models import Integration, new_id, utcnow
from app.store import Statement, Tx
from app.store.records import IntegrationRecord
from app.store.statements import insert_statement

MAX_INTEGRATIONS = 100  # per assistant

# mypy ignore below: SQLModel's metaclass sets __table__
TABLE = Integration.__table__  # type: ignore[attr-defined]
_INSERT = insert_statement(TABLE, returning=True)
_OF_ASSISTANT = Statement(
    select(TABLE)
    .where(TABLE.c.assistant_id == bindparam("assistant_id"))
    .order_by(TABLE.c.created_at, TABLE.c.id)
)
_COUNT = Statement(
    select(func.count()).select_from(TABLE).where(TABLE.c.assistant_id == bindparam("assistant_id"))
)


@requires(Scope.WRITE)
async def create_integration(
    tx: Tx, *, access: Access, assistant_id: str, body: object, storage_quota: int
) -> IntegrationRecord:
    """A new integration; its bytes count against ORG_STORAGE_QUOTA (app/domain/storage.py)."""
    assistant = await find_assistant(tx, access, assistant_id, for_update=True)
    data = parse_body(IntegrationCreate, body)
    if (await tx.scalar(_COUNT, {"assistant_id": assistant.id}) or 0) >= MAX_INTEGRATIONS:
        raise too_many("integrations", MAX_INTEGRATIONS)
    now = utcnow()
    values = {
        "id": new_id(),
        "org_id": access.org_id,
        "assistant_id": assistant.id,
        "error": None,
        "created_at": now,
        "updated_at": now,
        **data.model_dump(),
    }
    row = await tx.first(_INSERT, values, IntegrationRecord)
    assert row is not None
    await charge(tx, access.org_id, integration_bytes(row), storage_quota)
    await record_audit(tx, access, "integration.create", "integration", row.id)
    return row


@requires(Scope.READ)
async def list_integrations(
    tx: Tx, *, access: Access, assistant_id: str
) -> list[IntegrationRecord]:
    """The integrations of one assistant, oldest first."""
    assistant = await find_assistant(tx, access, assistant_id)
    return await tx.all(_OF_ASSISTANT, {"assistant_id": assistant.id}, IntegrationRecord)


@requires(Scope.READ)
async def get_integration(
    tx: Tx, *, access: Access, assistant_id: str, integration_id: str
) -> IntegrationRecord:
    row: IntegrationRecord = await load_child(
        tx, INTEGRATIONS, access=access, child_id=integration_id, assistant_id=assistant_id
    )
    return row


@requires(Scope.WRITE)
async def update_integration(
    tx: Tx,
    *,
    access: Access,
    integration_id: str,
    patch: object,
    storage_quota: int,
    assistant_id: str | None = None,
) -> IntegrationRecord:
    """Changes what was sent (`config` replaced whole); `updated_at` moves on a real change.

    Without `assistant_id` (GraphQL) the integration is found by organisation alone.
    """
    row: IntegrationRecord = await load_child(
        tx,
        INTEGRATIONS,
        access=access,
        child_id=integration_id,
        assistant_id=assistant_id,
        for_update=True,
    )
    data = parse_body(IntegrationPatch, patch)
    await update_child(tx, INTEGRATIONS, row, data.set_fields(), storage_quota=storage_quota)
    await record_audit(tx, access, "integration.update", "integration", row.id)
    return row


@requires(Scope.WRITE)
async def delete_integration(
    tx: Tx, *, access: Access, integration_id: str, assistant_id: str | None = None
) -> IntegrationRecord:
    row: IntegrationRecord = await load_child(
        tx,
        INTEGRATIONS,
        access=access,
        child_id=integration_id,
        assistant_id=assistant_id,
        for_update=True,
    )
    await delete_child(tx, INTEGRATIONS, row)
    await record_audit(tx, access, "integration.delete", "integration", row.id)
    return row
