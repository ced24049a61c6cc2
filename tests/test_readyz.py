"""`/readyz`: 200 when the database answers, 503 when it does not, and back to 200 by itself."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from app.main import create_app
from app.settings import Settings
from tests.helpers.server_process import free_port
from tests.helpers.tcp_proxy import Proxy

READY = {"status": "ok"}
UNAVAILABLE = {"status": "unavailable"}


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application: Starlette = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def readiness(http: httpx.AsyncClient) -> tuple[int, Any]:
    response = await http.get("/readyz")
    return response.status_code, response.json()


class Outage:
    """A database that is first missing, then appears (`repair`), on SQLite or PostgreSQL."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        url = make_url(settings.database_url)
        self.proxy: Proxy | None = None
        if settings.is_sqlite:
            self.migrated = Path(url.database or "")
            self.blocker = tmp_path / "gone"  # a file where the database's directory should be
            self.blocker.write_text("not a directory")
            url = url.set(database=str(self.blocker / "assistants.db"))
        else:
            self.proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
            self.proxy.port = free_port()  # nothing listens there yet
            url = url.set(host="127.0.0.1", port=self.proxy.port)
        self.settings = settings.model_copy(
            update={"database_url": url.render_as_string(hide_password=False)}
        )

    async def repair(self) -> None:
        if self.proxy is not None:
            await self.proxy.start()
            return
        self.blocker.unlink()
        self.blocker.mkdir()
        shutil.copy(self.migrated, self.blocker / "assistants.db")

    async def close(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()


async def test_ready_when_the_database_answers(client):
    assert await readiness(client) == (200, READY)


async def test_not_ready_until_the_database_answers(settings: Settings, tmp_path: Path):
    outage = Outage(settings, tmp_path)
    try:
        async with served(outage.settings) as http:
            assert await readiness(http) == (503, UNAVAILABLE)
            assert await readiness(http) == (503, UNAVAILABLE)
            await outage.repair()
            assert await readiness(http) == (200, READY)
            assert await readiness(http) == (200, READY)
    finally:
        await outage.close()


@pytest.fixture
def postgres_settings(postgres_template: Any, tmp_path: Path) -> Iterator[Settings]:
    """A fresh PostgreSQL database only (no SQLite variant of the tests that use it)."""
    name = postgres_template.take()
    try:
        yield Settings(
            database_url=postgres_template.url_for(name),
            avatars_dir=tmp_path / "avatars",
            _env_file=None,  # type: ignore[call-arg]
        )
    finally:
        postgres_template.drop_later(name)


async def test_postgres_going_away_or_hanging_is_503_then_recovers(postgres_settings: Settings):
    url = make_url(postgres_settings.database_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    through_proxy = url.set(host="127.0.0.1", port=proxy.port)
    proxied = postgres_settings.model_copy(
        update={"database_url": through_proxy.render_as_string(hide_password=False)}
    )
    try:
        async with served(proxied) as http:
            assert await readiness(http) == (200, READY)
            await proxy.stop()  # the server goes away: the pooled connection dies with it
            assert await readiness(http) == (503, UNAVAILABLE)
            proxy.mode = "hang"  # a server that accepts but never answers: the timeout
            await proxy.start()
            assert await readiness(http) == (503, UNAVAILABLE)
            await proxy.stop()
            proxy.mode = "up"
            await proxy.start()  # back on the same port: ready again without a restart
            assert await readiness(http) == (200, READY)
    finally:
        await proxy.stop()
