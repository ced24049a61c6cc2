"""A lean HTTP/1.1 client for webhook attempts: asyncio streams and a keep-alive pool per origin.

An attempt is one POST whose answer's status, headers and first bytes are kept. httpcore's
pool (with anyio under it) spent about ten times the CPU of the request itself on each one
(docs/webhooks.md, "Cost"); this does the same work in one write and a few reads. The caller
bounds the whole attempt (`asyncio.timeout`); a connection that an attempt leaves in any other
state than "answer read to its end, keep-alive" is closed, never reused.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

MAX_HEAD = 64 * 1024  # bytes of a status line and headers
NO_BODY = frozenset({204, 304})

Resolve = Callable[[str, int], Awaitable[str]]  # (host, port) -> the checked address


class ProtocolError(OSError):
    """The receiver's answer is not HTTP/1.x, or the connection closed in the middle of it."""


@dataclass(slots=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    used_at: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Idle connections by (scheme, host, port), at most `keep` each, dropped after `expiry` s."""

    def __init__(
        self, resolve: Resolve, ssl_context: ssl.SSLContext, *, keep: int, expiry: float = 30.0
    ) -> None:
        self.resolve = resolve
        self.ssl_context = ssl_context
        self.keep = keep
        self.expiry = expiry
        self.idle: dict[tuple[str, str, int], list[_Connection]] = {}

    async def post(
        self,
        origin: tuple[str, str, int],
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        body_read: int,
    ) -> Answer:
        """Sends the request (its headers include Host) on an idle connection of the origin, or
        a new one; a reused connection that the receiver had closed is replaced once."""
        request = _request(target, headers, body)
        reused = self._take(origin)
        if reused is not None:
            try:
                return await self._exchange(origin, reused, request, body_read)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if getattr(exc, "partial", b"") or isinstance(exc, ConnectionRefusedError):
                    raise
        return await self._exchange(origin, await self._open(origin), request, body_read)

    def _take(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self.idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if now - connection.used_at < self.expiry and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    async def _open(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        address = await self.resolve(host, port)
        secure = scheme == "https"
        reader, writer = await asyncio.open_connection(
            address,
            port,
            ssl=self.ssl_context if secure else None,
            server_hostname=host if secure else None,
            limit=MAX_HEAD,
        )
        return _Connection(reader, writer)

    async def _exchange(
        self, origin: tuple[str, str, int], connection: _Connection, request: bytes, body_read: int
    ) -> Answer:
        try:
            connection.writer.write(request)
            await connection.writer.drain()
            answer, reusable = await _read_answer(connection.reader, body_read)
        except BaseException:
            connection.close()
            raise
        idle = self.idle.setdefault(origin, [])
        if reusable and len(idle) < self.keep:
            connection.used_at = time.monotonic()
            idle.append(connection)
        else:
            connection.close()
        return answer

    async def aclose(self) -> None:
        for idle in self.idle.values():
            for connection in idle:
                connection.close()
        self.idle.clear()


def _request(target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [b"POST " + target + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in headers]
    if not any(name.lower() == b"content-length" for name, _ in headers):
        lines.append(b"content-length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ProtocolError("the answer's headers are too long") from None
    status_line, *lines = head[:-4].split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
    headers = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon:
            raise ProtocolError("a malformed header line in the answer")
        headers.append((name.strip().lower(), value.strip()))
    return int(parts[1]), parts[0], headers


async def _read_answer(reader: asyncio.StreamReader, body_read: int) -> tuple[Answer, bool]:
    """The answer (its body cut at `body_read` bytes) and whether the connection may be reused."""
    status, version, headers = await _read_head(reader)
    while 100 <= status < 200:  # 100 Continue and other interim answers
        status, version, headers = await _read_head(reader)
    found = dict(headers)
    keep = version == b"HTTP/1.1" and found.get(b"connection", b"").lower() != b"close"
    if status in NO_BODY:
        return Answer(status, headers, b""), keep
    if b"chunked" in found.get(b"transfer-encoding", b"").lower():
        body, complete = await _read_chunked(reader, body_read)
    elif (length := found.get(b"content-length", b"")).isdigit():
        wanted = int(length)
        body = await reader.readexactly(min(wanted, body_read + 1))
        complete = wanted <= body_read
    else:  # until the connection closes
        body, complete = await reader.read(body_read + 1), False
    return Answer(status, headers, body[:body_read]), keep and complete


async def _read_chunked(reader: asyncio.StreamReader, body_read: int) -> tuple[bytes, bool]:
    body = b""
    while len(body) <= body_read:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError("a malformed chunk size in the answer") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return body, True
        take = min(size, body_read + 1 - len(body))
        body += await reader.readexactly(take)
        if take < size:
            return body, False
        await reader.readexactly(2)
    return body, False
