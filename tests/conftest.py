"""Fixtures: a migrated database per test (SQLite file, or PostgreSQL when configured), the app
driven through httpx, and small factories for organisations, keys and assistants."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from app.auth import create_key, create_organisation
from app.db import Database
from app.main import create_app
from app.migrate import upgrade
from app.models import Assistant
from app.settings import Settings


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for every test (migrating each time is slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture
def settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    db_file = tmp_path / "assistants.db"
    shutil.copy(sqlite_template, db_file)
    return Settings(
        database_url=f"sqlite+aiosqlite:///{db_file}",
        avatars_dir=tmp_path / "avatars",
        public_url="https://api.test",
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def db(app: Starlette) -> Database:
    database: Database = app.state.db
    return database


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@dataclass
class Org:
    org_id: str
    key_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture
def make_org(db: Database) -> Any:
    async def make(name: str = "Acme") -> Org:
        async with db.write() as session:
            org, key_id, token = await create_organisation(session, name=name)
        return Org(org.id, key_id, token)

    return make


@pytest.fixture
async def org(make_org: Any) -> Org:
    made: Org = await make_org("Acme")
    return made


@pytest.fixture
async def other_org(make_org: Any) -> Org:
    made: Org = await make_org("Other")
    return made


@pytest.fixture
def new_key(db: Database) -> Any:
    async def make(org: Org) -> Org:
        async with db.write() as session:
            key_id, token = await create_key(session, org_id=org.org_id)
        return Org(org.org_id, key_id, token)

    return make


@pytest.fixture
def make_assistant(client: httpx.AsyncClient) -> Any:
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
def stored(db: Database) -> Any:
    """The assistant's row as stored, as a plain dict (to compare before/after)."""

    async def read(assistant_id: str) -> dict[str, Any] | None:
        async with db.read() as session:
            row = await session.scalar(select(Assistant).where(Assistant.id == assistant_id))
            return None if row is None else row.model_dump()

    return read


@pytest.fixture
def gql(client: httpx.AsyncClient) -> Any:
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


def postgres_url() -> str | None:
    return os.environ.get("TEST_POSTGRES_URL")


@pytest.fixture
async def make_client(settings: Settings) -> AsyncIterator[Any]:
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
