"""Live changes across processes: a real `python -m app serve --workers 2` on SQLite and on
PostgreSQL; writers on fresh connections (either worker), subscribers over a websocket and SSE.

The delay from commit to delivery is printed (median and worst), never asserted: only
generous overall timeouts bound these tests.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select, update

from app.models import ApiKey, AssistantRevision
from app.settings import Settings
from app.store import Store
from tests.helpers.event_clients import GraphQLSocket, SseStream, sse_over_http
from tests.helpers.factories import Org
from tests.helpers.server_process import ROOT, Server, server_env

pytestmark = pytest.mark.slow

UPDATES = 20
KEYS = ApiKey.__table__
WAIT = 30.0  # seconds: the generous bound of any one wait


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    with Server(settings, tmp_path, workers=2) as running:
        yield running


@asynccontextmanager
async def subscription(
    server: Server, api_key: str, assistant_id: str | None = None
) -> AsyncIterator[tuple[GraphQLSocket, websockets.ClientConnection]]:
    url = server.base_url.replace("http", "ws") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        socket = GraphQLSocket(ws.send, ws.recv)  # type: ignore[arg-type]
        assert await socket.init(f"Bearer {api_key}") == {"type": "connection_ack"}
        await socket.subscribe("1", "c", assistant_id)
        yield socket, ws


@asynccontextmanager
async def events(
    server: Server, org: Org, query: str = "", **headers: str
) -> AsyncIterator[SseStream]:
    path = f"/orgs/c/events{query}"
    async with sse_over_http(server.base_url, path, {**org.headers, **headers}) as (response, sse):
        assert response.status_code == 200
        await sse.wait_connected()
        yield sse


def fresh_connections(server: Server) -> httpx.AsyncClient:
    """A client that opens a new connection for every request (so the writes land on either
    worker), built once: building a client takes the loop long enough to skew the delays."""
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=server.base_url, timeout=WAIT, limits=limits)


@pytest.fixture
async def writer(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_connections(server) as http:
        yield http


async def fresh_patch(
    http: httpx.AsyncClient, org: Org, assistant_id: str, body: Any
) -> dict[str, Any]:
    url = f"/orgs/c/assistants/{assistant_id}"
    response = await http.patch(url, json=body, headers={**org.headers, "Connection": "close"})
    assert response.status_code == 200, response.text
    patched: dict[str, Any] = response.json()
    return patched


async def fresh_create(http: httpx.AsyncClient, org: Org, name: str) -> dict[str, Any]:
    response = await http.post("/orgs/c/assistants", json={"name": name}, headers=org.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def ws_event(socket: GraphQLSocket) -> dict[str, Any]:
    message = await socket.receive(WAIT)
    assert message["type"] == "next", message
    event: dict[str, Any] = message["payload"]["data"]["assistantChanged"]
    return event


async def warm_up(
    http: httpx.AsyncClient, org: Org, assistant_id: str, socket: GraphQLSocket
) -> int:
    """Until the subscription is live (its worker got the subscribe message, which nothing
    acknowledges): changes until one arrives. The version it reached."""
    for attempt in range(20):
        patched = await fresh_patch(http, org, assistant_id, {"name": f"Warm {attempt}"})
        try:
            event = await ws_event_within(socket, 1.0)
        except TimeoutError:
            continue
        while event["version"] < patched["version"]:
            event = await ws_event(socket)
        return int(patched["version"])
    raise AssertionError("the subscription never received an event")


async def ws_event_within(socket: GraphQLSocket, seconds: float) -> dict[str, Any]:
    message = await socket.receive(seconds)
    event: dict[str, Any] = message["payload"]["data"]["assistantChanged"]
    return event


def committed_at(document: dict[str, Any]) -> float:
    return datetime.fromisoformat(document["updated_at"].replace("Z", "+00:00")).timestamp()


def report(name: str, database: str, delays: list[float]) -> None:
    ms = sorted(d * 1000 for d in delays)
    line = (
        f"\n[{database}] {name}: commit -> delivery over {len(ms)} updates: "
        f"median {statistics.median(ms):.1f} ms, worst {ms[-1]:.1f} ms"
    )
    print(line)
    report_file = os.environ.get("EVENTS_DELAY_REPORT")
    if report_file:
        with open(report_file, "a") as out:
            out.write(line.strip() + "\n")


async def stored_seqs(db: Store, assistant_id: str, after_version: int) -> list[str]:
    table = AssistantRevision.__table__
    statement = (
        select(table.c.seq)
        .where(table.c.assistant_id == assistant_id, table.c.version > after_version)
        .order_by(table.c.version)
    )
    async with db.read() as tx:
        return [str(seq) for (seq,) in await tx.all(statement)]


async def test_websocket_and_sse_receive_every_update_in_order(
    server: Server, writer: httpx.AsyncClient, org: Org, db: Store, settings: Settings
) -> None:
    created = await fresh_create(writer, org, "Bot")
    assistant_id = created["id"]
    async with (
        subscription(server, org.api_key, assistant_id) as (socket, _ws),
        events(server, org, f"?assistant_id={assistant_id}") as sse,
    ):
        start = await warm_up(writer, org, assistant_id, socket)
        while (event := await sse.next(WAIT)) is not None and event.data["version"] < start:
            pass
        received: dict[str, list[tuple[dict[str, Any], float]]] = {"websocket": [], "sse": []}

        async def read_ws() -> None:
            for _ in range(UPDATES):
                received["websocket"].append((await ws_event(socket), time.time()))

        async def read_sse() -> None:
            for _ in range(UPDATES):
                event = await sse.next(WAIT)
                assert event is not None
                received["sse"].append((event.data, time.time()))

        readers = asyncio.gather(read_ws(), read_sse())
        commits = {}
        for n in range(UPDATES):
            patched = await fresh_patch(writer, org, assistant_id, {"name": f"Update {n}"})
            commits[patched["version"]] = committed_at(patched)
        await asyncio.wait_for(readers, WAIT * 2)

    versions = list(range(start + 1, start + 1 + UPDATES))
    seqs = await stored_seqs(db, assistant_id, start)
    database = "sqlite" if settings.is_sqlite else "postgres"
    for name, got in received.items():
        assert [event["version"] for event, _ in got] == versions, name
        assert [event["id"] for event, _ in got] == seqs, name
        report(name, database, [at - commits[event["version"]] for event, at in got])
    assert [e["changeType"] for e, _ in received["websocket"]] == ["UPDATED"] * UPDATES
    assert [e["assistant"]["name"] for e, _ in received["websocket"]] == [
        f"Update {n}" for n in range(UPDATES)
    ]
    assert [e["changes"] for e, _ in received["sse"]] == [
        [
            {
                "path": "name",
                "from": f"Update {n - 1}" if n else f"Warm {start - 2}",
                "to": f"Update {n}",
            }
        ]
        for n in range(UPDATES)
    ]


async def test_resuming_with_last_event_id_yields_exactly_the_missed_events(
    server: Server, writer: httpx.AsyncClient, org: Org, db: Store
) -> None:
    created = await fresh_create(writer, org, "Bot")
    assistant_id = created["id"]
    async with events(server, org) as sse:
        await fresh_patch(writer, org, assistant_id, {"name": "Seen"})
        seen = [await sse.next(WAIT) for _ in range(1)]
    last = seen[-1]
    assert last is not None
    assert last.data["version"] == 2
    for n in range(3):
        await fresh_patch(writer, org, assistant_id, {"name": f"Missed {n}"})
    async with events(server, org, **{"Last-Event-ID": str(last.id)}) as sse:
        missed = [await sse.next(WAIT) for _ in range(3)]
        await fresh_patch(writer, org, assistant_id, {"name": "Live"})
        live = await sse.next(WAIT)
    got = [event for event in [*missed, live] if event is not None]
    assert [event.id for event in got] == await stored_seqs(db, assistant_id, 2)
    assert [event.data["version"] for event in got] == [3, 4, 5, 6]
    assert [event.event for event in got] == ["updated"] * 4


async def cli(settings: Settings, *args: str) -> tuple[int, bytes]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        cwd=ROOT,
        env=server_env(settings, 0),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), WAIT)
    return process.returncode or 0, output


async def drain(socket: GraphQLSocket) -> None:
    """Reads until the socket closes (raises ConnectionClosed then)."""
    while True:
        await socket.receive(WAIT)


@pytest.mark.parametrize("how", ["cli", "rest", "expired"])
async def test_a_key_revoked_or_expired_closes_its_streams(
    server: Server,
    writer: httpx.AsyncClient,
    org: Org,
    new_key: Any,
    settings: Settings,
    db: Store,
    how: str,
) -> None:
    """Revoked from the command line or over REST (by another key, on either worker), or
    expired: every worker closes the key's streams (within EVENTS_KEY_CHECK_SECONDS, 2 s)."""
    doomed = await new_key(org)
    created = await fresh_create(writer, org, "Bot")
    reason = "the API key has expired" if how == "expired" else "the API key was revoked"
    async with (
        subscription(server, doomed.api_key) as (socket, ws),
        events(server, doomed) as sse,
    ):
        await warm_up(writer, org, created["id"], socket)
        if how == "cli":
            code, output = await cli(settings, "keys", "revoke", doomed.key_id)
            assert code == 0, output
        elif how == "rest":
            url = f"/orgs/c/api-keys/{doomed.key_id}"
            assert (await writer.delete(url, headers=org.headers)).status_code == 204
        else:
            past = datetime.now(UTC) - timedelta(seconds=1)
            async with db.write() as tx:
                await tx.execute(
                    update(KEYS).where(KEYS.c.id == doomed.key_id).values(expires_at=past)
                )
        revoked_at = time.monotonic()
        refused = await writer.get("/orgs/c/assistants", headers=doomed.headers)
        assert refused.status_code == 401  # at once, on any worker
        while (event := await sse.next(WAIT)) is not None and event.event != "error":
            pass
        assert event is not None
        assert event.data == {"code": "UNAUTHENTICATED", "detail": reason}
        assert await sse.next(WAIT) is None
        with pytest.raises(websockets.ConnectionClosed):
            await drain(socket)
        assert ws.close_code == 4403
        assert ws.close_reason == reason
        print(f"\nstreams closed {time.monotonic() - revoked_at:.2f}s after the key ended ({how})")


async def test_another_organisation_receives_nothing(
    server: Server, writer: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    mine = await fresh_create(writer, org, "Mine")
    theirs = await fresh_create(writer, other_org, "Theirs")
    async with (
        subscription(server, other_org.api_key) as (socket, _ws),
        events(server, other_org) as sse,
    ):
        start = await warm_up(writer, other_org, theirs["id"], socket)
        while (event := await sse.next(WAIT)) is not None and event.data["version"] < start:
            pass
        for n in range(5):
            await fresh_patch(writer, org, mine["id"], {"name": f"Secret {n}"})
        await fresh_patch(writer, other_org, theirs["id"], {"name": "Theirs again"})
        ws_next = await ws_event(socket)
        sse_next = await sse.next(WAIT)
    assert (ws_next["assistantId"], ws_next["version"]) == (theirs["id"], start + 1)
    assert sse_next is not None
    assert (sse_next.data["assistant_id"], sse_next.data["version"]) == (theirs["id"], start + 1)
