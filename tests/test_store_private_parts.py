"""The private parts of libraries the store relies on (listed at the top of app/store/__init__.py
and app/store/sqlite.py) still exist and behave as used: an aiosqlite upgrade that changes them
fails here, not in production."""

from __future__ import annotations

import inspect
import sqlite3
import threading
from pathlib import Path

import aiosqlite
import pytest


async def test_aiosqlite_connection_private_parts(tmp_path: Path):
    connection = aiosqlite.Connection(
        lambda: sqlite3.connect(tmp_path / "private.db", check_same_thread=False),
        iter_chunk_size=64,
    )
    # `_thread`: a Thread, not started before the connection is awaited (so daemon is settable)
    assert isinstance(connection._thread, threading.Thread)
    assert not connection._thread.is_alive()
    connection._thread.daemon = True
    await connection
    try:
        assert connection._thread.daemon
        assert connection._thread.is_alive()
        # `_conn`: the sqlite3 connection itself
        raw = connection._conn
        assert isinstance(raw, sqlite3.Connection)
        # `_execute(fn)`: a coroutine that runs fn() on the connection's thread, its result back
        assert inspect.iscoroutinefunction(connection._execute)
        ran_on = await connection._execute(threading.get_ident)
        assert ran_on == connection._thread.ident != threading.get_ident()
        assert await connection._execute(lambda: raw.execute("SELECT 41 + 1").fetchall()) == [(42,)]
        # an exception raised on the thread comes back to the awaiting task
        with pytest.raises(sqlite3.OperationalError, match="nowhere"):
            await connection._execute(lambda: raw.execute("SELECT * FROM nowhere"))
        # `_conn` may be used from the loop's thread between trips (check_same_thread=False)
        assert raw.execute("SELECT 1").fetchall() == [(1,)]
    finally:
        await connection.close()
