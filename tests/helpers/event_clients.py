"""Clients of the live change streams for tests: server-sent events and graphql-transport-ws,
in-process (driving the ASGI app on the test's own loop) or against a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.types import ASGIApp, Message

SUBSCRIPTION = """
subscription Changes($orgId: ID!, $assistantId: ID) {
  assistantChanged(orgId: $orgId, assistantId: $assistantId) {
    id orgId assistantId version changeType
    changes { path from to }
    assistant { id name version config { model } }
  }
}
"""


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Waits (polling every 10 ms) until `condition()` holds; TimeoutError after `seconds`."""
    for _ in range(int(seconds * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"not within {seconds}s")


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: Any


@dataclass
class SseParser:
    """Feeds lines of an event stream; yields events (comments are counted, not yielded)."""

    comments: list[str] = field(default_factory=list)
    _fields: dict[str, str] = field(default_factory=dict)

    def line(self, line: str) -> SseEvent | None:
        if line.startswith(":"):
            self.comments.append(line[1:].strip())
            return None
        if line:
            name, _, value = line.partition(":")
            self._fields[name] = value.removeprefix(" ")
            return None
        if not self._fields:
            return None
        fields, self._fields = self._fields, {}
        data = json.loads(fields["data"]) if "data" in fields else None
        return SseEvent(fields.get("id"), fields.get("event", "message"), data)


class SseStream:
    """Events as they arrive, from any source of text lines."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines
        self.parser = SseParser()

    async def next(self, seconds: float = 10.0) -> SseEvent | None:
        """The next event; None when the server ended the stream."""

        async def read() -> SseEvent | None:
            async for line in self._lines:
                if (event := self.parser.line(line)) is not None:
                    return event
            return None

        return await asyncio.wait_for(read(), seconds)

    async def each(self) -> AsyncIterator[SseEvent]:
        """Every event until the server ends the stream, without a timeout: a task reading it
        is stopped by cancelling it (a cancellation `next`'s wait_for may swallow, on 3.11)."""
        async for line in self._lines:
            if (event := self.parser.line(line)) is not None:
                yield event

    async def wait_comment(self, text: str, seconds: float = 10.0) -> None:
        """Until the server sends the comment `: <text>` (events meanwhile are lost)."""

        async def read() -> None:
            async for line in self._lines:
                self.parser.line(line)
                if text in self.parser.comments:
                    return
            raise AssertionError(f"the stream ended before ': {text}'")

        await asyncio.wait_for(read(), seconds)

    async def wait_connected(self, seconds: float = 10.0) -> None:
        """Until the server's `: connected` comment: from then on nothing is missed."""
        await self.wait_comment("connected", seconds)


@asynccontextmanager
async def sse_over_http(
    base_url: str, path: str, headers: dict[str, str]
) -> AsyncIterator[tuple[httpx.Response, SseStream]]:
    """An event stream from a real server, through httpx."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=None)) as http,
        http.stream("GET", path, headers=headers) as response,
    ):
        yield response, SseStream(response.aiter_lines())


class AsgiHttpStream:
    """A GET whose response body streams in, driving the ASGI app directly (httpx's
    ASGITransport would wait for the end of an endless response)."""

    def __init__(self, app: ASGIApp, path: str, headers: dict[str, str]) -> None:
        target, _, query = path.partition("?")
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": target,
            "raw_path": target.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
            "state": {},
        }
        self.app = app
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._disconnect = asyncio.Event()
        self._started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _receive(self) -> Message:
        await self._disconnect.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
            self._started.set()
        elif message["type"] == "http.response.body":
            self._chunks.put_nowait(message.get("body", b""))
            if not message.get("more_body", False):
                self._chunks.put_nowait(None)

    async def __aenter__(self) -> AsgiHttpStream:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._started.wait(), 10)
        return self

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        finally:
            self._started.set()
            self._chunks.put_nowait(None)

    async def __aexit__(self, *_exc: object) -> None:
        self._disconnect.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 10)

    async def body(self) -> bytes:
        chunks = []
        while (chunk := await asyncio.wait_for(self._chunks.get(), 10)) is not None:
            chunks.append(chunk)
        return b"".join(chunks)

    async def lines(self) -> AsyncIterator[str]:
        buffer = ""
        while (chunk := await self._chunks.get()) is not None:
            buffer += chunk.decode()
            while "\n" in buffer:
                line, buffer = buffer.split("\n", 1)
                yield line


@dataclass
class Closed(Exception):
    code: int
    reason: str


class GraphQLSocket:
    """graphql-transport-ws over any pair of send/receive coroutines (text frames)."""

    def __init__(
        self, send: Callable[[str], Awaitable[None]], receive: Callable[[], Awaitable[str]]
    ) -> None:
        self._send = send
        self._receive = receive

    async def send(self, message: dict[str, Any]) -> None:
        await self._send(json.dumps(message))

    async def receive(self, seconds: float = 10.0) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self._receive(), seconds))
        return message

    async def init(self, authorization: str | None) -> dict[str, Any]:
        payload = {} if authorization is None else {"authorization": authorization}
        await self.send({"type": "connection_init", "payload": payload})
        return await self.receive()

    async def subscribe(
        self, op_id: str, org_id: str, assistant_id: str | None = None, query: str = SUBSCRIPTION
    ) -> None:
        variables = {"orgId": org_id, "assistantId": assistant_id}
        await self.send(
            {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )


class AsgiWebSocket:
    """A websocket to the ASGI app, on the test's own loop."""

    def __init__(self, app: ASGIApp, path: str = "/graphql") -> None:
        self.scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"test")],
            "client": ("127.0.0.1", 50001),
            "server": ("test", 80),
            "subprotocols": ["graphql-transport-ws"],
            "state": {},
        }
        self.app = app
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.closed: Closed | None = None

    async def __aenter__(self) -> GraphQLSocket:
        self._to_app.put_nowait({"type": "websocket.connect"})
        self._task = asyncio.ensure_future(self.app(self.scope, self._to_app.get, self._put))
        accepted = await asyncio.wait_for(self._from_app.get(), 10)
        assert accepted["type"] == "websocket.accept", accepted
        return GraphQLSocket(self._send_text, self._receive_text)

    async def _put(self, message: Message) -> None:
        self._from_app.put_nowait(message)

    async def _send_text(self, text: str) -> None:
        self._to_app.put_nowait({"type": "websocket.receive", "text": text})

    async def _receive_text(self) -> str:
        message = await self._from_app.get()
        if message["type"] == "websocket.close":
            self.closed = Closed(message.get("code", 1000), message.get("reason", ""))
            self._to_app.put_nowait({"type": "websocket.disconnect", "code": self.closed.code})
            raise self.closed
        text: str = message["text"]
        return text

    async def __aexit__(self, *_exc: object) -> None:
        self._to_app.put_nowait({"type": "websocket.disconnect", "code": 1000})
        assert self._task is not None
        await asyncio.wait_for(self._task, 10)
