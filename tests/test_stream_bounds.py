"""Live streams' fair shares and their ordering with the commits (docs/websocket-and-streams.md),
against a real uvicorn on SQLite and PostgreSQL:

- EVENTS_MAX_STREAMS_PER_ORG: the keys of one organisation share its open streams (SSE and
  subscriptions) in a process; beyond, SSE is 429 TOO_MANY_STREAMS and a subscription gets a
  TOO_MANY_STREAMS error; another organisation is not held back;
- a stream opened without an event id carries nothing committed before it opened, while
  writers keep committing (the race of a poll or a notification already on its way);
- a revoked key's stream carries nothing committed after the revocation, and closes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app.settings import Settings
from tests.helpers.event_clients import GraphQLSocket, SseStream, sse_over_http
from tests.helpers.factories import NewKey, Org
from tests.helpers.server_process import Server

pytestmark = pytest.mark.slow

WAIT = 30.0  # seconds: the generous bound of any one wait
WRITERS = 3
ROUNDS = 6


@asynccontextmanager
async def sse(server: Server, org: Org) -> AsyncIterator[SseStream]:
    async with sse_over_http(server.base_url, "/orgs/c/events", org.headers) as (response, stream):
        assert response.status_code == 200
        await stream.wait_connected()
        yield stream


@asynccontextmanager
async def socket(server: Server, org: Org) -> AsyncIterator[tuple[GraphQLSocket, ClientConnection]]:
    url = server.base_url.replace("http", "ws") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        graphql = GraphQLSocket(ws.send, ws.recv)  # type: ignore[arg-type]
        assert await graphql.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        yield graphql, ws


# --- one organisation's share ---------------------------------------------------------------


@pytest.fixture
def capped_server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    env = {"EVENTS_MAX_STREAMS_PER_ORG": "3", "EVENTS_MAX_STREAMS_PER_KEY": "2"}
    with Server(settings, tmp_path, workers=1, env=env) as running:
        yield running


async def test_the_keys_of_an_organisation_share_its_streams(
    capped_server: Server, org: Org, new_key: NewKey, other_org: Org
) -> None:
    server = capped_server
    second = await new_key(org)
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=WAIT) as http,
        sse(server, org),
        sse(server, org),
        socket(server, second) as (graphql, _ws),
    ):
        await graphql.subscribe("1", "c")

        async def refused() -> httpx.Response:
            for _ in range(100):  # until the subscription has started (nothing acknowledges it)
                answer = await http.get("/orgs/c/events", headers=second.headers)
                if answer.status_code != 200:
                    return answer
                await asyncio.sleep(0.05)
            raise AssertionError("the fourth stream of the organisation was not refused")

        answer = await refused()
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "5"
        problem = answer.json()
        assert (problem["code"], problem["title"]) == ("TOO_MANY_STREAMS", "Too Many Requests")
        assert (
            problem["detail"] == "this organisation has 3 open event streams on this server already"
        )

        await graphql.subscribe("2", "c")  # the second key has one stream: its own share is 2
        error = await graphql.receive(WAIT)
        assert error["id"] == "2"
        assert error["payload"]["errors"][0]["extensions"]["code"] == "TOO_MANY_STREAMS"

        async with sse(server, other_org):  # another organisation is not held back
            pass
        await graphql.send({"id": "1", "type": "complete"})  # a slot of the organisation frees

        async def admitted() -> None:
            for _ in range(100):
                async with http.stream("GET", "/orgs/c/events", headers=second.headers) as r:
                    if r.status_code == 200:
                        return
                await asyncio.sleep(0.05)
            raise AssertionError("the freed slot was not given to the organisation")

        await admitted()


def test_the_default_share_is_100_streams_per_organisation() -> None:
    assert Settings(_env_file=None).events_max_streams_per_org == 100


# --- ordering with the commits --------------------------------------------------------------


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    with Server(settings, tmp_path, workers=2) as running:
        yield running


@pytest.fixture
def busy_server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    """One process: writers and new streams share its loop (the source lags behind commits);
    on SQLite a poll is almost always under way when a stream opens."""
    env = {"EVENTS_POLL_INTERVAL": "0.005"}
    with Server(settings, tmp_path, workers=1, env=env) as running:
        yield running


class Writers:
    """Keeps committing changes to a few assistants (a new connection per request, so either
    worker writes), noting for each (assistant, version) when its request was sent and when
    its answer came back."""

    def __init__(self, server: Server, org: Org, writers: int = WRITERS) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        self.http = httpx.AsyncClient(base_url=server.base_url, timeout=WAIT, limits=limits)
        self.org = org
        self.sent: dict[tuple[str, int], float] = {}
        self.acknowledged: dict[tuple[str, int], float] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._writers = writers

    async def __aenter__(self) -> Writers:
        for n in range(self._writers):
            made = await self.http.post(
                "/orgs/c/assistants", json={"name": f"Writer {n}"}, headers=self.org.headers
            )
            assert made.status_code == 201, made.text
            self._tasks.append(asyncio.create_task(self._write(made.json()["id"])))
        return self

    async def _write(self, assistant_id: str) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            sent = time.monotonic()
            answer = await self.http.patch(
                f"/orgs/c/assistants/{assistant_id}",
                json={"name": f"Change {n}"},
                headers=self.org.headers,
            )
            assert answer.status_code == 200, answer.text
            key = (assistant_id, int(answer.json()["version"]))
            self.sent[key] = sent
            self.acknowledged[key] = time.monotonic()

    async def __aexit__(self, *_exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self.http.aclose()


async def sse_events(stream: SseStream, seconds: float) -> list[dict[str, Any]]:
    """The events of `stream` for `seconds`, or until it ends (read by a task of its own,
    cancelled then: a read cut short by a timeout would end the response's line iterator)."""
    events: list[dict[str, Any]] = []
    reader = asyncio.create_task(read_sse(stream, events))
    with suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(reader), seconds)
    reader.cancel()
    with suppress(asyncio.CancelledError):
        await reader
    return events


