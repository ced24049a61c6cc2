"""Locks a test holds on the database from outside the app, to make a request slow in a real
way: a PostgreSQL row lock (`SELECT … FOR UPDATE` on another connection) or SQLite's write
lock (`BEGIN IMMEDIATE` on another connection)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from app.settings import Settings
from app.store.postgres import libpq_dsn
from app.store.sqlite import database_path


@asynccontextmanager
async def holding_assistant(settings: Settings, assistant_id: str) -> AsyncIterator[Any]:
    """While the block runs, nobody else can write the assistant (PostgreSQL: its row; SQLite:
    the whole database). Yields the holding connection (asyncpg, or sqlite3)."""
    if settings.is_sqlite:
        holder = sqlite3.connect(database_path(settings.database_url), isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield holder
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    connection = await asyncpg.connect(libpq_dsn(settings.database_url))
    try:
        async with connection.transaction():
            await connection.execute(
                "SELECT 1 FROM assistants WHERE id = $1 FOR UPDATE", assistant_id
            )
            yield connection
    finally:
        await connection.close()
