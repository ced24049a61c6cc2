"""aiosqlite with at most one thread hop per statement, and none where SQLite cannot wait.

SQLAlchemy's aiosqlite adapter makes four round trips to the connection's thread for each
statement (open a cursor, execute, fetch all, close the cursor), each one a wake-up of the event
loop. This connection's cursors do all four at once; SQLAlchemy sees the same DBAPI surface
(description, rowcount, lastrowid, rows).

What may block goes to the connection's thread as before: BEGIN (IMMEDIATE waits for the write
lock of other processes), COMMIT (the fsync), PRAGMAs, reads of read transactions (so that the
loop keeps interleaving requests fairly: running them inline made the read tail long), anything
outside a transaction. The statements of a `BEGIN IMMEDIATE` transaction run at once on the event
loop: it already holds the write lock, so they cannot wait, and pages reach the WAL file only at
COMMIT; write transactions take turns anyway (Database.write()).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import aiosqlite

Outcome = tuple[Any, list[Any], int, int | None]
INLINE = ("SELECT", "WITH", "INSERT", "UPDATE", "DELETE")


def _run(cursor: sqlite3.Cursor, many: bool, sql: str, parameters: Any) -> Outcome:
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor:
    """The async cursor SQLAlchemy's adapter drives; results are fetched with the execute."""

    arraysize = 1

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    async def _go(self, many: bool, sql: str, parameters: Any) -> OneHopCursor:
        connection = self._connection
        raw = connection._conn  # one statement at a time, in this thread or in its own
        verb = sql.lstrip()[:7].upper()
        inline = connection.write_locked and raw.in_transaction and verb.startswith(INLINE)
        if inline:
            outcome = _run(raw.cursor(), many, sql, parameters)
        else:
            outcome = await connection._execute(lambda: _run(raw.cursor(), many, sql, parameters))
            if verb.startswith("BEGIN"):
                connection.write_locked = "IMMEDIATE" in sql.upper()
        self.description, self._rows, self.rowcount, self.lastrowid = outcome
        return self

    async def execute(self, sql: str, parameters: Any = ()) -> OneHopCursor:
        return await self._go(False, sql, parameters)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneHopCursor:
        return await self._go(True, sql, list(parameters))

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self.arraysize
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def close(self) -> None:
        self._rows = []

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None


class OneHopConnection(aiosqlite.Connection):
    write_locked = False  # inside a BEGIN IMMEDIATE transaction

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)

    async def commit(self) -> None:
        self.write_locked = False
        await super().commit()

    async def rollback(self) -> None:
        """No round trip when no transaction is open (the pool's reset after every COMMIT)."""
        self.write_locked = False
        raw = self._connection
        if raw is not None and not raw.in_transaction:
            return
        await super().rollback()


def connect(database: str, **kwargs: Any) -> OneHopConnection:
    """For SQLAlchemy's `async_creator_fn` connect argument (aiosqlite's `connect()`)."""

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(database, **kwargs)

    connection = OneHopConnection(connector, iter_chunk_size=64)
    connection._thread.daemon = True  # as SQLAlchemy does: never holds the process open
    return connection
