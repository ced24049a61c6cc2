"""The websocket's fair shares (docs/websocket-and-streams.md), against a real uvicorn: a socket
that sends no `connection_init` within GRAPHQL_WS_INIT_TIMEOUT is closed with 4408; an address
holds at most GRAPHQL_WS_MAX_PENDING_PER_ADDRESS sockets not yet initialised, and one more is
refused before the upgrade with HTTP 429 (the address behind a trusted proxy is the forwarded
one); every `subscribe` message is a request of the key's request limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app.settings import Settings
from tests.helpers.event_clients import GraphQLSocket
from tests.helpers.factories import Org
from tests.helpers.server_process import Server

pytestmark = pytest.mark.slow

PROTOCOL = "graphql-transport-ws"
WAIT = 30.0  # seconds: the generous bound of any one wait
PENDING = 50  # the default share of an address


def socket_url(server: Server) -> str:
    return server.base_url.replace("http", "ws") + "/graphql"


async def connect(server: Server, forwarded_for: str | None = None) -> ClientConnection:
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    return await websockets.connect(
        socket_url(server),
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
        additional_headers=headers,
        open_timeout=WAIT,
    )


def graphql(ws: ClientConnection) -> GraphQLSocket:
    return GraphQLSocket(ws.send, ws.recv)  # type: ignore[arg-type]


async def close_code(ws: ClientConnection) -> int | None:
    """Reads until the server closes the socket: its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def refused(server: Server, forwarded_for: str | None = None) -> httpx.Response:
    """The HTTP answer of an upgrade the server refuses."""
    with pytest.raises(websockets.InvalidStatus) as caught:
        await connect(server, forwarded_for)
    answer = caught.value.response
    headers = list(answer.headers.raw_items())
    return httpx.Response(answer.status_code, headers=headers, content=bytes(answer.body or b""))


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    """One process with the default init timeout (3 s), 5 pending sockets per address;
    X-Forwarded-For believed from 127.0.0.1."""
    env = {"FORWARDED_ALLOW_IPS": "127.0.0.1", "GRAPHQL_WS_MAX_PENDING_PER_ADDRESS": "5"}
    with Server(settings, tmp_path, workers=1, env=env) as running:
        yield running


@pytest.fixture
def patient_server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    """The default share of pending sockets (50), each waited for 60 s (so that a slow machine
    opens them all well within their time)."""
    env = {"FORWARDED_ALLOW_IPS": "127.0.0.1", "GRAPHQL_WS_INIT_TIMEOUT": "60"}
    with Server(settings, tmp_path, workers=1, env=env) as running:
        yield running


@asynccontextmanager
async def pending_sockets(
    server: Server, count: int, forwarded_for: str
) -> AsyncIterator[list[ClientConnection]]:
    async with AsyncExitStack() as stack:
        sockets = []
        for _ in range(count):
            ws = await connect(server, forwarded_for)
            stack.push_async_callback(ws.close)
            sockets.append(ws)
        yield sockets


async def test_a_socket_without_connection_init_is_closed_with_4408(
    server: Server, org: Org
) -> None:
    silent = await connect(server)
    initialised = await connect(server)
    try:
        ack = await graphql(initialised).init(f"Bearer {org.api_key}")
        assert ack == {"type": "connection_ack"}
        assert await close_code(silent) == 4408
        assert silent.close_reason == "Connection initialisation timeout"
        # the initialised one is left open: it still answers
        await graphql(initialised).send({"type": "ping"})
        assert await graphql(initialised).receive(WAIT) == {"type": "pong"}
    finally:
        await silent.close()
        await initialised.close()


async def test_an_address_holds_at_most_50_pending_sockets_and_the_next_is_429(
    patient_server: Server, org: Org
) -> None:
    server = patient_server
    async with pending_sockets(server, PENDING, "10.0.0.1") as sockets:
        answer = await refused(server, "10.0.0.1")
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "60"
        body = answer.json()
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert "at most 50" in body["errors"][0]["message"]

        other = await connect(server, "10.0.0.2")  # another address is not held back
        await other.close()
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.get("/healthz")).status_code == 200

        # a socket whose connection_init is answered is no longer pending: a place is free
        ack = await graphql(sockets[0]).init(f"Bearer {org.api_key}")
        assert ack == {"type": "connection_ack"}
        one_more = await connect(server, "10.0.0.1")
        assert (await refused(server, "10.0.0.1")).status_code == 429
        # a refused key (4403) frees its place too
        await graphql(one_more).send({"type": "connection_init", "payload": {}})
        assert await close_code(one_more) == 4403
        await (await connect(server, "10.0.0.1")).close()


async def test_a_timed_out_socket_frees_its_place(server: Server) -> None:
    async with pending_sockets(server, 5, "10.0.0.3") as sockets:
        answer = await refused(server, "10.0.0.3")
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "3"
        assert "at most 5" in answer.json()["errors"][0]["message"]
        codes = await asyncio.gather(*(close_code(ws) for ws in sockets))
        assert set(codes) == {4408}
        async with pending_sockets(server, 5, "10.0.0.3"):
            assert (await refused(server, "10.0.0.3")).status_code == 429


@pytest.fixture
def limited_server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    """Five requests a minute per key."""
    with Server(settings, tmp_path, workers=1, env={"RATE_LIMIT": "5/minute"}) as running:
        yield running


VIEWER = "query { viewer { orgId } }"


async def test_each_subscribe_message_is_a_request_of_the_key_limit(
    limited_server: Server, org: Org
) -> None:
    ws = await connect(limited_server)
    try:
        socket = graphql(ws)
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        for n in range(5):
            await socket.send({"id": str(n), "type": "subscribe", "payload": {"query": VIEWER}})
            answer = await socket.receive(WAIT)
            assert answer["type"] == "next", answer
            assert answer["payload"]["data"] == {"viewer": {"orgId": org.org_id}}
            assert await socket.receive(WAIT) == {"id": str(n), "type": "complete"}
        await socket.send({"id": "5", "type": "subscribe", "payload": {"query": VIEWER}})
        answer = await socket.receive(WAIT)
        assert answer["type"] == "error"
        assert answer["id"] == "5"
        (error,) = answer["payload"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retryAfter"] >= 1
        assert error["message"].startswith("too many requests: at most 5 per 60 seconds")
        # the socket stays open, and the key's HTTP requests count in the same limit
        await socket.send({"type": "ping"})
        assert await socket.receive(WAIT) == {"type": "pong"}
    finally:
        await ws.close()
    async with httpx.AsyncClient(base_url=limited_server.base_url) as http:
        listed = await http.get("/orgs/c/assistants", headers=org.headers)
    assert listed.status_code == 429
    assert json.loads(listed.text)["code"] == "RATE_LIMITED"


def test_the_default_bounds() -> None:
    defaults = Settings(_env_file=None)
    assert defaults.graphql_ws_init_timeout == 3.0
    assert defaults.graphql_ws_max_pending_per_address == PENDING
