"""The same Alembic migrations on both databases: from an empty database to the models' schema,
down to nothing and up again, `python -m app migrate` (what the README tells operators), and the
data migration of API keys made before scopes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, inspect, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers the tables)
from app.main import create_app
from app.migrate import alembic_config, migration_engine, upgrade
from app.settings import Settings
from tests.helpers.server_process import ROOT


@pytest.fixture(params=["sqlite", "postgres"])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a database with nothing in it (not even the migrations)."""
    if request.param == "sqlite":
        yield Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        return
    server = request.getfixturevalue("postgres_template")
    name = server.new_name("test")
    server.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield Settings(database_url=server.url_for(name))
    finally:
        server.drop_later(name)


def inspect_db(settings: Settings, work: Any) -> Any:
    """Runs `work(sync_connection)` on the database (on a loop of its own: upgrade is sync)."""

    async def main() -> Any:
        engine = migration_engine(settings)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


# SQLAlchemy cannot reflect SQLite's indexes on expressions (the name's sort key), so
# autogenerate skips them there: their SQL is compared with the models' instead
SKIPPED_ON_SQLITE = (
    "Skipped unsupported reflection of expression-based index",
    "autogenerate skipping metadata-specified expression-based index",
)


def expression_indexes_differ(connection: Connection) -> list[Any]:
    """The models' expression indexes that SQLite does not hold as their SQL says (SQLite's may
    hold more columns after them: the name's holds the whole name, for searches)."""
    stored = dict(
        connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")).all()
    )
    differ = []
    for table in SQLModel.metadata.tables.values():
        for index in table.indexes:
            if all(isinstance(e, Column) for e in index.expressions):
                continue
            parts = ", ".join(
                e.name if isinstance(e, Column) else str(e) for e in index.expressions
            )
            if f"({parts}" not in (stored.get(index.name) or "").replace('"', ""):
                differ.append(("expression_index", index.name, stored.get(index.name)))
    return differ


def schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    if connection.dialect.name != "sqlite":
        return list(compare_metadata(context, SQLModel.metadata))
    with warnings.catch_warnings():
        for message in SKIPPED_ON_SQLITE:
            warnings.filterwarnings("ignore", message=message)
        found = list(compare_metadata(context, SQLModel.metadata))
    return found + expression_indexes_differ(connection)


LATER_TABLES = {"webhooks", "webhook_deliveries"}  # made by migrations after 0005


def _table_of(item: Any) -> str:
    return str(item.name if item.__class__.__name__ == "Table" else item.table.name)


def differences_but_later_tables(connection: Connection) -> list[Any]:
    """The differences of a database downgraded to 0004, less the tables made after 0005."""
    return [
        d
        for d in schema_differences(connection)
        if not (d[0] in ("add_table", "add_index") and _table_of(d[1]) in LATER_TABLES)
    ]


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head(settings: Settings) -> str | None:
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()


def test_upgrade_builds_the_models_schema(empty: Settings):
    assert inspect_db(empty, tables) == set()
    upgrade(empty)
    assert inspect_db(empty, tables) == {*SQLModel.metadata.tables, "alembic_version"}
    assert inspect_db(empty, schema_differences) == []
    assert inspect_db(empty, current_revision) == head(empty)
    upgrade(empty)  # a second run changes nothing
    assert inspect_db(empty, current_revision) == head(empty)


def test_downgrade_to_nothing_and_up_again(empty: Settings):
    upgrade(empty)
    command.downgrade(alembic_config(empty), "base")
    assert inspect_db(empty, tables) == {"alembic_version"}
    assert inspect_db(empty, current_revision) is None
    upgrade(empty)
    assert inspect_db(empty, schema_differences) == []


def test_the_migrate_command(empty: Settings):
    result = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": empty.database_url},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"migrated": True}
    assert inspect_db(empty, current_revision) == head(empty)


def test_servers_starting_at_once_migrate_one_after_another(empty: Settings):
    """Three `migrate` processes on one empty database: all succeed, the schema is built once."""
    env = {**os.environ, "DATABASE_URL": empty.database_url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "app", "migrate"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else b"") for p in processes]
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    assert inspect_db(empty, current_revision) == head(empty)


