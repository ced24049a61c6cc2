"""Integrations and actions inserted straight into the database (independent of their routes)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select

from app.models import Action, Integration, new_id, utcnow
from app.store import Store

INTEGRATIONS = Integration.__table__
ACTIONS = Action.__table__


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
    return [r["id"] for r in rows_i], [r["id"] for r in rows_a]


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
