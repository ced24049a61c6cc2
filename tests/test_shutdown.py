"""Graceful shutdown of a real `python -m app serve`, with one worker and
with `--workers 2`, on SQLite and PostgreSQL.

Requests are made slow the way production makes them slow: the test holds the database's lock
(SQLite: its write lock, `BEGIN IMMEDIATE` on a connection of its own; PostgreSQL: the
assistant's row, `SELECT … FOR UPDATE` in a transaction of its own), so each PATCH waits inside
the server. Then SIGTERM goes to the server's main process (as an orchestrator sends it):
`/readyz` must turn 503 at once, the open SSE stream end with a `retry:` hint, the websocket
close with 1001; once the lock is released every request in flight completes with 200 and its
write is stored, and the process exits 0.

The figures (requests in flight, completed, time to the 503 and to the exit) are printed (-s).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.auth import create_organisation
from app.models import Assistant
from app.settings import Settings
from app.store import open_store
from app.store.postgres import libpq_dsn
from tests.helpers.event_clients import GraphQLSocket
from tests.helpers.factories import Org
from tests.helpers.server_process import Server

pytestmark = pytest.mark.slow

IN_FLIGHT = 6
READY_503_WITHIN = 1.5  # seconds (the --workers supervisor forwards SIGTERM within 0.5 s)
EXIT_WITHIN = 30.0


async def make_org(settings: Settings) -> Org:
    store = open_store(settings)
    try:
        async with store.write() as tx:
            org, key_id, token = await create_organisation(tx, name="Shutdown")
    finally:
        await store.close()
    return Org(org.id, key_id, token)


@asynccontextmanager
async def database_lock(settings: Settings, assistant_id: str) -> AsyncIterator[Any]:
    """Holds what a PATCH of the assistant must wait for; `release()` lets it go."""
    if settings.is_sqlite:
        holder = sqlite3.connect(make_url(settings.database_url).database or "")
        holder.isolation_level = None
        holder.execute("BEGIN IMMEDIATE")

        async def release_sqlite() -> None:
            holder.execute("ROLLBACK")

        try:
            yield release_sqlite
        finally:
            if holder.in_transaction:
                holder.execute("ROLLBACK")
            holder.close()
        return
    connection = await asyncpg.connect(libpq_dsn(settings.database_url))
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute("SELECT 1 FROM assistants WHERE id = $1 FOR UPDATE", assistant_id)

    async def release_postgres() -> None:
        await transaction.rollback()

    try:
        yield release_postgres
    finally:
        await connection.close()


async def sse_lines(base_url: str, org: Org, lines: list[str], opened: asyncio.Event) -> None:
    """Reads the event stream into `lines` until the server ends it."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=60)) as http,
        http.stream("GET", "/orgs/c/events", headers=org.headers) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            lines.append(line)
            if line == ": connected":
                opened.set()


async def websocket_close_code(base_url: str, org: Org, opened: asyncio.Event) -> int | None:
    """Subscribes, then reads until the server closes the socket: its close code."""
    url = base_url.replace("http", "ws") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        socket = GraphQLSocket(ws.send, ws.recv)  # type: ignore[arg-type]
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        await socket.subscribe("1", "c", None)
        opened.set()
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


async def until_not_ready(base_url: str) -> tuple[float, Any]:
    started = time.monotonic()
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection each time
    async with httpx.AsyncClient(base_url=base_url, timeout=5, limits=limits) as http:
        while True:
            response = await http.get("/readyz")
            if response.status_code == 503:
                return time.monotonic() - started, response.json()
            assert time.monotonic() - started < READY_503_WITHIN, "still ready after SIGTERM"
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_drains_requests_in_flight_and_exits_0(
    settings: Settings, tmp_path: Path, workers: int
):
    org = await make_org(settings)
    server = Server(settings, tmp_path, workers=workers).start()
    try:
        base = server.base_url
        limits = httpx.Limits(max_keepalive_connections=0)  # requests spread over the workers
        async with httpx.AsyncClient(
            base_url=base, headers=org.headers, timeout=60, limits=limits
        ) as http:
            created = await http.post("/orgs/c/assistants", json={"name": "before"})
            path = f"/orgs/c/assistants/{created.json()['id']}"
            sse: list[str] = []
            sse_open, ws_open = asyncio.Event(), asyncio.Event()
            sse_task = asyncio.create_task(sse_lines(base, org, sse, sse_open))
            ws_task = asyncio.create_task(websocket_close_code(base, org, ws_open))
            await asyncio.wait_for(asyncio.gather(sse_open.wait(), ws_open.wait()), 30)

            async with database_lock(settings, created.json()["id"]) as release:
                patches = [
                    asyncio.create_task(http.patch(path, json={"name": f"in flight {i}"}))
                    for i in range(IN_FLIGHT)
                ]
                await asyncio.sleep(1.0)  # every PATCH reaches the server and waits
                in_flight = sum(not task.done() for task in patches)
                assert in_flight == IN_FLIGHT
                assert server.process is not None
                os.kill(server.process.pid, signal.SIGTERM)
                signalled = time.monotonic()
                to_503, readiness = await until_not_ready(base)
                assert readiness == {"status": "shutting_down"}
                refused = await http.get("/orgs/c/events")  # a new stream while draining
                assert (refused.status_code, refused.json()["code"]) == (503, "SHUTTING_DOWN")
                assert refused.headers["retry-after"] == "1"
                close_code = await asyncio.wait_for(ws_task, 10)
                await asyncio.wait_for(sse_task, 10)
                assert not any(task.done() for task in patches)  # still waiting on the lock
                await asyncio.sleep(0.5)
                await release()
                answers = await asyncio.wait_for(asyncio.gather(*patches), EXIT_WITHIN)
            code = await asyncio.to_thread(server.process.wait, EXIT_WITHIN)
            to_exit = time.monotonic() - signalled

        assert close_code == 1001
        assert "retry: 1000" in sse, sse
        assert any('"SHUTTING_DOWN"' in line for line in sse), sse
        assert [a.status_code for a in answers] == [200] * IN_FLIGHT, [a.text for a in answers]
        assert code == 0, server.log()[-3000:]
        await assert_every_write_stored(settings, org, path, answers)
    finally:
        server.stop()
    print(
        f"\nshutdown ({settings.database_url.split(':')[0]}, {workers} worker(s)): "
        f"{in_flight} in flight at SIGTERM, {len(answers)} completed with 200, /readyz 503 "
        f"after {to_503:.2f} s, exit 0 after {to_exit:.2f} s"
    )


