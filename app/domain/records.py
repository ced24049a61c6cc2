"""Assistants read for lists as light records (SQLAlchemy Core rows, no ORM identity map): plain
objects with the model's attribute names, which the document builders and the GraphQL types
read like model rows. Nothing writes through them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.models import Assistant

TABLE = Assistant.__table__  # type: ignore[attr-defined]
COLUMNS: tuple[str, ...] = tuple(column.key for column in TABLE.c)


class AssistantRecord:
    """One assistant as read, every column an attribute."""

    __slots__ = COLUMNS

    def __init__(self, row: Sequence[Any]) -> None:
        for name, value in zip(COLUMNS, row, strict=True):
            setattr(self, name, value)
