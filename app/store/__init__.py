"""The store: connections, transactions, compiled statements and records.

SQLModel tables and Alembic migrations are the schema's single source of truth. Statements are
built from the tables with SQLAlchemy Core (`Statement`, built once), compiled once per dialect
and run directly on the driver connection (aiosqlite or an asyncpg pool); rows come back as
plain slotted records (`app.store.records`) with every value converted once. Transactions open
at the edge:

    async with store.write() as tx:
        row = await tx.first(ONE_FOR_UPDATE, {"org_id": org, "assistant_id": id}, AssistantRecord)

No ORM session and no SQLAlchemy engine serve a request (Alembic keeps its own engine).

Private parts of libraries relied on, each guarded by tests/test_store_private_parts.py:

- aiosqlite `Connection._execute(fn)`: runs `fn()` on the connection's thread (one trip per
  statement, where the public API makes three or four).
- aiosqlite `Connection._conn`: the sqlite3 connection (statements of a write transaction run
  on the event loop; `in_transaction`).
- aiosqlite `Connection._thread`: made a daemon before it starts (never holds the process open).

Nothing private of SQLAlchemy or asyncpg is used (`compile(dialect=…)`, `compiled.string`,
`positiontup`, `binds`, `exported_columns`, `dialect_impl`, bind and result processors;
asyncpg's pool `init`/`reset` hooks and `set_type_codec`).
"""

from __future__ import annotations

from app.settings import Settings
from app.store.base import Store, TransactionClosed, Tx
from app.store.statements import Statement, in_list

__all__ = ["Statement", "Store", "TransactionClosed", "Tx", "in_list", "open_store"]


def open_store(settings: Settings, *, lazy_commits: bool = False) -> Store:
    """The store of `settings.database_url` (no connection is opened before it is needed).
    `lazy_commits`: a commit returns before it is flushed to disk (PostgreSQL's
    `synchronous_commit=off`, SQLite's `synchronous=NORMAL`), for writes that a crash of the
    database may lose without harm (the webhook engine's claims and outcomes)."""
    if settings.is_sqlite:
        from app.store.sqlite import SQLiteStore  # noqa: PLC0415  (only the driver in use is imported)

        if lazy_commits:
            settings = settings.model_copy(update={"sqlite_synchronous": "NORMAL"})
        return SQLiteStore(settings)
    from app.store.postgres import PostgresStore  # noqa: PLC0415  (only the driver in use is imported)

    return PostgresStore(settings, lazy_commits=lazy_commits)
