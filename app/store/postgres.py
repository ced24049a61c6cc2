"""PostgreSQL through an asyncpg pool.

- Statements run as asyncpg prepared statements (asyncpg's per-connection statement cache),
  `json` and `jsonb` through orjson (codecs set on each new connection).
- A write transaction is `BEGIN` … `COMMIT` on one connection (BEGIN sent with its first
  statement's turn); rows are serialised by `SELECT … FOR UPDATE` in the domain.
- A read transaction sends no BEGIN: at READ COMMITTED (the default) each statement sees its own
  snapshot inside a transaction as well, so a read-only BEGIN … COMMIT would only cost two round
  trips.
- A connection whose transaction could not be ended, or that failed under a statement (a lost
  server, a cancelled request), is terminated: the pool opens a new one at the next need, so the
  server recovers by itself when the database comes back. The pool opens connections when they
  are needed (up to POOL_MAX), and closes those idle for IDLE_SECONDS.
- An outage is DATABASE_UNAVAILABLE (503, `Retry-After`), never a 500 or a hang: a transaction
  that cannot get a connection, run its statements and commit within DATABASE_TIMEOUT_SECONDS
  (a refused, silent, frozen or restarting server, every connection busy that long, a row lock
  held elsewhere), or whose connection is lost under a statement or at COMMIT (nothing of it is
  known to be stored), raises DatabaseUnavailable. One deadline per transaction: the wait for a
  connection is bounded by it, and one timer (`loop.call_at`, not a timeout per statement)
  terminates the connection when it passes, which ends whatever statement was in flight (the
  server's answer may never come); the terminated connection is never returned to the pool.
  The server bounds its side too (`statement_timeout`, `lock_timeout`, set at connect), so a
  backend waiting on a lock gives up by itself. A lost connection expires the whole pool
  (`expire_connections`): its idle connections died with the server, and each is replaced at
  its next use instead of failing one more request.
- A full disk on the server (SQLSTATE 53100) is STORAGE_FULL (507); /readyz then probes a write
  until one succeeds (docs/database-faults.md).
- PostgreSQL refuses U+0000 in text: a statement with such a parameter is not sent, and the
  lookup is NOT_FOUND (nothing stored contains it: input validation refuses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine.url import make_url

from app.errors import DatabaseUnavailable, NotFound, StorageFull
from app.settings import Settings
from app.store.base import Listener, Store, Transaction, Tx
from app.store.statements import DIALECTS, POSTGRESQL

logger = logging.getLogger("app.store")

POOL_MAX = 20
IDLE_SECONDS = 300.0
CONNECT_TIMEOUT_SECONDS = 5.0
READY_TIMEOUT_SECONDS = 2.0
STATEMENT_CACHE = 512
# The server is gone, restarting or refusing connections (SQLSTATE classes 08, 57 and 53): the
# connection cannot be trusted, and the request is a 503, not a 500.
SERVER_GONE = (
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)
LOST = (OSError, TimeoutError, *SERVER_GONE)
# The server answered, but the statement gave up on its side: a lock not granted within
# `lock_timeout` (55P03) is a 503 as the client's own deadline is.
TIMED_OUT = (asyncpg.LockNotAvailableError,)
# /readyz after a full disk: a write that reaches the server's WAL, then rolled back
WRITE_PROBE = "CREATE TEMPORARY TABLE readyz_probe ON COMMIT DROP AS SELECT 1 AS x"


def unavailable(exc: BaseException) -> DatabaseUnavailable:
    reason = (str(exc) or type(exc).__name__).splitlines()[0][:200]
    logger.warning("database unavailable: %s: %s", type(exc).__name__, reason)
    return DatabaseUnavailable("the database is unavailable; try again shortly")


def storage_full(exc: BaseException) -> StorageFull:
    logger.warning("storage full: %s: %s", type(exc).__name__, str(exc).splitlines()[0][:200])
    return StorageFull("the database server's disk is full; the write was not stored")


def libpq_dsn(url: str) -> str:
    """`postgresql+asyncpg://…` (SQLAlchemy's form) as the `postgresql://…` asyncpg takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _set_codecs(connection: asyncpg.Connection[Any]) -> None:
    """JSON as orjson bytes both ways (the bind processors already serialised it)."""
    await connection.set_type_codec(
        "json",
        encoder=bytes,
        decoder=orjson.loads,
        schema="pg_catalog",
        format="binary",
    )
    await connection.set_type_codec(
        "jsonb",
        encoder=lambda value: b"\x01" + value,
        decoder=lambda value: orjson.loads(value[1:]),
        schema="pg_catalog",
        format="binary",
    )


async def _no_reset(_connection: asyncpg.Connection[Any]) -> None:
    """Connections come back with no transaction open and no session state changed: asyncpg's
    reset query (a round trip per transaction) has nothing to undo."""


def _refuse_nul(arguments: list[Any]) -> None:
    for value in arguments:
        if (isinstance(value, str) and "\x00" in value) or (
            isinstance(value, list) and any(isinstance(v, str) and "\x00" in v for v in value)
        ):
            raise NotFound("no such resource (an id never contains U+0000)")


def _gone(connection: asyncpg.Connection[Any]) -> bool:
    """Closed, or taken back by the pool (asyncpg releases a connection that was lost)."""
    try:
        closed: bool = connection.is_closed()
        return closed
    except asyncpg.InterfaceError:
        return True


def _terminate(connection: asyncpg.Connection[Any]) -> None:
    with contextlib.suppress(asyncpg.InterfaceError):  # already taken back: nothing to end
        connection.terminate()


def _row_count(status: str) -> int:
    """The count of a command tag: `UPDATE 3`, `DELETE 0`, `INSERT 0 1`."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else -1


class PostgresTx(Tx):
    __slots__ = ("_begin", "_connection", "broken", "expired")

    dialect = DIALECTS[POSTGRESQL]

    def __init__(
        self, connection: asyncpg.Connection[Any], write: bool, listeners: list[Listener]
    ) -> None:
        super().__init__(listeners)
        self._connection = connection
        self._begin = write  # BEGIN before the first statement
        self.broken = False  # failed without the server's answer: the connection is suspect
        self.expired = False  # the transaction's deadline passed: its connection is terminated

    def expire(self) -> None:
        """At the transaction's deadline (its timer): the connection is terminated, so the
        statement in flight (or the next one, or COMMIT) fails at once and the transaction is
        a 503; a stuck connection never goes back to the pool."""
        self.expired = self.broken = True
        logger.warning("database transaction passed DATABASE_TIMEOUT_SECONDS: connection dropped")
        _terminate(self._connection)

    async def _run(self, sql: str, arguments: list[Any], rows: bool) -> tuple[list[Any], int]:
        _refuse_nul(arguments)
        connection = self._connection
        try:
            if self._begin:
                self._begin = False
                self._notify("BEGIN")
                await connection.execute("BEGIN")
            if self._listeners:
                self._notify(sql)
            if rows:
                found = await connection.fetch(sql, *arguments)
                return found, len(found)
            return [], _row_count(await connection.execute(sql, *arguments))
        except asyncpg.DiskFullError as exc:
            raise storage_full(exc) from exc  # the server answered: the connection is fine
        except SERVER_GONE as exc:
            self.broken = True
            raise unavailable(exc) from exc
        except TIMED_OUT as exc:
            raise unavailable(exc) from exc
        except asyncpg.PostgresError:
            raise  # the server answered: the connection is fine
        except Exception as exc:
            self.broken = True  # lost or timed out in the middle of a statement
            if isinstance(exc, LOST) or self.expired or _gone(connection):
                raise unavailable(exc) from exc
            raise
        except BaseException:
            self.broken = True  # cancelled in the middle of a statement
            raise


class PostgresTransaction(Transaction):
    __slots__ = ("_connection", "_generation", "_pool", "_store", "_timer", "_tx", "_write")

    def __init__(self, store: PostgresStore, write: bool) -> None:
        self._store = store
        self._write = write
        self._pool: asyncpg.Pool[Any] | None = None
        self._connection: asyncpg.Connection[Any] | None = None
        self._tx: PostgresTx | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._generation = 0  # the store's, when the connection was taken

    async def __aenter__(self) -> Tx:
        store = self._store
        turn = store.turns
        try:
            async with asyncio.timeout(store.timeout) as deadline:
                await turn.acquire()  # first come, first served (see PostgresStore.turns)
                try:
                    self._pool = pool = await store.pool()
                    self._connection = await pool.acquire()
                except BaseException:
                    turn.release()
                    raise
        except TimeoutError as exc:  # every connection busy, or a silent server
            raise unavailable(exc) from exc
        except LOST as exc:  # refused or restarting: 503 at once
            await store.lost()
            raise unavailable(exc) from exc
        self._generation = store.generation
        self._tx = tx = PostgresTx(self._connection, self._write, self._store.statement_listeners)
        when = deadline.when()
        assert when is not None
        self._timer = asyncio.get_running_loop().call_at(when, tx.expire)
        return tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pool, connection, tx, timer = self._pool, self._connection, self._tx, self._timer
        assert pool is not None
        assert connection is not None
        assert tx is not None
        assert timer is not None
        tx._closed = True  # noqa: SLF001  (our own transaction class)
        try:
            if tx.broken or _gone(connection):
                _terminate(connection)
                if exc_type is None and self._write and not tx._begin:  # noqa: SLF001  (COMMIT lost)
                    raise unavailable(ConnectionError("the connection was lost before COMMIT"))
            elif connection.is_in_transaction():
                # bounded by the transaction's timer, which terminates the connection
                await connection.execute("COMMIT" if exc_type is None else "ROLLBACK")
                if exc_type is None and self._write:
                    self._store.storage_full = False  # a write reached the disk again
        except BaseException as failure:
            _terminate(connection)  # the pool replaces it
            if exc_type is None:
                if isinstance(failure, asyncpg.DiskFullError):  # nothing of it was stored
                    self._store.storage_full = True
                    raise storage_full(failure) from failure
                if isinstance(failure, LOST) or tx.expired:  # COMMIT lost: not known stored
                    await self._store.lost()
                    raise unavailable(failure) from failure
            elif isinstance(failure, Exception):
                return  # a failed ROLLBACK only costs the connection: the block's error goes on
            raise
        finally:
            timer.cancel()
            if exc_type is not None:
                if issubclass(exc_type, DatabaseUnavailable):
                    await self._store.lost()
                elif issubclass(exc_type, StorageFull):
                    self._store.storage_full = True
            if self._generation != self._store.generation:
                # the pool expired it meanwhile: released, it would be closed politely, which
                # waits for the server's goodbye (forever, on a frozen network)
                _terminate(connection)
            try:
                await pool.release(connection)
            finally:
                self._store.turns.release()


class PostgresStore(Store):
    def __init__(self, settings: Settings, *, lazy_commits: bool = False) -> None:
        super().__init__(POSTGRESQL)
        self._dsn = libpq_dsn(settings.database_url)
        self.timeout = settings.database_timeout_seconds
        milliseconds = str(max(1, round(self.timeout * 1000)))
        self._server_settings = {"statement_timeout": milliseconds, "lock_timeout": milliseconds}
        if lazy_commits:  # see open_store
            self._server_settings["synchronous_commit"] = "off"
        self.storage_full = False  # the last write failed for a full disk (until one succeeds)
        self.generation = 0  # of the pool's connections: one more at each `lost`
        self._pool: asyncpg.Pool[Any] | None = None
        self._opening = asyncio.Lock()
        # Transactions take turns for the pool's connections here, in the order they asked:
        # asyncpg's pool hands a released connection to whoever asks next, so under load a
        # request arriving now could overtake one that has waited long (a long latency tail).
        self.turns = asyncio.Semaphore(POOL_MAX)

    async def pool(self) -> asyncpg.Pool[Any]:
        """The pool, made at first use (it opens no connection until one is needed)."""
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=0,
                        max_size=POOL_MAX,
                        max_inactive_connection_lifetime=IDLE_SECONDS,
                        timeout=CONNECT_TIMEOUT_SECONDS,
                        statement_cache_size=STATEMENT_CACHE,
                        init=_set_codecs,
                        reset=_no_reset,
                        server_settings=self._server_settings,
                    )
        return self._pool

    async def lost(self) -> None:
        """A connection was lost: the idle ones are suspect too, each is replaced at its next
        use (the pool reconnects by itself once the server is back)."""
        self.generation += 1
        if self._pool is not None:
            await self._pool.expire_connections()

    def read(self) -> Transaction:
        return PostgresTransaction(self, write=False)

    def write(self) -> Transaction:
        return PostgresTransaction(self, write=True)

    async def ping(self) -> bool:
        pool = await self.pool()
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                connection = await pool.acquire()
                try:
                    await connection.fetchval("SELECT 1")
                    if self.storage_full:  # ready again once a write reaches the disk
                        async with connection.transaction():
                            await connection.execute(WRITE_PROBE)
                        self.storage_full = False
                except BaseException:
                    connection.terminate()  # a dead (or silent) connection is replaced
                    raise
                finally:
                    await pool.release(connection)
        except Exception as exc:  # noqa: BLE001  (any failure means "not ready")
            logger.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
            return False
        return True

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(10):
                    await pool.close()
            except (TimeoutError, OSError, asyncpg.PostgresError):
                pool.terminate()
