"""Database outages: a request that cannot get the database within 5
seconds is 503 DATABASE_UNAVAILABLE with `Retry-After` on both transports (never a 500 or a
hang), `/readyz` says 503, and once the database is back the server serves again by itself;
no acknowledged write is lost and a live subscriber receives every revision.

PostgreSQL: a real `python -m app serve` reaches the database through a TCP proxy run by the
test (on its own thread), which can cut every connection and refuse new ones, then come back on
the same port, or freeze (stop forwarding with every connection left open: a frozen network or
a hung primary); nothing stops the machine's PostgreSQL. A row lock held by the test beyond
DATABASE_TIMEOUT_SECONDS. SQLite: a write lock held by the test beyond the timeout.

The times to the 503 and to the recovery are printed (run with -s), bounded generously.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.auth import create_organisation
from app.main import create_app
from app.settings import Settings
from app.store import open_store
from tests.helpers.event_clients import SseStream, sse_over_http
from tests.helpers.factories import Org
from tests.helpers.server_process import Server
from tests.helpers.tcp_proxy import Proxy

pytestmark = pytest.mark.slow

UNAVAILABLE_WITHIN = 6.5  # seconds: the store's 5 s wait, and some slack on a busy machine
FROZEN_WITHIN = 6.0  # DATABASE_TIMEOUT_SECONDS (5 by default) plus one second
RECOVERY_WITHIN = 30.0
UPDATE = (
    "mutation($id: ID!, $name: String!) "
    '{ updateAssistant(orgId: "c", assistantId: $id, input: {name: $name}) { version } }'
)


class ThreadedProxy:
    """The relay of test_readyz on a loop of its own thread, so that it keeps relaying while
    the test blocks (starting a server) or awaits (its requests)."""

    def __init__(self, host: str, port: int) -> None:
        self.proxy = Proxy(host, port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._call(self.proxy.start())

    def _call(self, work: Any) -> None:
        asyncio.run_coroutine_threadsafe(work, self.loop).result(10)

    @property
    def port(self) -> int:
        return self.proxy.port

    def cut(self) -> None:
        """Every open connection is cut, new ones are refused."""
        self._call(self.proxy.stop())

    def restore(self) -> None:
        self._call(self.proxy.start())

    def freeze(self) -> None:
        """Every open connection stays open and nothing is forwarded any more."""
        self.loop.call_soon_threadsafe(self.proxy.freeze)

    def thaw(self) -> None:
        self.loop.call_soon_threadsafe(self.proxy.thaw)

    def close(self) -> None:
        self._call(self.proxy.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def postgres_settings(postgres_template: Any, tmp_path: Path) -> Iterator[Settings]:
    name = postgres_template.take()
    try:
        yield Settings(
            database_url=postgres_template.url_for(name),
            avatars_dir=tmp_path / "avatars",
            _env_file=None,  # type: ignore[call-arg]
        )
    finally:
        postgres_template.drop_later(name)


@pytest.fixture
def proxy(postgres_settings: Settings) -> Iterator[ThreadedProxy]:
    url = make_url(postgres_settings.database_url)
    relay = ThreadedProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        yield relay
    finally:
        relay.close()


def through(settings: Settings, proxy: ThreadedProxy) -> Settings:
    url = make_url(settings.database_url).set(host="127.0.0.1", port=proxy.port)
    return settings.model_copy(update={"database_url": url.render_as_string(hide_password=False)})


@asynccontextmanager
async def direct_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process on the real database (not through the proxy): another server."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def make_org(settings: Settings) -> Org:
    store = open_store(settings)
    try:
        async with store.write() as tx:
            org, key_id, token = await create_organisation(tx, name="Outage")
    finally:
        await store.close()
    return Org(org.id, key_id, token)


def assert_unavailable_rest(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "DATABASE_UNAVAILABLE"
    assert int(response.headers["retry-after"]) > 0


def assert_unavailable_graphql(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    codes = {e["extensions"]["code"] for e in response.json()["errors"]}
    assert codes == {"DATABASE_UNAVAILABLE"}, response.text
    assert int(response.headers["retry-after"]) > 0


async def timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def event_id_of(http: httpx.AsyncClient, path: str, version: int) -> int:
    """The id (seq) of the event of one version, read from a replay of the stream."""
    async with sse_over_http(
        str(http.base_url), "/orgs/c/events", {**http.headers, "Last-Event-ID": "0"}
    ) as (_, sse):
        while True:
            event = await sse.next(RECOVERY_WITHIN)
            assert event is not None
            if event.data["assistant_id"] == path.rsplit("/", 1)[1] and (
                event.data["version"] == version
            ):
                return int(event.id or 0)


async def versions_seen(sse: SseStream, until_version: int) -> list[int]:
    seen: list[int] = []
    while not seen or seen[-1] < until_version:
        event = await sse.next(RECOVERY_WITHIN)
        assert event is not None, f"the stream ended after {seen}"
        seen.append(event.data["version"])
    return seen


async def test_postgres_outage_is_503_then_the_server_recovers_without_losing_anything(
    postgres_settings: Settings, proxy: ThreadedProxy, tmp_path: Path
):
    org = await make_org(postgres_settings)
    with Server(through(postgres_settings, proxy), tmp_path, workers=1) as server:
        async with (
            httpx.AsyncClient(base_url=server.base_url, timeout=60, headers=org.headers) as http,
            direct_client(postgres_settings) as other_server,
        ):
            other_server.headers.update(org.headers)
            created = await http.post("/orgs/c/assistants", json={"name": "v1"})
            assert created.status_code == 201
            path = f"/orgs/c/assistants/{created.json()['id']}"
            async with sse_over_http(server.base_url, "/orgs/c/events", org.headers) as (
                response,
                sse,
            ):
                assert response.status_code == 200
                await sse.wait_connected()
                acknowledged = await http.patch(path, json={"name": "before the cut"})
                assert acknowledged.status_code == 200  # version 2

                proxy.cut()
                patch, rest_seconds = await timed(http.patch(path, json={"name": "lost"}))
                assert_unavailable_rest(patch)
                body = {"query": UPDATE, "variables": {"id": path.rsplit("/", 1)[1], "name": "x"}}
                answer, graphql_seconds = await timed(http.post("/graphql", json=body))
                assert_unavailable_graphql(answer)
                assert (await http.get("/readyz")).status_code == 503
                assert max(rest_seconds, graphql_seconds) < UNAVAILABLE_WITHIN
                # another server writes while this one cannot listen: version 3
                meanwhile = await other_server.patch(path, json={"name": "during the cut"})
                assert meanwhile.status_code == 200

                proxy.restore()
                restored_at = time.monotonic()
                while (recovered := await http.patch(path, json={"name": "after"})).status_code:
                    if recovered.status_code != 503:
                        break
                    assert time.monotonic() - restored_at < RECOVERY_WITHIN
                    await asyncio.sleep(0.2)
                recovery_seconds = time.monotonic() - restored_at
                assert recovered.status_code == 200, recovered.text  # version 4
                assert recovered.json()["version"] == 4
                assert (await http.get("/readyz")).status_code == 200
                assert await versions_seen(sse, 4) == [2, 3, 4]
            # a client that lost its stream resumes after the last event it received
            history = (await http.get(f"{path}/revisions?take=100")).json()
            resume = {**org.headers, "Last-Event-ID": str(await event_id_of(http, path, 2))}
            async with sse_over_http(server.base_url, "/orgs/c/events", resume) as (_, resumed):
                assert await versions_seen(resumed, 4) == [3, 4]
            assert [r["version"] for r in history] == [4, 3, 2, 1]
            stored = await other_server.get(path)
            assert (stored.json()["name"], stored.json()["version"]) == ("after", 4)
    print(
        f"\noutage: REST 503 after {rest_seconds:.2f} s, GraphQL 503 after "
        f"{graphql_seconds:.2f} s, served again {recovery_seconds:.2f} s after the restore"
    )


async def test_a_connection_lost_mid_transaction_is_503_and_stores_nothing(
    postgres_settings: Settings, proxy: ThreadedProxy, tmp_path: Path
):
    """The PATCH waits on a row lock the test holds (inside its transaction) when its
    connection is cut: 503, and its change is not stored."""
    import asyncpg

    from app.store.postgres import libpq_dsn

    org = await make_org(postgres_settings)
    with Server(through(postgres_settings, proxy), tmp_path, workers=1) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=60, headers=org.headers
        ) as http:
            created = await http.post("/orgs/c/assistants", json={"name": "v1"})
            assistant_id = created.json()["id"]
            path = f"/orgs/c/assistants/{assistant_id}"
            holder = await asyncpg.connect(libpq_dsn(postgres_settings.database_url))
            try:
                locked = holder.transaction()
                await locked.start()
                await holder.execute(
                    "SELECT 1 FROM assistants WHERE id = $1 FOR UPDATE", assistant_id
                )
                waiting = asyncio.create_task(http.patch(path, json={"name": "cut off"}))
                await asyncio.sleep(1.0)  # the PATCH waits on the lock, mid-transaction
                assert not waiting.done()
                proxy.cut()
                patch, seconds = await timed(waiting)
                assert_unavailable_rest(patch)
                await locked.rollback()
            finally:
                await holder.close()
            proxy.restore()
            deadline = time.monotonic() + RECOVERY_WITHIN
            while (await http.get(path)).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            stored = (await http.get(path)).json()
            assert (stored["name"], stored["version"]) == ("v1", 1)
    print(f"\nmid-transaction cut: 503 {seconds:.2f} s after the cut")


async def test_a_silent_database_is_503_within_5_seconds(
    postgres_settings: Settings, proxy: ThreadedProxy
):
    """A server that accepts connections and never answers (a network black hole): 503 after
    the store's 5 s wait on both transports, never a hang; then it answers again."""
    org = await make_org(postgres_settings)
    async with direct_client(through(postgres_settings, proxy)) as http:
        http.headers.update(org.headers)
        created = await http.post("/orgs/c/assistants", json={"name": "v1"})
        assistant_id = created.json()["id"]
        path = f"/orgs/c/assistants/{assistant_id}"
        proxy.cut()
        proxy.proxy.mode = "hang"
        proxy.restore()
        patch, rest_seconds = await timed(http.patch(path, json={"name": "x"}))
        assert_unavailable_rest(patch)
        body = {"query": UPDATE, "variables": {"id": assistant_id, "name": "x"}}
        answer, graphql_seconds = await timed(http.post("/graphql", json=body))
        assert_unavailable_graphql(answer)
        # (the first may fail at once, on a pooled connection the cut killed)
        assert max(rest_seconds, graphql_seconds) > 4.5  # a new connection waited its 5 s
        assert max(rest_seconds, graphql_seconds) < UNAVAILABLE_WITHIN
        proxy.cut()
        proxy.proxy.mode = "up"
        proxy.restore()
        assert (await http.patch(path, json={"name": "back"})).status_code == 200
    print(
        f"\nsilent database: REST 503 after {rest_seconds:.2f} s, GraphQL {graphql_seconds:.2f} s"
    )


