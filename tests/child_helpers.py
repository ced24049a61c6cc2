"""Helpers for the tests of integrations and actions: their stored rows, a deleted parent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from app.models import Action, Assistant, Integration
from app.store import Store
from app.store.records import ActionRecord, IntegrationRecord, as_dict

Child = type[Integration] | type[Action]
RECORDS: dict[Any, Any] = {Integration: IntegrationRecord, Action: ActionRecord}


async def stored_children(db: Store, model: Child, assistant_id: str) -> list[dict[str, Any]]:
    """The rows of one assistant's integrations or actions, as plain dicts, by id."""
    table = model.__table__
    statement = select(table).where(table.c.assistant_id == assistant_id).order_by(table.c.id)
    async with db.read() as tx:
        return [as_dict(row) for row in await tx.all(statement, None, RECORDS[model])]


async def stored_child(db: Store, model: Child, child_id: str) -> dict[str, Any] | None:
    table = model.__table__
    async with db.read() as tx:
        row = await tx.first(select(table).where(table.c.id == child_id), None, RECORDS[model])
        return None if row is None else as_dict(row)


async def mark_deleted(db: Store, assistant_id: str) -> None:
    """Soft-deletes an assistant the way the delete use case leaves it."""
    table = Assistant.__table__
    async with db.write() as tx:
        await tx.execute(update(table).where(table.c.id == assistant_id).values(deleted=True))
