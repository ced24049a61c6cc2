"""Assistants read for lists as light records (SQLAlchemy Core rows, no ORM identity map): plain
objects with the model's attribute names, which the document builders and the GraphQL types
read like model rows. Nothing writes through them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from app.models import Assistant

TABLE = Assistant.__table__  # type: ignore[attr-defined]
COLUMNS: tuple[str, ...] = tuple(column.key for column in TABLE.c)


async def core_execute(
    session: AsyncSession, statement: Executable, parameters: Mapping[str, Any] | None = None
) -> Result[Any]:
    """A Core statement on the session's own connection and transaction, without the ORM's
    per-statement work (its compile state, entity loading, autoflush): for the hot paths'
    statements, which name tables, not entities, and run with nothing pending to flush."""
    connection = await session.connection()
    return await connection.execute(statement, parameters)


class AssistantRecord:
    """One assistant as read, every column an attribute."""

    __slots__ = COLUMNS

    def __init__(self, row: Sequence[Any]) -> None:
        for name, value in zip(COLUMNS, row, strict=True):
            setattr(self, name, value)
