"""SQLite through aiosqlite: a pool of connections, each with its own thread.

At most one trip to a connection's thread per statement, and none where SQLite cannot wait:

- A read transaction's BEGIN goes to the thread with its first statement (one trip), each
  further statement is one trip, and so is its COMMIT. Reads stay on the thread so that the
  loop keeps interleaving requests fairly (running them inline made the read tail long).
  A lookup (`Store.lookup`: one statement by primary keys, in autocommit mode, so no BEGIN
  and no COMMIT) runs on the event loop: in WAL mode a reader never waits for a writer, and
  such a read costs less than the trip to the thread would.
- A write transaction's `BEGIN IMMEDIATE` (which may wait for another process's write lock)
  goes to the thread with its first statement; once it holds the write lock, its statements run
  at once on the event loop: they cannot wait, and pages reach the WAL file only at COMMIT,
  which goes to the thread (the fsync). The write transactions of one process take turns on an
  asyncio lock before they take a connection: SQLite has one writer anyway, and its busy handler
  (which sleeps with back-off) then only arbitrates between processes.

An outage is DATABASE_UNAVAILABLE (503, `Retry-After`), never a 500: a database file that
cannot be opened, read or written (a missing directory, a disk error, a read-only file), or a
writer that cannot get the write lock within DATABASE_TIMEOUT_SECONDS (another writer of this
process ahead of it, then another process's lock: one deadline for both waits, the busy
timeout of its BEGIN IMMEDIATE being what is left of it), or no connection free within that
time. A full disk (SQLITE_FULL, ENOSPC) is STORAGE_FULL (507): nothing of the write is stored,
and the store remembers it for /readyz until a write succeeds again. Errors that are bugs (SQL,
constraints) stay what they are.

Every connection: `busy_timeout` (DATABASE_TIMEOUT_SECONDS; first: the next pragmas may wait),
WAL, `synchronous` from the settings, `foreign_keys=ON`; autocommit mode
(`isolation_level=None`), so BEGIN is ours.

Private parts of aiosqlite relied on (tests/test_store_private_parts.py fails when they change):
`Connection._execute(fn)` (runs `fn()` on the connection's thread and awaits its result: one
trip), `Connection._conn` (the sqlite3 connection, for the statements run on the loop and to
read `in_transaction`), `Connection._thread` (made a daemon, as SQLAlchemy does, so that it never
holds the process open).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.engine.url import make_url

from app.errors import DatabaseUnavailable, DomainError, StorageFull
from app.settings import Settings
from app.store.base import Listener, Store, Transaction, Tx
from app.store.disk import is_full
from app.store.statements import DIALECTS, SQLITE

logger = logging.getLogger("app.store")

T = TypeVar("T")
POOL_SIZE = 8  # one writer at a time; a few readers suffice
# a writer that waited this long for this process's other writers sets its BEGIN's busy timeout
# to what is left of its deadline (else the connection's, the whole timeout, is right)
WAITED_SECONDS = 0.01
READY_TIMEOUT_SECONDS = 2.0
STATEMENT_CACHE = 256  # per connection (sqlite3's prepared statements)
SYNCHRONOUS = frozenset({"OFF", "NORMAL", "FULL", "EXTRA", "0", "1", "2", "3"})
PROBE = "SELECT count(*) FROM sqlite_master"
THREAD_END_POLLS = 100  # of 10 ms: a failed connection's thread ends within a second
UNAVAILABLE_MESSAGE = "the database is unavailable; try again shortly"
# sqlite3.OperationalError messages that mean "the database cannot be used now", not a bug
UNAVAILABLE = (
    "database is locked",
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
    "readonly database",
)


def unavailable(exc: BaseException) -> DomainError | None:
    """The DATABASE_UNAVAILABLE (or STORAGE_FULL) an error means, or None when it means
    something else."""
    if is_full(exc):
        logger.warning("storage full: %s: %s", type(exc).__name__, exc)
        return StorageFull("the disk is full; the write was not stored")
    if isinstance(exc, TimeoutError | OSError) or (
        isinstance(exc, sqlite3.OperationalError) and str(exc).lower().startswith(UNAVAILABLE)
    ):
        logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return DatabaseUnavailable(UNAVAILABLE_MESSAGE)
    return None


def _run(
    raw: sqlite3.Connection, sql: str, arguments: list[Any], begin: str | None = None
) -> tuple[list[Any], int]:
    """One statement (after `begin`, when given): its rows and its rowcount."""
    if begin is not None:
        raw.execute(begin)
    cursor = raw.execute(sql, arguments)
    try:
        return cursor.fetchall(), cursor.rowcount
    finally:
        cursor.close()


def _run_waiting(
    raw: sqlite3.Connection,
    sql: str,
    arguments: list[Any],
    begin: str,
    busy: tuple[int, int],
) -> tuple[list[Any], int]:
    """`_run` whose BEGIN waits for the lock `busy[0]` ms (then the connection's `busy[1]`)."""
    raw.execute(f"PRAGMA busy_timeout={busy[0]}").close()
    try:
        raw.execute(begin)
    finally:
        raw.execute(f"PRAGMA busy_timeout={busy[1]}").close()
    cursor = raw.execute(sql, arguments)
    try:
        return cursor.fetchall(), cursor.rowcount
    finally:
        cursor.close()


def unicode_lower(value: str | None) -> str | None:
    """SQL `unicode_lower(x)`: Python's lower case of every letter (SQLite's `lower` and `LIKE`
    know only ASCII's); the search of assistants by a non-ASCII text uses it."""
    return None if value is None else value.lower()


def _rollback_if_open(raw: sqlite3.Connection) -> None:
    if raw.in_transaction:
        raw.execute("ROLLBACK")


class Connection:
    """One aiosqlite connection: a sqlite3 connection and the thread that runs its work."""

    __slots__ = ("aio", "raw")

    def __init__(self, aio: aiosqlite.Connection) -> None:
        self.aio = aio
        self.raw: sqlite3.Connection = aio._conn

    async def call(self, work: Callable[[], T]) -> T:
        """`work()` on the connection's thread: one trip."""
        # no-untyped-call: aiosqlite's private _execute (pinned, tests/test_store_private_parts.py)
        result: T = await self.aio._execute(work)  # type: ignore[no-untyped-call]
        return result

    async def commit(self) -> None:
        """COMMIT on the thread (the fsync), when a transaction is open (nothing is in flight:
        every statement of the transaction was awaited)."""
        if self.raw.in_transaction:
            await self.call(partial(self.raw.execute, "COMMIT"))

    async def rollback(self) -> None:
        """ROLLBACK, decided on the thread: after a cancellation a statement (or its BEGIN) may
        still be queued there, and this runs after it."""
        await self.call(partial(_rollback_if_open, self.raw))


class Pool:
    """Up to `size` connections, opened when first needed and kept; a connection that failed
    is closed and replaced by a new one at the next need."""

    def __init__(self, connect: Callable[[], Any], size: int, timeout: float) -> None:
        self._connect = connect
        self._timeout = timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Connection] = []
        self._all: set[Connection] = set()
        # discarded connections whose close was interrupted (a cancelled request): their
        # threads may still report to the loop, so `close` waits for them
        self._closing: set[Connection] = set()

    async def acquire(self, within: float | None = None) -> Connection:
        """A connection, within `within` seconds (the pool's own timeout when not given)."""
        slots = self._slots
        if slots.locked():  # none free: wait for one, within the time given
            timeout = self._timeout if within is None else within
            try:
                async with asyncio.timeout(timeout):
                    await slots.acquire()
            except TimeoutError:
                raise TimeoutError(f"no SQLite connection free within {timeout:.1f} s") from None
        else:
            await slots.acquire()  # at once (no timer: the common case costs nothing more)
        if self._idle:
            return self._idle.pop()
        try:
            connection = Connection(await self._connect())
        except BaseException:
            self._slots.release()
            raise
        self._all.add(connection)
        return connection

    def release(self, connection: Connection) -> None:
        self._idle.append(connection)
        self._slots.release()

    async def discard(self, connection: Connection) -> None:
        """Closes a connection in an unknown state; its slot opens a new one when needed."""
        self._all.discard(connection)
        self._closing.add(connection)
        self._slots.release()
        try:
            await connection.aio.close()
        except Exception as exc:  # noqa: BLE001  (it is gone either way)
            logger.warning("closing a SQLite connection failed: %s", exc)
        self._closing.discard(connection)  # not when cancelled: `close` waits for it then

    async def close(self) -> None:
        """Closes every connection and waits until their threads have ended: a thread that
        finished a cancelled call reports to the loop, which must still be open then."""
        connections, self._all, self._idle = list(self._all), set(), []
        closing, self._closing = list(self._closing), set()
        for connection in connections:
            try:
                await connection.aio.close()
            except Exception as exc:  # noqa: BLE001
                logger.warning("closing a SQLite connection failed: %s", exc)
        for connection in [*connections, *closing]:
            await _thread_ended(connection.aio)


