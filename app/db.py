"""Engine and session factories.

SQLite: WAL journal, `synchronous` from settings, a busy timeout, and SQLAlchemy emitting BEGIN
itself so that write transactions start with `BEGIN IMMEDIATE` (they take the write lock before
reading, which serialises every read-merge-write across threads and processes). PostgreSQL
(asyncpg) serialises per row with `SELECT … FOR UPDATE` in the domain; its pool checks a
connection before lending it, so the app recovers by itself when the server comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app import sqlite_driver
from app.domain.errors import NotFound
from app.settings import Settings

WRITE_OPTION = "assistants_write"
READY_TIMEOUT_SECONDS = 2.0  # /readyz answers 503 rather than hang on a silent database
PG_CONNECT_TIMEOUT_SECONDS = 5.0
PG_POOL = {"pool_size": 10, "max_overflow": 10, "pool_timeout": 30, "pool_recycle": 1800}
# SQLite has one writer (serialised in-process by Database.write()); a few readers suffice.
SQLITE_POOL = {"pool_size": 8, "max_overflow": 0, "pool_timeout": 30}

logger = logging.getLogger("app.db")


def _ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # the server still starts; /readyz reports 503 until it exists
            logger.warning("cannot create the directory of the SQLite database: %s", exc)


def _holds_nul(parameters: Any) -> bool:
    rows = parameters if isinstance(parameters, list) else [parameters]
    for row in rows:
        values = row.values() if isinstance(row, dict) else row or ()
        if any(isinstance(value, str) and "\x00" in value for value in values):
            return True
    return False


def _refuse_nul(_conn: Any, _cursor: Any, _sql: str, parameters: Any, *_args: Any) -> None:
    """PostgreSQL refuses U+0000 in text (a 500 otherwise). Nothing stored contains it (input
    validation refuses it), so a lookup by such an id finds nothing."""
    if _holds_nul(parameters):
        raise NotFound("no such resource (an id never contains U+0000)")


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# JSON columns through orjson (the bodies were parsed by orjson, so it can write them back)
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    if not url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            **JSON_CODEC,
            pool_pre_ping=True,
            connect_args={"timeout": PG_CONNECT_TIMEOUT_SECONDS},
            **PG_POOL,
        )
        event.listen(engine.sync_engine, "before_cursor_execute", _refuse_nul)
        return engine

    _ensure_sqlite_dir(url)
    connect_args = {
        "timeout": settings.sqlite_busy_timeout_ms / 1000,
        "async_creator_fn": sqlite_driver.connect,  # one thread hop per statement
    }
    engine = create_async_engine(url, connect_args=connect_args, **JSON_CODEC, **SQLITE_POOL)
    synchronous = settings.sqlite_synchronous
    busy = settings.sqlite_busy_timeout_ms

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={busy}")  # first: the next pragmas may wait
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """One engine, a read and a write session factory; transactions open at the edge.

    On SQLite the write transactions of this process take turns on an asyncio lock before they
    take a connection: SQLite has one writer anyway, and its busy handler (which sleeps with
    back-off) then only arbitrates between processes, so the latency tail stays short.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._read = async_sessionmaker(engine, expire_on_commit=False)
        self._write = async_sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read.begin() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        if self._write_lock is None:
            async with self._write.begin() as session:
                yield session
            return
        async with self._write_lock, self._write.begin() as session:
            yield session

    async def ping(self) -> bool:
        """Whether the database answers a query within READY_TIMEOUT_SECONDS (for /readyz)."""
        probe = "SELECT count(*) FROM sqlite_master" if self.is_sqlite else "SELECT 1"
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                async with self.engine.connect() as connection:
                    await connection.execute(text(probe))
        except Exception as exc:  # noqa: BLE001  (any failure means "not ready")
            logger.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
            return False
        return True

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def dispose(self) -> None:
        await self.engine.dispose()
