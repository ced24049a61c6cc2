"""Integrations and actions inserted straight into the database (independent of their routes)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from app.db import Database
from app.models import Action, Integration, new_id, utcnow


async def insert_children(
    db: Database, org_id: str, assistant_id: str, integrations: int = 2, actions: int = 2
) -> tuple[list[str], list[str]]:
    """`integrations` integrations and `actions` actions of one assistant: their ids, in order."""
    now = utcnow()
    rows_i = [
        Integration(
            id=new_id(),
            org_id=org_id,
            assistant_id=assistant_id,
            integration_id=f"kind{n}",
            config={"n": n},
            created_at=now + timedelta(microseconds=n),
            updated_at=now + timedelta(microseconds=n),
        )
        for n in range(integrations)
    ]
    rows_a = [
        Action(
            id=new_id(),
            org_id=org_id,
            assistant_id=assistant_id,
            action_id="TOOLS:HTTP_REQUEST",
            name=f"action {n}",
            config={"input": {"n": n}, "definitions": []},
            position=(n + 1) * 100,
            created_at=now,
            updated_at=now,
        )
        for n in range(actions)
    ]
    async with db.write() as session:
        session.add_all([*rows_i, *rows_a])
    return [r.id for r in rows_i], [r.id for r in rows_a]


async def count_children(db: Database, assistant_id: str) -> tuple[int, int]:
    """How many integrations and actions rows the assistant has in the database."""
    async with db.read() as session:
        integrations = await session.scalar(
            select(func.count()).where(Integration.assistant_id == assistant_id)
        )
        actions = await session.scalar(
            select(func.count()).where(Action.assistant_id == assistant_id)
        )
    return int(integrations or 0), int(actions or 0)