class SQLiteTx(Tx):
    __slots__ = ("_begin", "_connection", "_inline", "busy")

    dialect = DIALECTS[SQLITE]

    def __init__(
        self, connection: Connection, write: bool, listeners: list[Listener], single: bool = False
    ) -> None:
        super().__init__(listeners)
        self._connection = connection
        # a lookup (`single`): autocommit, its one statement on the loop (`Store.lookup`)
        self._begin: str | None = None if single else "BEGIN IMMEDIATE" if write else "BEGIN"
        self._inline = single  # True once BEGIN IMMEDIATE holds the write lock, or a lookup
        self.busy: tuple[int, int] | None = None  # (this BEGIN's, the connection's) busy ms

    async def _run(self, sql: str, arguments: list[Any], rows: bool) -> tuple[list[Any], int]:
        connection = self._connection
        if self._listeners:
            if self._begin is not None:
                self._notify(self._begin)
            self._notify(sql)
        try:
            if self._inline:
                return _run(connection.raw, sql, arguments)
            begin, self._begin = self._begin, None
            if begin is not None:
                run = (
                    partial(_run, connection.raw, sql, arguments, begin)
                    if self.busy is None
                    else partial(_run_waiting, connection.raw, sql, arguments, begin, self.busy)
                )
                outcome = await connection.call(run)
                self._inline = begin == "BEGIN IMMEDIATE"
                return outcome
            return await connection.call(partial(_run, connection.raw, sql, arguments))
        except Exception as exc:
            if (outage := unavailable(exc)) is not None:
                raise outage from exc
            raise


