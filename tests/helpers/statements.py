"""The SQL statements the store runs while a block runs (its `statement_listeners`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.store import Store


@contextmanager
def statements(db: Store) -> Iterator[list[str]]:
    """The statements' texts, in order, as the block runs them."""
    seen: list[str] = []
    db.statement_listeners.append(seen.append)
    try:
        yield seen
    finally:
        db.statement_listeners.remove(seen.append)
