"""The store's deadline on SQLite (docs/database-faults.md): a writer that waited for this
process's other writers begins with what is left of DATABASE_TIMEOUT_SECONDS as its busy
timeout, and the connection's own busy timeout is back afterwards."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from pathlib import Path

from sqlalchemy import Integer, column, text

from app.errors import DatabaseUnavailable
from app.settings import Settings
from app.store import Store, open_store

BUSY = text("PRAGMA busy_timeout").columns(column("timeout", Integer))


async def write_after_waiting(store: Store) -> tuple[Exception | None, float]:
    """A write transaction's outcome (its error, if any) and how long it took."""
    started = time.monotonic()
    try:
        async with store.write() as tx:
            await tx.scalar(text("SELECT count(*) FROM assistants"))
    except Exception as exc:  # noqa: BLE001  (the test asserts which)
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def sqlite_settings(template: Path, tmp_path: Path, seconds: float) -> Settings:
    db_file = tmp_path / "assistants.db"
    shutil.copy(template, db_file)
    return Settings(
        database_url=f"sqlite+aiosqlite:///{db_file}",
        database_timeout_seconds=seconds,
        _env_file=None,  # type: ignore[call-arg]
    )


async def test_a_writer_that_waited_its_turn_keeps_only_the_rest_of_its_deadline(
    sqlite_template: Path, tmp_path: Path
):
    settings = sqlite_settings(sqlite_template, tmp_path, 2.0)
    store = open_store(settings)
    holder = sqlite3.connect(tmp_path / "assistants.db", isolation_level=None)
    try:
        async with store.write() as tx:  # the first writer: holds this process's turn 1 s
            assert await tx.scalar(BUSY) == 2000
            second = asyncio.create_task(write_after_waiting(store))
            await asyncio.sleep(1.0)
        holder.execute("BEGIN IMMEDIATE")  # then another process takes SQLite's lock
        outcome, seconds = await second
        assert isinstance(outcome, DatabaseUnavailable)
        assert 1.8 < seconds < 2.5  # 1 s for its turn, then only the rest for the lock
        holder.execute("ROLLBACK")
        async with store.write() as tx:  # the connection's own busy timeout is back
            assert await tx.scalar(BUSY) == 2000
    finally:
        holder.close()
        await store.close()