async def read_sse(stream: SseStream, events: list[dict[str, Any]]) -> None:
    """Appends the events of `stream` to `events` until it ends."""
    async for event in stream.each():
        events.append({"event": event.event, **(event.data or {})})


async def socket_messages(graphql: GraphQLSocket, seconds: float) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    with suppress(TimeoutError, websockets.ConnectionClosed):
        while (left := deadline - time.monotonic()) > 0:
            messages.append(await graphql.receive(left))
    return messages


def changes_of(messages: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [
        (
            m["payload"]["data"]["assistantChanged"]["assistantId"],
            m["payload"]["data"]["assistantChanged"]["version"],
        )
        for m in messages
        if m.get("type") == "next"
    ]


def committed_before(writers: Writers, changes: list[tuple[str, int]], moment: float) -> list[Any]:
    """The changes whose commit was acknowledged before `moment`."""
    return [c for c in changes if writers.acknowledged.get(c, moment) < moment]


async def opened_sse(server: Server, org: Org, writers: Writers) -> int:
    """Opens a stream, reads it briefly: none of its events was acknowledged before it was
    asked for. How many it carried."""
    opened = time.monotonic()
    async with sse(server, org) as stream:
        events = await sse_events(stream, 0.3)
    changes = [(e["assistant_id"], e["version"]) for e in events]
    assert committed_before(writers, changes, opened) == []
    return len(changes)


async def opened_subscription(server: Server, org: Org, writers: Writers) -> int:
    async with socket(server, org) as (graphql, _ws):
        opened = time.monotonic()
        await graphql.subscribe("1", "c")
        changes = changes_of(await socket_messages(graphql, 0.3))
    assert committed_before(writers, changes, opened) == []
    return len(changes)


async def test_a_new_stream_carries_only_what_commits_after_it_opened(
    busy_server: Server, org: Org
) -> None:
    """Streams open, a few at once, into one busy process while writers keep committing."""
    carried = 0
    async with Writers(busy_server, org, WRITERS * 2) as writers:
        for _ in range(ROUNDS):
            opened = [opened_sse(busy_server, org, writers) for _ in range(4)]
            opened += [opened_subscription(busy_server, org, writers) for _ in range(2)]
            carried += sum(await asyncio.gather(*opened))
    assert carried > 0  # the streams were live


async def test_a_revoked_key_gets_nothing_committed_after_its_revocation(
    server: Server, org: Org, new_key: NewKey
) -> None:
    watcher = await new_key(org)
    events: list[dict[str, Any]] = []
    async with (
        Writers(server, org) as writers,
        sse(server, watcher) as stream,
        socket(server, watcher) as (graphql, ws),
    ):
        reader = asyncio.create_task(read_sse(stream, events))
        await graphql.subscribe("1", "c")
        before_ws = await socket_messages(graphql, 1.0)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=WAIT) as http:
            revoked = await http.delete(f"/orgs/c/api-keys/{watcher.key_id}", headers=org.headers)
        assert revoked.status_code == 204, revoked.text
        revoked_at = time.monotonic()
        after_ws = await socket_messages(graphql, WAIT)  # until the socket closes
        assert ws.close_code == 4403
        await asyncio.wait_for(reader, WAIT)  # until the stream ends

    assert [e for e in events if e["event"] != "error"]  # it was live
    assert events[-1]["event"] == "error"
    assert events[-1]["code"] == "UNAUTHENTICATED"
    changes = [(e["assistant_id"], e["version"]) for e in events if "version" in e]
    late = [c for c in changes if writers.sent.get(c, 0) > revoked_at]
    assert late == []
    late_ws = [c for c in changes_of(before_ws + after_ws) if writers.sent.get(c, 0) > revoked_at]
    assert late_ws == []
