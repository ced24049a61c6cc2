"""Applies the Alembic migrations kept in `migrations/`, on SQLAlchemy's engine of their own.

The migrations (and tools that inspect the schema) are the one place that still uses
SQLAlchemy's engine; requests go through the store (app/store/). SQLite: the same pragmas as
the store's connections, and the migration's transaction starts with `BEGIN IMMEDIATE` (with
the `WRITE_OPTION` execution option: one migration at a time, across processes); PostgreSQL:
servers starting at once take turns on an advisory lock (migrations/env.py).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app.settings import Settings
from app.store.postgres import CONNECT_TIMEOUT_SECONDS
from app.store.sqlite import database_path, ensure_directory

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
WRITE_OPTION = "assistants_write"
MIGRATION_BUSY_MS = 30_000  # processes starting together queue for the write lock


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings) -> None:
    """Brings the database to the newest revision (blocking; call before the loop starts)."""
    with _one_migrator(settings):
        command.upgrade(alembic_config(settings), "head")


@contextlib.contextmanager
def _one_migrator(settings: Settings) -> Iterator[None]:
    """On SQLite, processes of this machine migrating one database take turns on a lock file
    beside it (`flock`), before SQLite's own locks: a new database's first pragmas and reads
    happen outside the migration's BEGIN IMMEDIATE, and under load two processes could both
    read it as empty. PostgreSQL's turns are its advisory lock (migrations/env.py)."""
    path = database_path(settings.database_url) if settings.is_sqlite else ""
    if not path or path == ":memory:":
        yield
        return
    ensure_directory(path)
    with open(f"{path}.migrating", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def migration_engine(settings: Settings) -> AsyncEngine:
    """An engine for the migrations (no pool: a migration is one connection, then done)."""
    url = settings.database_url
    if not settings.is_sqlite:
        connect_args = {"timeout": CONNECT_TIMEOUT_SECONDS}
        return create_async_engine(url, poolclass=NullPool, connect_args=connect_args)

    ensure_directory(database_path(url))
    busy = settings.sqlite_busy_timeout_ms or MIGRATION_BUSY_MS  # start-up: may wait longer
    engine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": busy / 1000})
    pragmas = (
        f"PRAGMA busy_timeout={int(busy)}",  # first: the next pragmas may wait
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={settings.sqlite_synchronous}",
        "PRAGMA foreign_keys=ON",
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