async def test_backends_terminated_by_a_restart_are_503_then_served(
    postgres_settings: Settings,
):
    """A PostgreSQL restart or failover ends every session (57P01, `terminating connection due
    to administrator command`): the request that was in one is 503, the next ones succeed."""
    import asyncpg

    from app.store.postgres import libpq_dsn

    org = await make_org(postgres_settings)
    async with direct_client(postgres_settings) as http:
        http.headers.update(org.headers)
        created = await http.post("/orgs/c/assistants", json={"name": "v1"})
        assistant_id = created.json()["id"]
        path = f"/orgs/c/assistants/{assistant_id}"
        holder = await asyncpg.connect(libpq_dsn(postgres_settings.database_url))
        try:
            locked = holder.transaction()
            await locked.start()
            await holder.execute("SELECT 1 FROM assistants WHERE id = $1 FOR UPDATE", assistant_id)
            waiting = asyncio.create_task(http.patch(path, json={"name": "terminated"}))
            await asyncio.sleep(1.0)
            assert not waiting.done()
            terminated = await holder.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert terminated >= 1
            assert_unavailable_rest(await waiting)
            await locked.rollback()
        finally:
            await holder.close()
        again = await http.patch(path, json={"name": "after the restart"})
        assert again.status_code == 200, again.text
        assert again.json()["version"] == 2  # the terminated PATCH stored nothing


