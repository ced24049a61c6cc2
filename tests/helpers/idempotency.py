"""What the idempotency tests look at: the stored answers, and the requests a process runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from starlette.applications import Starlette

from app.domain.idempotency import TABLE
from app.http.idempotency import IdempotencyMiddleware
from app.store import Store


async def stored_keys(db: Store) -> list[str]:
    """The `Idempotency-Key`s whose answers are stored, sorted."""
    async with db.read() as tx:
        rows = await tx.all(select(TABLE.c.key).order_by(TABLE.c.key))
    return [row[0] for row in rows]


async def count_rows(db: Store, table: Any) -> int:
    async with db.read() as tx:
        found: int = await tx.scalar(select(func.count()).select_from(table))
    return found


def idempotency_layer(app: Starlette) -> IdempotencyMiddleware:
    """The app's idempotency middleware (the app has served a request: its stack is built)."""
    layer: Any = app.middleware_stack
    while not isinstance(layer, IdempotencyMiddleware):
        layer = layer.app
    return layer
