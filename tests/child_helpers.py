"""Helpers for the tests of integrations and actions: their stored rows, a deleted parent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from app.db import Database
from app.models import Action, Assistant, Integration

Child = type[Integration] | type[Action]


async def stored_children(db: Database, model: Child, assistant_id: str) -> list[dict[str, Any]]:
    """The rows of one assistant's integrations or actions, as plain dicts, by id."""
    async with db.read() as session:
        rows = await session.scalars(
            select(model).where(model.assistant_id == assistant_id).order_by(model.id)  # type: ignore[arg-type]
        )
        return [row.model_dump() for row in rows]


async def stored_child(db: Database, model: Child, child_id: str) -> dict[str, Any] | None:
    async with db.read() as session:
        row = await session.scalar(select(model).where(model.id == child_id))  # type: ignore[arg-type]
        return None if row is None else row.model_dump()


async def mark_deleted(db: Database, assistant_id: str) -> None:
    """Soft-deletes an assistant the way the delete use case leaves it."""
    async with db.write() as session:
        await session.execute(
            update(Assistant).where(Assistant.id == assistant_id).values(deleted=True)  # type: ignore[arg-type]
        )