def trace_statements(tracer: Any) -> None:
    """A span per statement (`db.system` sqlite, `db.statement`), made through the OpenTelemetry
    API given as `tracer` (app/observability/tracing.py, only when tracing is on): the sqlite3
    instrumentation never sees `Connection.execute` on the connections aiosqlite's threads hold.
    Once per process; until then nothing here costs anything."""
    if getattr(SQLiteTx._run, "traced", False):
        return
    from opentelemetry.trace import SpanKind  # noqa: PLC0415  (tracing is on)

    untraced = SQLiteTx._run

    async def traced(self: SQLiteTx, sql: str, arguments: list[Any], rows: bool) -> Any:
        name = sql.split(None, 1)[0].upper() if sql else "SQL"
        attributes = {"db.system": "sqlite", "db.statement": sql}
        with tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes):
            return await untraced(self, sql, arguments, rows)

    # mypy ignore below: tracing wraps the method once, at start-up
    traced.traced = True  # type: ignore[attr-defined]
    SQLiteTx._run = traced  # type: ignore[method-assign]


class SQLiteTransaction(Transaction):
    __slots__ = ("_connection", "_single", "_store", "_tx", "_write")

    def __init__(self, store: SQLiteStore, write: bool, single: bool = False) -> None:
        self._store = store
        self._write = write
        self._single = single
        self._connection: Connection | None = None
        self._tx: SQLiteTx | None = None

    async def __aenter__(self) -> Tx:
        store = self._store
        if not self._write:
            try:
                self._connection = await store.pool.acquire()
            except Exception as exc:
                if (outage := unavailable(exc)) is not None:
                    raise outage from exc
                raise
            self._tx = SQLiteTx(
                self._connection, False, store.statement_listeners, single=self._single
            )
            return self._tx
        # a writer: this process's other writers, then a connection, then (on the thread, in
        # its BEGIN IMMEDIATE) other processes' write lock, all within one deadline
        lock = store.write_lock
        loop = asyncio.get_running_loop()
        deadline = loop.time() + store.busy_seconds
        if lock.locked():  # another writer of this process holds it: wait within the deadline
            try:
                async with asyncio.timeout_at(deadline):
                    await lock.acquire()
            except TimeoutError:
                logger.warning("database unavailable: this process's write lock was not free")
                raise DatabaseUnavailable(UNAVAILABLE_MESSAGE) from None
        else:
            await lock.acquire()  # free (or just handed to a waiter, itself bounded): no timer
        try:
            self._connection = await store.pool.acquire(deadline - loop.time())
        except BaseException as exc:
            lock.release()
            if isinstance(exc, Exception) and (outage := unavailable(exc)) is not None:
                raise outage from exc
            raise
        self._tx = tx = SQLiteTx(self._connection, True, store.statement_listeners)
        left = deadline - loop.time()
        if store.busy_seconds - left > WAITED_SECONDS:
            tx.busy = (max(1, int(left * 1000)), store.busy_ms)
        return tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, tx, store = self._connection, self._tx, self._store
        assert connection is not None
        assert tx is not None
        tx._closed = True
        try:
            # something was sent: there is a transaction to end (a lookup's ended with it)
            if tx._begin is None and (not self._single or connection.raw.in_transaction):
                if exc_type is None:
                    await connection.commit()
                else:
                    await connection.rollback()
        except BaseException as failure:
            await self._recover(connection)
            if isinstance(failure, Exception) and (outage := unavailable(failure)) is not None:
                store.storage_full = isinstance(outage, StorageFull) or store.storage_full
                raise outage from failure
            raise
        else:
            store.pool.release(connection)
            if self._write and exc_type is None and tx._begin is None:
                store.storage_full = False  # a write reached the disk again
        finally:
            if self._write:
                store.write_lock.release()
            if exc_type is not None and issubclass(exc_type, StorageFull):
                store.storage_full = True

    async def _recover(self, connection: Connection) -> None:
        """After a failed COMMIT or ROLLBACK: back to the pool once nothing is left open, else
        closed (a new connection takes its place when needed)."""
        try:
            await connection.rollback()
        except BaseException:  # noqa: BLE001  (whatever failed, the connection is discarded)
            await self._store.pool.discard(connection)
            return
        self._store.pool.release(connection)