async def assert_every_write_stored(
    settings: Settings, org: Org, path: str, answers: list[httpx.Response]
) -> None:
    """Each acknowledged PATCH has its revision (its version and name) in the database."""
    from app.main import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=org.headers
        ) as http:
            revisions = (await http.get(f"{path}/revisions?take=100")).json()
    names = {
        revision["version"]: change["to"]
        for revision in revisions
        for change in revision["changes"]
        if change["path"] == "name"
    }
    for answer in answers:
        body = answer.json()
        assert names[body["version"]] == body["name"]
    assert sorted(a.json()["version"] for a in answers) == list(range(2, 2 + IN_FLIGHT))


async def test_a_request_beyond_the_grace_period_is_cancelled_and_stores_nothing(
    postgres_template: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """SHUTDOWN_GRACE_SECONDS=2 and a PATCH that waits on a row lock for longer: the process
    still exits 0 soon after the grace period; the PATCH gets no 200, and nothing is stored."""
    name = postgres_template.take()
    settings = Settings(
        database_url=postgres_template.url_for(name),
        avatars_dir=tmp_path / "avatars",
        _env_file=None,  # type: ignore[call-arg]
    )
    monkeypatch.setenv("SHUTDOWN_GRACE_SECONDS", "2")
    org = await make_org(settings)
    server = Server(settings, tmp_path, workers=1).start()
    try:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=org.headers, timeout=60
        ) as http:
            created = await http.post("/orgs/c/assistants", json={"name": "before"})
            path = f"/orgs/c/assistants/{created.json()['id']}"
            async with database_lock(settings, created.json()["id"]):
                patch = asyncio.create_task(http.patch(path, json={"name": "too late"}))
                await asyncio.sleep(1.0)
                assert server.process is not None
                os.kill(server.process.pid, signal.SIGTERM)
                signalled = time.monotonic()
                code = await asyncio.to_thread(server.process.wait, EXIT_WITHIN)
                to_exit = time.monotonic() - signalled
                try:
                    answer: Any = await asyncio.wait_for(patch, 10)
                except httpx.HTTPError as exc:  # the connection closed without an answer
                    answer = exc
        assert code == 0
        assert 2.0 <= to_exit < 10.0
        assert not isinstance(answer, httpx.Response) or answer.status_code != 200
        store = open_store(settings)
        try:
            async with store.read() as tx:
                table = Assistant.__table__
                stored = await tx.first(select(table.c.name, table.c.version))
        finally:
            await store.close()
        assert tuple(stored or ()) == ("before", 1)
    finally:
        server.stop()
        postgres_template.drop_later(name)
    print(f"\nbeyond the grace period: exit 0 after {to_exit:.2f} s, the PATCH got {answer!r}")


async def test_with_a_drain_period_the_server_keeps_answering_after_sigterm(
    settings: Settings, tmp_path: Path
):
    """SHUTDOWN_DRAIN_SECONDS=1.5 and nothing in flight: for the drain period after SIGTERM the
    process still accepts and answers (/readyz 503 `shutting_down`, the API 200), so that a
    load balancer takes it out before it stops accepting (ops/README.md); then it exits 0."""
    org = await make_org(settings)
    env = {"SHUTDOWN_DRAIN_SECONDS": "1.5"}
    server = Server(settings, tmp_path, workers=1, env=env).start()
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection each time
    answered: list[tuple[float, int, int]] = []
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=org.headers, timeout=10, limits=limits
    ) as http:
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGTERM)
        signalled = time.monotonic()
        while time.monotonic() - signalled < 1.0:
            ready = await http.get("/readyz")
            listed = await http.get("/orgs/c/assistants")
            answered.append((time.monotonic() - signalled, ready.status_code, listed.status_code))
            await asyncio.sleep(0.1)
        code = await asyncio.to_thread(server.process.wait, EXIT_WITHIN)
        to_exit = time.monotonic() - signalled
    server.process = None
    assert len(answered) >= 5
    assert {(r, a) for _, r, a in answered[1:]} == {(503, 200)}
    assert code == 0
    assert 1.5 <= to_exit < 5.0
