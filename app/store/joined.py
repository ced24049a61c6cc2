"""One request's transaction, opened by the transport: a `Store` whose `read()` and `write()`
run inside one transaction that is already open, so that what the request leaves behind (its
effect, and the answer stored for its `Idempotency-Key`: docs/idempotency.md) commits at once.

- With `savepoints` (GraphQL) the joined transaction's statements also take turns: GraphQL
  resolves fields concurrently, and one connection runs one statement at a time. A REST route
  awaits its statements one by one.
- A `write()` block that raises undoes what it wrote: with `savepoints` (GraphQL, where one
  mutation of a document may fail and the others stand) by `ROLLBACK TO SAVEPOINT`; without
  (REST, one block per request) the store is marked `failed` and the transport rolls the whole
  transaction back.
- Nothing commits here: whoever opened the transaction commits or rolls it back.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from app.store.base import Store, Transaction, TransactionClosed, Tx

# where the transport puts the request's `JoinedStore` in the ASGI scope
REQUEST_STORE = "app.request_store"


def store_for(scope: dict[str, Any] | Any, store: Store) -> Store:
    """The store a request's code uses: its transport's transaction when it holds one (a
    request with an `Idempotency-Key`), else the app's store."""
    joined: Store | None = scope.get(REQUEST_STORE)
    return store if joined is None else joined


class JoinedTx(Tx):
    """The statements of a block, sent on the request's transaction in turn."""

    __slots__ = ("_lock", "_outer", "dialect")

    def __init__(self, outer: Tx, lock: asyncio.Lock | None) -> None:
        super().__init__([])  # the outer transaction tells its own listeners
        self._outer = outer
        self._lock = lock
        self.dialect = outer.dialect

    async def _run(self, sql: str, arguments: list[Any], rows: bool) -> tuple[list[Any], int]:
        outer = self._outer
        if outer._closed:  # noqa: SLF001  (a Tx of ours)
            raise TransactionClosed("the request's transaction has ended")
        if self._lock is None:
            return await outer._run(sql, arguments, rows)  # noqa: SLF001
        async with self._lock:
            return await outer._run(sql, arguments, rows)  # noqa: SLF001


class JoinedTransaction(Transaction):
    __slots__ = ("_savepoint", "_store", "_tx", "_write")

    def __init__(self, store: JoinedStore, write: bool) -> None:
        self._store = store
        self._write = write
        self._savepoint: str | None = None
        self._tx: JoinedTx | None = None

    async def __aenter__(self) -> Tx:
        store = self._store
        self._tx = tx = JoinedTx(store.outer, store.lock)
        if self._write and store.savepoints:
            store.blocks += 1
            self._savepoint = f"request_block_{store.blocks}"
            await tx._run(f"SAVEPOINT {self._savepoint}", [], False)  # noqa: SLF001
        return tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        tx = self._tx
        assert tx is not None
        tx._closed = True  # noqa: SLF001  (our own transaction class)
        if not self._write:
            return
        savepoint = self._savepoint
        if savepoint is None:
            if exc_type is not None:
                self._store.failed = True
            return
        verb = "RELEASE SAVEPOINT" if exc_type is None else "ROLLBACK TO SAVEPOINT"
        try:
            await tx._run(f"{verb} {savepoint}", [], False)  # noqa: SLF001
        except Exception:
            self._store.failed = True  # the transport rolls everything back
            if exc_type is None:
                raise


class JoinedStore(Store):
    """The `Store` a request's code sees while its transport holds `outer` open."""

    def __init__(self, store: Store, outer: Tx, *, savepoints: bool) -> None:
        super().__init__(store.dialect.name)
        self.store = store  # the app's store (for what must run apart: nothing of a request)
        self.outer = outer
        self.savepoints = savepoints
        self.lock = asyncio.Lock() if savepoints else None
        self.blocks = 0
        self.failed = False  # a write block raised: the transaction must not commit

    def read(self) -> Transaction:
        return JoinedTransaction(self, write=False)

    def write(self) -> Transaction:
        return JoinedTransaction(self, write=True)

    async def ping(self) -> bool:
        return await self.store.ping()

    async def close(self) -> None:
        """The app's store is closed by the app, never by a request."""
