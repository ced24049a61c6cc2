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
- PostgreSQL refuses U+0000 in text: a statement with such a parameter is not sent, and the
  lookup is NOT_FOUND (nothing stored contains it: input validation refuses it).
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine.url import make_url

from app.domain.errors import NotFound
from app.settings import Settings
from app.store.base import Listener, Store, Transaction, Tx
from app.store.statements import DIALECTS, POSTGRESQL

logger = logging.getLogger("app.store")

POOL_MAX = 20
IDLE_SECONDS = 300.0
POOL_TIMEOUT_SECONDS = 30.0  # waiting for a free connection
CONNECT_TIMEOUT_SECONDS = 5.0
READY_TIMEOUT_SECONDS = 2.0
END_TIMEOUT_SECONDS = 5.0  # a ROLLBACK that takes longer means a lost connection
STATEMENT_CACHE = 512


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


def _row_count(status: str) -> int:
    """The count of a command tag: `UPDATE 3`, `DELETE 0`, `INSERT 0 1`."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else -1


class PostgresTx(Tx):
    __slots__ = ("_begin", "_connection", "broken")

    dialect = DIALECTS[POSTGRESQL]

    def __init__(
        self, connection: asyncpg.Connection[Any], write: bool, listeners: list[Listener]
    ) -> None:
        super().__init__(listeners)
        self._connection = connection
        self._begin = write  # BEGIN before the first statement
        self.broken = False  # failed without the server's answer: the connection is suspect

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
        except asyncpg.PostgresError:
            raise  # the server answered: the connection is fine
        except BaseException:
            self.broken = True  # lost, timed out or cancelled in the middle of a statement
            raise


class PostgresTransaction(Transaction):
    __slots__ = ("_connection", "_pool", "_store", "_tx", "_write")

    def __init__(self, store: PostgresStore, write: bool) -> None:
        self._store = store
        self._write = write
        self._pool: asyncpg.Pool[Any] | None = None
        self._connection: asyncpg.Connection[Any] | None = None
        self._tx: PostgresTx | None = None

    async def __aenter__(self) -> Tx:
        turn = self._store.turns
        try:
            async with asyncio.timeout(POOL_TIMEOUT_SECONDS):
                await turn.acquire()  # first come, first served (see PostgresStore.turns)
        except TimeoutError:
            raise TimeoutError(
                f"no PostgreSQL connection free within {POOL_TIMEOUT_SECONDS:.0f} s"
            ) from None
        try:
            self._pool = pool = await self._store.pool()
            self._connection = await pool.acquire(timeout=POOL_TIMEOUT_SECONDS)
        except BaseException:
            turn.release()
            raise
        self._tx = PostgresTx(self._connection, self._write, self._store.statement_listeners)
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pool, connection, tx = self._pool, self._connection, self._tx
        assert pool is not None
        assert connection is not None
        assert tx is not None
        tx._closed = True
        try:
            if tx.broken or connection.is_closed():
                connection.terminate()
            elif connection.is_in_transaction():
                async with asyncio.timeout(END_TIMEOUT_SECONDS):
                    await connection.execute("COMMIT" if exc_type is None else "ROLLBACK")
        except BaseException:
            connection.terminate()  # the pool replaces it
            raise
        finally:
            try:
                await pool.release(connection)
            finally:
                self._store.turns.release()


class PostgresStore(Store):
    def __init__(self, settings: Settings) -> None:
        super().__init__(POSTGRESQL)
        self._dsn = libpq_dsn(settings.database_url)
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
                    )
        return self._pool

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