def database_path(url: str) -> str:
    return make_url(url).database or ""


def ensure_directory(path: str) -> None:
    if path and path != ":memory:":
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # the server still starts; /readyz reports 503 until it exists
            logger.warning("cannot create the directory of the SQLite database: %s", exc)


class SQLiteStore(Store):
    def __init__(self, settings: Settings) -> None:
        super().__init__(SQLITE)
        self.path = database_path(settings.database_url)
        synchronous = settings.sqlite_synchronous.upper()
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"SQLITE_SYNCHRONOUS must be one of {sorted(SYNCHRONOUS)}")
        self.busy_seconds = settings.sqlite_busy_seconds
        self.busy_ms = max(1, int(self.busy_seconds * 1000))
        self.storage_full = False  # the last write failed for a full disk (until one succeeds)
        self._pragmas = (
            f"PRAGMA busy_timeout={self.busy_ms}",
            "PRAGMA journal_mode=WAL",
            f"PRAGMA synchronous={synchronous}",
            "PRAGMA foreign_keys=ON",
        )
        self.pool = Pool(self._connect, POOL_SIZE, settings.database_timeout_seconds)
        self.write_lock = asyncio.Lock()
        ensure_directory(self.path)

    def _open(self) -> sqlite3.Connection:
        raw = sqlite3.connect(
            self.path,
            timeout=self.busy_seconds,
            isolation_level=None,  # autocommit: BEGIN is ours
            check_same_thread=False,  # a write transaction's statements run on the loop
            cached_statements=STATEMENT_CACHE,
        )
        try:
            for pragma in self._pragmas:
                raw.execute(pragma).close()
            raw.create_function("unicode_lower", 1, unicode_lower, deterministic=True)
        except BaseException:
            raw.close()
            raise
        return raw

    async def _connect(self) -> aiosqlite.Connection:
        connection = aiosqlite.Connection(self._open, iter_chunk_size=64)
        connection._thread.daemon = True  # never holds the process open
        try:
            return await connection
        except BaseException:
            await _thread_ended(connection)
            raise

    def data_directories(self) -> list[Path]:
        return [Path(self.path).parent] if self.path and self.path != ":memory:" else []

    def read(self) -> Transaction:
        return SQLiteTransaction(self, write=False)

    def write(self) -> Transaction:
        return SQLiteTransaction(self, write=True)

    def lookup(self) -> Transaction:
        return SQLiteTransaction(self, write=False, single=True)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS), self.read() as tx:
                await _probe(tx)
        except Exception as exc:  # noqa: BLE001  (any failure means "not ready")
            logger.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
            return False
        return True

    async def close(self) -> None:
        await self.pool.close()


async def _thread_ended(connection: aiosqlite.Connection) -> None:
    """After a failed connect aiosqlite stops the connection's thread without waiting for it;
    the thread then reports to this loop: wait (briefly) until it has, so that it never reports
    to a loop that has closed meanwhile (an error in that thread)."""
    for _ in range(THREAD_END_POLLS):
        if not connection._thread.is_alive():
            return
        await asyncio.sleep(0.01)


async def _probe(tx: Tx) -> None:
    assert isinstance(tx, SQLiteTx)
    await tx._run(PROBE, [], True)
