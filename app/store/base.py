"""What both databases' stores share: the transaction's statement methods, the store's shape."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, overload

from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import ClauseElement

from app.store.statements import DIALECTS, Compiled, Statement, compiled

# what a transaction runs: a Statement (compiled once per dialect) or a Core clause
Runnable = Statement[Any] | ClauseElement

R = TypeVar("R")
Listener = Callable[[str], None]
NO_PARAMETERS: Mapping[str, Any] = {}


class TransactionClosed(RuntimeError):
    """A statement on a transaction whose block has ended."""


class Tx(ABC):
    """One transaction: run statements (a `Statement`, or a Core statement compiled per call)
    with named parameters; rows come back as records of the class given as `into`, or as
    tuples. Opened by `Store.read()` / `Store.write()`, which commit or roll back."""

    __slots__ = ("_closed", "_listeners")

    dialect: Dialect

    def __init__(self, listeners: list[Listener]) -> None:
        self._listeners = listeners
        self._closed = False

    @property
    def dialect_name(self) -> str:
        return self.dialect.name

    @abstractmethod
    async def _run(self, sql: str, arguments: list[Any], rows: bool) -> tuple[list[Any], int]:
        """(rows, rowcount) of one statement (rows only when `rows`)."""

    def _prepare(
        self, statement: Runnable, parameters: Mapping[str, Any] | None
    ) -> tuple[Compiled, list[Any]]:
        if self._closed:
            raise TransactionClosed("this transaction has ended")
        done = compiled(statement, self.dialect)
        return done, done.arguments(parameters or NO_PARAMETERS)

    def _notify(self, sql: str) -> None:
        for listener in self._listeners:
            listener(sql)

    @overload
    async def all(
        self,
        statement: Runnable,
        parameters: Mapping[str, Any] | None,
        into: type[R],
    ) -> list[R]: ...

    @overload
    async def all(
        self,
        statement: Runnable,
        parameters: Mapping[str, Any] | None = None,
        into: None = None,
    ) -> list[tuple[Any, ...]]: ...

    async def all(
        self,
        statement: Runnable,
        parameters: Mapping[str, Any] | None = None,
        into: type[Any] | None = None,
    ) -> list[Any]:
        """Every row."""
        done, arguments = self._prepare(statement, parameters)
        rows, _ = await self._run(done.sql, arguments, True)
        return list(map(done.reader(into), rows))

    @overload
    async def first(
        self,
        statement: Runnable,
        parameters: Mapping[str, Any] | None,
        into: type[R],
    ) -> R | None: ...

    @overload
    async def first(
        self,
        statement: Runnable,
        parameters: Mapping[str, Any] | None = None,
        into: None = None,
    ) -> tuple[Any, ...] | None: ...

    async def first(
        self,
        statement: Runnable,
        parameters: Mapping[str, Any] | None = None,
        into: type[Any] | None = None,
    ) -> Any:
        """The first row, or None."""
        done, arguments = self._prepare(statement, parameters)
        rows, _ = await self._run(done.sql, arguments, True)
        return done.reader(into)(rows[0]) if rows else None

    async def scalar(self, statement: Runnable, parameters: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        row = await self.first(statement, parameters)
        return None if row is None else row[0]

    async def execute(
        self, statement: Runnable, parameters: Mapping[str, Any] | None = None
    ) -> int:
        """Runs a statement that answers no rows; the number of rows it changed."""
        done, arguments = self._prepare(statement, parameters)
        _, count = await self._run(done.sql, arguments, False)
        return count


class Transaction(ABC):
    """`async with` one transaction: commits when the block ends, rolls back when it raises."""

    __slots__ = ()

    @abstractmethod
    async def __aenter__(self) -> Tx: ...

    @abstractmethod
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class Store(ABC):
    """The connections to one database and the transactions on them."""

    dialect: Dialect
    # a write failed for a full disk since the last one that succeeded (/readyz probes then)
    storage_full: bool = False

    def __init__(self, dialect_name: str) -> None:
        self.dialect = DIALECTS[dialect_name]
        # called with each statement's SQL (BEGIN included), e.g. to count them in a test
        self.statement_listeners: list[Listener] = []

    @property
    def is_sqlite(self) -> bool:
        return self.dialect.name == "sqlite"

    @abstractmethod
    def read(self) -> Transaction:
        """A read transaction."""

    @abstractmethod
    def write(self) -> Transaction:
        """A write transaction (serialised per row, or per database on SQLite)."""

    def lookup(self) -> Transaction:
        """A read of ONE statement, which is atomic by itself: no BEGIN and no COMMIT (on
        SQLite it also runs on the event loop, no trip to the connection's thread: for a read
        by primary keys, such as the runtime's read of an environment, docs/releases.md)."""
        return self.read()

    def data_directories(self) -> list[Path]:
        """The local directories the database writes to (none for a database server)."""
        return []

    @abstractmethod
    async def ping(self) -> bool:
        """Whether the database answers within READY_TIMEOUT_SECONDS (for /readyz)."""

    @abstractmethod
    async def close(self) -> None:
        """Closes every connection."""