async def test_a_database_frozen_mid_statement_is_503_within_the_timeout_plus_one_second(
    postgres_settings: Settings, proxy: ThreadedProxy, tmp_path: Path
):
    """The network freezes while a PATCH's statement is on its way (it waits on a row lock the
    test holds, so it is surely sent): that PATCH, and REST and GraphQL requests sent after the
    freeze (on pooled connections: their statements go into the frozen network too), answer 503
    DATABASE_UNAVAILABLE within DATABASE_TIMEOUT_SECONDS + 1 s, not when the client gives up.
    Once the network thaws the server serves again, and the stuck connections were dropped,
    not reused: the late answers they would deliver never reach another request."""
    import asyncpg

    from app.store.postgres import libpq_dsn

    org = await make_org(postgres_settings)
    with Server(through(postgres_settings, proxy), tmp_path, workers=1) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=60, headers=org.headers
        ) as http:
            created = await http.post("/orgs/c/assistants", json={"name": "v1"})
            assistant_id = created.json()["id"]
            path = f"/orgs/c/assistants/{assistant_id}"
            # several pooled connections, so that requests after the freeze take idle ones
            warm = [http.get(path) for _ in range(6)]
            assert {r.status_code for r in await asyncio.gather(*warm)} == {200}
            holder = await asyncpg.connect(libpq_dsn(postgres_settings.database_url))
            try:
                locked = holder.transaction()
                await locked.start()
                await holder.execute(
                    "SELECT 1 FROM assistants WHERE id = $1 FOR UPDATE", assistant_id
                )
                in_flight = asyncio.create_task(timed(http.patch(path, json={"name": "sent"})))
                await asyncio.sleep(1.0)  # its UPDATE is sent and waits on the lock
                assert not in_flight.done()
                proxy.freeze()
                await locked.rollback()  # the answer would come now: the network holds it
                body = {"query": UPDATE, "variables": {"id": assistant_id, "name": "frozen"}}
                after = await asyncio.gather(
                    timed(http.patch(path, json={"name": "frozen"})),
                    timed(http.post("/graphql", json=body)),
                    timed(http.get(path)),
                )
                sent, sent_seconds = await in_flight
            finally:
                await holder.close()
            assert_unavailable_rest(sent)
            assert sent_seconds < 1.0 + FROZEN_WITHIN
            (patch, patch_seconds), (answer, graphql_seconds), (read, read_seconds) = after
            assert_unavailable_rest(patch)
            assert_unavailable_graphql(answer)
            assert_unavailable_rest(read)
            assert max(patch_seconds, graphql_seconds, read_seconds) < FROZEN_WITHIN
            assert (await http.get("/readyz")).status_code == 503

            proxy.thaw()
            deadline = time.monotonic() + RECOVERY_WITHIN
            while (await http.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            for version in range(2, 12):  # each answer is its own request's
                updated = await http.patch(path, json={"name": f"n{version}"})
                assert updated.status_code == 200, updated.text
                assert updated.json()["version"] == version
                got = await http.get(path)
                assert (got.json()["name"], got.json()["version"]) == (f"n{version}", version)
            history = (await http.get(f"{path}/revisions?take=100")).json()
            assert [r["version"] for r in history] == list(range(11, 0, -1))
    print(
        f"\nfrozen: in-flight PATCH 503 after {sent_seconds - 1.0:.2f} s of freeze, later ones "
        f"REST {patch_seconds:.2f} s, GraphQL {graphql_seconds:.2f} s, GET {read_seconds:.2f} s"
    )


@pytest.mark.parametrize("transport", ["rest", "graphql"])
async def test_a_row_lock_held_beyond_the_timeout_is_503_and_stores_nothing(
    postgres_settings: Settings, transport: str
):
    """Another session holds the assistant's row (`SELECT … FOR UPDATE`) and does not let go:
    the update waiting on it is 503 DATABASE_UNAVAILABLE after DATABASE_TIMEOUT_SECONDS, the
    server's own backend gives up too (`lock_timeout`), and once the lock is gone the next
    update succeeds with the version that follows."""
    import asyncpg

    from app.store.postgres import libpq_dsn

    settings = postgres_settings.model_copy(update={"database_timeout_seconds": 2.0})
    org = await make_org(settings)
    async with direct_client(settings) as http:
        http.headers.update(org.headers)
        created = await http.post("/orgs/c/assistants", json={"name": "v1"})
        assistant_id = created.json()["id"]
        path = f"/orgs/c/assistants/{assistant_id}"
        holder = await asyncpg.connect(libpq_dsn(settings.database_url))
        try:
            locked = holder.transaction()
            await locked.start()
            await holder.execute("SELECT 1 FROM assistants WHERE id = $1 FOR UPDATE", assistant_id)
            if transport == "rest":
                response, seconds = await timed(http.patch(path, json={"name": "waits"}))
                assert_unavailable_rest(response)
            else:
                body = {"query": UPDATE, "variables": {"id": assistant_id, "name": "waits"}}
                response, seconds = await timed(http.post("/graphql", json=body))
                assert_unavailable_graphql(response)
            assert 1.5 < seconds < 3.0
            assert (await http.get(path)).json()["name"] == "v1"  # reads are not blocked
            deadline = time.monotonic() + 2.0
            while waiting := await holder.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            ):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            await locked.rollback()
        finally:
            await holder.close()
        again = await http.patch(path, json={"name": "free"})
        assert again.status_code == 200, again.text
        assert again.json()["version"] == 2
    assert waiting == 0  # the dropped connection's backend is not left waiting on the lock


