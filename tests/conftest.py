"""Fixtures: a migrated database per test (SQLite file, or PostgreSQL when configured), the app
driven through httpx, and small factories for organisations, keys and assistants."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from app.auth import create_key, create_organisation
from app.main import create_app
from app.migrate import upgrade
from app.models import Assistant
from app.settings import Settings
from app.store import Store
from app.store.records import AssistantRecord, as_dict
from tests.helpers.factories import Gql, MakeAssistant, MakeClient, MakeOrg, NewKey, Org, Stored

POSTGRES_SKIP = "TEST_POSTGRES_URL not set: PostgreSQL tests skipped"
DATABASES = ["sqlite", "postgres"]


def postgres_url() -> str | None:
    return os.environ.get("TEST_POSTGRES_URL") or None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PostgresServer:
    """The server of TEST_POSTGRES_URL and this session's migrated template database.

    Admin statements run on their own loop and thread (never the test's loop) over three
    connections: one prepares the next tests' databases while a test runs, one drops the
    finished ones in the background, one for everything else.
    """

    MAX_PENDING_DROPS = 4
    PREPARED = 2

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.template = self.new_name("tmpl")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._connections: dict[str, asyncpg.Connection[Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._drops: list[Future[Any]] = []
        self._prepared: list[tuple[str, Future[Any]]] = []

    @staticmethod
    def new_name(kind: str) -> str:
        """`assistants_<kind>_<pid>_<random>`: the pid lets a later session drop orphans."""
        return f"assistants_{kind}_{os.getpid()}_{uuid.uuid4().hex[:12]}"

    def url_for(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    async def _run(self, channel: str, statement: str) -> list[Any]:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            if channel not in self._connections:
                dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
                self._connections[channel] = await asyncpg.connect(dsn, timeout=10)
            connection = self._connections[channel]
            for attempt in range(50):
                try:
                    return list(await connection.fetch(statement))
                except asyncpg.InsufficientPrivilegeError:
                    # DROP … WITH (FORCE) met an autovacuum worker in the database (PostgreSQL
                    # 15 will not let a non-superuser terminate it): it ends soon, try again
                    if not statement.startswith("DROP DATABASE") or attempt == 49:
                        raise
                    await asyncio.sleep(0.2)
            raise AssertionError("unreachable")

    def _submit(self, channel: str, statement: str) -> Future[list[Any]]:
        return asyncio.run_coroutine_threadsafe(self._run(channel, statement), self._loop)

    def execute(self, statement: str) -> list[Any]:
        return self._submit("admin", statement).result(timeout=120)

    def drop_orphans(self) -> None:
        """Drops the databases of earlier sessions on this machine that died (pid gone)."""
        for row in self.execute(
            "SELECT datname FROM pg_database WHERE datname ~ '^assistants_(tmpl|test)_[0-9]+_'"
            " AND pg_get_userbyid(datdba) = current_user"
        ):
            pid = int(row["datname"].split("_")[2])
            if pid != os.getpid() and not _alive(pid):
                self.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')

    def take(self) -> str:
        """A fresh copy of the template (prepared ahead, so a test seldom waits for it)."""
        while len(self._prepared) <= self.PREPARED:
            name = self.new_name("test")
            statement = f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'
            self._prepared.append((name, self._submit("create", statement)))
        name, created = self._prepared.pop(0)
        created.result(timeout=120)
        return name

    def drop_later(self, database: str) -> None:
        """Drops a finished test's database while the next one runs (a few at most pending)."""
        statement = f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
        self._drops = [drop for drop in self._drops if not drop.done()]
        while len(self._drops) >= self.MAX_PENDING_DROPS:
            self._drops.pop(0).result(timeout=120)
        self._drops.append(self._submit("drop", statement))

    def finish(self) -> None:
        """Waits for the pending drops, drops the template and closes the connections."""
        for name, created in self._prepared:
            created.result(timeout=120)
            self.drop_later(name)
        for drop in self._drops:
            drop.result(timeout=120)
        self.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        self.close()

    def close(self) -> None:
        for drop in self._drops:
            drop.result(timeout=120)
        for connection in self._connections.values():
            asyncio.run_coroutine_threadsafe(connection.close(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for every test (migrating each time is slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[PostgresServer]:
    """A database migrated once per session; every test gets a copy (CREATE … TEMPLATE).

    Skips when TEST_POSTGRES_URL is unset or the server does not answer; with
    REQUIRE_POSTGRES=1 (set by .ci/run) an unreachable server fails instead.
    """
    url = postgres_url()
    if url is None:
        pytest.skip(POSTGRES_SKIP)
    server = PostgresServer(url)
    try:
        server.execute("SELECT 1")
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        server.close()
        reason = f"PostgreSQL at TEST_POSTGRES_URL does not answer ({exc!r}): tests skipped"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    server.drop_orphans()
    server.execute(f'CREATE DATABASE "{server.template}"')
    try:
        upgrade(Settings(database_url=server.url_for(server.template)))
        yield server
    finally:
        server.finish()


def _settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        avatars_dir=tmp_path / "avatars",
        public_url="https://api.test",
        audit_seal_seconds=0,  # chained when read: no background statement in counted windows
        _env_file=None,
    )


@pytest.fixture(params=DATABASES)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A fresh migrated database per test, on SQLite and on PostgreSQL (ids [sqlite]/[postgres])."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        db_file = tmp_path / "assistants.db"
        shutil.copy(template, db_file)
        yield _settings(f"sqlite+aiosqlite:///{db_file}", tmp_path)
        return
    server: PostgresServer = request.getfixturevalue("postgres_template")
    name = server.take()
    try:
        yield _settings(server.url_for(name), tmp_path)
    finally:
        server.drop_later(name)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def db(app: Starlette) -> Store:
    """The app's store (transactions: `async with db.read() as tx`, `db.write()`)."""
    store: Store = app.state.db
    return store


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def make_org(db: Store) -> MakeOrg:
    async def make(name: str = "Acme") -> Org:
        async with db.write() as tx:
            org, key_id, token = await create_organisation(tx, name=name)
        return Org(org.id, key_id, token)

    return make


@pytest.fixture
async def org(make_org: MakeOrg) -> Org:
    return await make_org("Acme")


@pytest.fixture
async def other_org(make_org: MakeOrg) -> Org:
    return await make_org("Other")


@pytest.fixture
def new_key(db: Store) -> NewKey:
    async def make(org: Org) -> Org:
        async with db.write() as tx:
            key_id, token = await create_key(tx, org_id=org.org_id)
        return Org(org.org_id, key_id, token)

    return make


@pytest.fixture
def make_assistant(client: httpx.AsyncClient) -> MakeAssistant:
    async def make(org: Org, **body: Any) -> dict[str, Any]:
        body.setdefault("name", "Support bot")
        response = await client.post(
            f"/orgs/{org.org_id}/assistants", json=body, headers=org.headers
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    return make


@pytest.fixture
def stored(db: Store) -> Stored:
    """The assistant's row as stored, as a plain dict (to compare before/after)."""
    table = Assistant.__table__  # type: ignore[attr-defined]

    async def read(assistant_id: str) -> dict[str, Any] | None:
        async with db.read() as tx:
            statement = select(table).where(table.c.id == assistant_id)
            row = await tx.first(statement, None, AssistantRecord)
            return None if row is None else as_dict(row)

    return read


@pytest.fixture
def gql(client: httpx.AsyncClient) -> Gql:
    async def run(
        query: str, variables: dict[str, Any] | None = None, org: Org | None = None
    ) -> dict[str, Any]:
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=org.headers if org else {},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return run


@pytest.fixture
async def make_client(settings: Settings) -> AsyncIterator[MakeClient]:
    """`await make_client(rate_limit="5/minute")`: a client of another app on the same database,
    built with some settings changed (closed with the test)."""
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:

        async def make(**overrides: Any) -> httpx.AsyncClient:
            application = create_app(settings.model_copy(update=overrides))
            await stack.enter_async_context(application.router.lifespan_context(application))
            transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
            http = httpx.AsyncClient(transport=transport, base_url="http://test")
            return await stack.enter_async_context(http)

        yield make


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Any]:
    """A real redis-server of this test (tests/helpers/redis_server.py): skipped without
    `redis-server`, failed instead with REQUIRE_REDIS=1."""
    from tests.helpers.redis_server import RedisServer

    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()
