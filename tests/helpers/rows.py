"""Rows written and read straight in the database, independent of the routes: assistants
counted, an avatar inserted, integrations and actions (inserted, counted, read back), a
soft-deleted assistant."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from app.models import Action, Assistant, Avatar, Integration, new_id, utcnow
from app.store import Store
from app.store.records import ActionRecord, IntegrationRecord, as_dict

INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]
ACTIONS = Action.__table__  # type: ignore[attr-defined]
AVATARS = Avatar.__table__  # type: ignore[attr-defined]

Child = type[Integration] | type[Action]
RECORDS: dict[Any, Any] = {Integration: IntegrationRecord, Action: ActionRecord}


async def count_assistants(db: Store) -> int:
    """How many assistants rows the database holds (deleted ones too)."""
    async with db.read() as tx:
        return int(await tx.scalar(select(func.count()).select_from(Assistant)) or 0)


async def insert_avatar(db: Store, org_id: str) -> str:
    """An avatar row of the organisation (no file): its id."""
    avatar_id = new_id()
    values = {
        "id": avatar_id,
        "org_id": org_id,
        "content_type": "image/png",
        "size": 1,
        "sha256": "0" * 64,
        "created_at": utcnow(),
    }
    async with db.write() as tx:
        await tx.execute(insert(AVATARS).values(values))
    return avatar_id


async def insert_children(
    db: Store, org_id: str, assistant_id: str, integrations: int = 2, actions: int = 2
) -> tuple[list[str], list[str]]:
    """`integrations` integrations and `actions` actions of one assistant: their ids, in order."""
    now = utcnow()
    rows_i = [
        {
            "id": new_id(),
            "org_id": org_id,
            "assistant_id": assistant_id,
            "integration_id": f"kind{n}",
            "enabled": True,
            "config": {"n": n},
            "created_at": now + timedelta(microseconds=n),
            "updated_at": now + timedelta(microseconds=n),
        }
        for n in range(integrations)
    ]
    rows_a = [
        {
            "id": new_id(),
            "org_id": org_id,
            "assistant_id": assistant_id,
            "action_id": "TOOLS:HTTP_REQUEST",
            "enabled": True,
            "name": f"action {n}",
            "instructions": "",
            "config": {"input": {"n": n}, "definitions": []},
            "position": (n + 1) * 100,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(actions)
    ]
    async with db.write() as tx:
        for row in rows_i:
            await tx.execute(insert(INTEGRATIONS).values(row))
        for row in rows_a:
            await tx.execute(insert(ACTIONS).values(row))
    return [str(r["id"]) for r in rows_i], [str(r["id"]) for r in rows_a]


async def count_children(db: Store, assistant_id: str) -> tuple[int, int]:
    """How many integrations and actions rows the assistant has in the database."""
    async with db.read() as tx:
        integrations = await tx.scalar(
            select(func.count()).where(INTEGRATIONS.c.assistant_id == assistant_id)
        )
        actions = await tx.scalar(
            select(func.count()).where(ACTIONS.c.assistant_id == assistant_id)
        )
    return int(integrations or 0), int(actions or 0)


async def stored_children(db: Store, model: Child, assistant_id: str) -> list[dict[str, Any]]:
    """The rows of one assistant's integrations or actions, as plain dicts, by id."""
    table = model.__table__  # type: ignore[union-attr]
    statement = select(table).where(table.c.assistant_id == assistant_id).order_by(table.c.id)
    async with db.read() as tx:
        return [as_dict(row) for row in await tx.all(statement, None, RECORDS[model])]


async def stored_child(db: Store, model: Child, child_id: str) -> dict[str, Any] | None:
    """One integration's or action's row, as a plain dict (None when there is none)."""
    table = model.__table__  # type: ignore[union-attr]
    async with db.read() as tx:
        row = await tx.first(select(table).where(table.c.id == child_id), None, RECORDS[model])
        return None if row is None else as_dict(row)


async def mark_deleted(db: Store, assistant_id: str) -> None:
    """Soft-deletes an assistant the way the delete use case leaves it."""
    table = Assistant.__table__  # type: ignore[attr-defined]
    async with db.write() as tx:
        await tx.execute(update(table).where(table.c.id == assistant_id).values(deleted=True))