@pytest.fixture
def sqlite_settings(sqlite_template: Path, tmp_path: Path) -> Settings:
    import shutil

    db_file = tmp_path / "assistants.db"
    shutil.copy(sqlite_template, db_file)
    return Settings(
        database_url=f"sqlite+aiosqlite:///{db_file}",
        avatars_dir=tmp_path / "avatars",
        sqlite_busy_timeout_ms=300,
        _env_file=None,  # type: ignore[call-arg]
    )


async def test_sqlite_locked_beyond_the_busy_timeout_is_503(sqlite_settings: Settings):
    """Another process holds the write lock longer than SQLITE_BUSY_TIMEOUT_MS: writes are 503
    DATABASE_UNAVAILABLE on both transports and store nothing; reads still answer; once the
    lock is released writes succeed again."""
    org = await make_org(sqlite_settings)
    async with direct_client(sqlite_settings) as http:
        http.headers.update(org.headers)
        created = await http.post("/orgs/c/assistants", json={"name": "v1"})
        assistant_id = created.json()["id"]
        path = f"/orgs/c/assistants/{assistant_id}"
        holder = sqlite3.connect(make_url(sqlite_settings.database_url).database or "")
        holder.isolation_level = None
        holder.execute("BEGIN IMMEDIATE")
        try:
            assert_unavailable_rest(await http.patch(path, json={"name": "locked out"}))
            body = {"query": UPDATE, "variables": {"id": assistant_id, "name": "locked out"}}
            assert_unavailable_graphql(await http.post("/graphql", json=body))
            assert (await http.get(path)).json()["name"] == "v1"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert (await http.patch(path, json={"name": "free"})).status_code == 200
        assert (await http.get(path)).json()["version"] == 2