def run_sql(settings: Settings, *statements: str) -> None:
    """Statements in one committed transaction (on a loop of its own: upgrade is sync)."""

    async def main() -> None:
        engine = migration_engine(settings)
        try:
            async with engine.begin() as connection:
                for statement in statements:
                    await connection.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_keys_made_before_scopes_keep_every_right(empty: Settings, tmp_path: Path) -> None:
    """Migration 0003: a key that existed before holds every scope and every assistant, never
    expires, is named "Legacy key", and has no prefix (its secret was never kept)."""
    command.upgrade(alembic_config(empty), "0002")
    secret = "ak_made-before-scopes"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    run_sql(
        empty,
        "INSERT INTO organisations (id, name, created_at) VALUES ('o1', 'Old', '2026-01-01')",
        "INSERT INTO api_keys (id, org_id, key_hash, created_at, revoked_at) "
        f"VALUES ('k1', 'o1', '{digest}', '2026-01-02', NULL)",
    )
    upgrade(empty)
    assert inspect_db(empty, schema_differences) == []

    async def use_it() -> None:
        settings = empty.model_copy(update={"avatars_dir": tmp_path / "avatars"})
        app = create_app(settings)
        headers = {"Authorization": f"Bearer {secret}"}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                current = await client.get("/orgs/c/api-keys/current", headers=headers)
                assert current.status_code == 200, current.text
                key = current.json()
                assert {k: key[k] for k in ("id", "org_id", "name", "prefix")} == {
                    "id": "k1",
                    "org_id": "o1",
                    "name": "Legacy key",
                    "prefix": None,
                }
                assert key["scopes"] == [
                    "assistants:read",
                    "assistants:write",
                    "api_keys:manage",
                    "webhooks:manage",  # migration 0009: keys that held every scope
                    "audit:read",  # migration 0013: keys that held every scope
                ]
                assert (key["assistant_ids"], key["expires_at"], key["revoked_at"]) == (
                    None,
                    None,
                    None,
                )
                made = await client.post("/orgs/c/assistants", json={"name": "A"}, headers=headers)
                assert made.status_code == 201
                listed = await client.get("/orgs/c/assistants", headers=headers)
                assert [a["id"] for a in listed.json()] == [made.json()["id"]]
                keys = await client.post(
                    "/orgs/c/api-keys",
                    json={"name": "new", "scopes": ["assistants:read"]},
                    headers=headers,
                )
                assert keys.status_code == 201

    asyncio.run(use_it())


def notify_triggers(connection: Connection) -> list[tuple[str, ...]]:
    """The revision-notification trigger and its function (PostgreSQL); SQLite's triggers."""
    if connection.dialect.name == "sqlite":
        rows = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        return [tuple(row) for row in rows]
    rows = connection.execute(
        text(
            "SELECT t.tgname, c.relname, p.proname FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE NOT t.tgisinternal"
        )
    )
    functions = connection.execute(
        text("SELECT proname FROM pg_proc WHERE proname = 'assistant_revisions_notify'")
    )
    return [tuple(row) for row in rows] + [tuple(row) for row in functions]


def test_revision_notifications_come_from_a_trigger_on_postgres_only(empty: Settings):
    """Migration 0005: on PostgreSQL an AFTER INSERT trigger on assistant_revisions (and its
    function); downgrading removes both, and upgrading again puts them back; on SQLite nothing."""
    on_postgres = [
        ("assistant_revisions_notify", "assistant_revisions", "assistant_revisions_notify"),
        ("assistant_revisions_notify",),
    ]
    expected = [] if empty.is_sqlite else on_postgres
    upgrade(empty)
    assert inspect_db(empty, notify_triggers) == expected
    command.downgrade(alembic_config(empty), "0004")
    assert inspect_db(empty, notify_triggers) == []
    upgrade(empty)  # (the tables of later migrations only match the models at the head)
    assert inspect_db(empty, notify_triggers) == expected
    assert inspect_db(empty, schema_differences) == []