async def test_a_websocket_whose_key_cannot_be_checked_closes_with_1013(tmp_path: Path):
    """The database is unavailable while `connection_init` checks the key: the socket closes
    with 1013 (try again later), not with an HTTP answer it can no longer carry."""
    from tests.helpers.event_clients import AsgiWebSocket, Closed

    (tmp_path / "gone").write_text("a file where the database's directory should be")
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'assistants.db'}",
        avatars_dir=tmp_path / "avatars",
        _env_file=None,  # type: ignore[call-arg]
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        connection = AsgiWebSocket(application)
        socket = await connection.__aenter__()
        with pytest.raises(Closed) as closed:
            await socket.init("Bearer any-key")
        assert (closed.value.code, closed.value.reason) == (1013, "DATABASE_UNAVAILABLE")
        await connection.__aexit__(None, None, None)


async def test_sqlite_writers_wait_for_the_lock_at_most_the_database_timeout(
    sqlite_settings: Settings,
):
    """Without SQLITE_BUSY_TIMEOUT_MS, a writer waits DATABASE_TIMEOUT_SECONDS for a write
    lock another connection holds (BEGIN IMMEDIATE), not 30 s; writers queued behind it in the
    same process share the one deadline (they do not wait their turn and then the timeout
    again): every one is 503 within the timeout plus one second, and nothing is stored."""
    settings = sqlite_settings.model_copy(
        update={"sqlite_busy_timeout_ms": None, "database_timeout_seconds": 2.0}
    )
    org = await make_org(settings)
    async with direct_client(settings) as http:
        http.headers.update(org.headers)
        created = await http.post("/orgs/c/assistants", json={"name": "v1"})
        assistant_id = created.json()["id"]
        path = f"/orgs/c/assistants/{assistant_id}"
        holder = sqlite3.connect(make_url(settings.database_url).database or "")
        holder.isolation_level = None
        holder.execute("BEGIN IMMEDIATE")
        try:
            body = {"query": UPDATE, "variables": {"id": assistant_id, "name": "locked out"}}
            answers = await asyncio.gather(
                *(timed(http.patch(path, json={"name": f"locked out {i}"})) for i in range(3)),
                timed(http.post("/graphql", json=body)),
            )
            assert (await http.get(path)).json()["name"] == "v1"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        for response, _ in answers[:3]:
            assert_unavailable_rest(response)
        assert_unavailable_graphql(answers[3][0])
        seconds = max(s for _, s in answers)
        assert 1.5 < seconds < 3.0
        assert (await http.patch(path, json={"name": "free"})).json()["version"] == 2
    print(f"\nSQLite lock held: 4 writers 503 within {seconds:.2f} s (timeout 2 s)")
