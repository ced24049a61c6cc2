"""Outbound requests: one httpx client per process, through a transport that checks the address
it connects to (docs/webhooks.md, "Where webhooks may send").

The transport's pool (app/webhooks/http1.py) resolves each host itself, refuses the connection
(`BlockedAddress`: no socket is opened) when any of its addresses is blocked, and connects to
the address it checked; TLS still uses the name (SNI and the certificate's check). So a second
resolution between a check and the connection (DNS rebinding) cannot slip another address in.
Redirects are never followed. Only public httpx API.
"""

from __future__ import annotations

import asyncio

import httpx

from app.domain.webhook_urls import blocked, resolve
from app.webhooks.http1 import Pool

BODY_KEPT = 1024  # bytes of a response recorded with its attempt
BODY_READ = 64 * 1024  # a longer body is not read to its end (the connection is dropped)
DEFAULT_PORTS = {b"http": 80, b"https": 443}


class BlockedAddress(Exception):
    """The host resolves to an address no attempt may reach: no connection was made."""


class UnresolvedHost(OSError):
    """The host does not resolve."""


class CheckedResolver:
    """The address to connect to: checked (any address with `allow_private`)."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def address(self, host: str, port: int) -> str:
        try:
            addresses = await resolve(host, port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise UnresolvedHost(f"cannot resolve '{host}': {exc or type(exc).__name__}") from None
        if not addresses:
            raise UnresolvedHost(f"'{host}' has no address")
        if not self.allow_private:
            refused = [str(a) for a in addresses if blocked(a)]
            if refused:
                raise BlockedAddress(f"'{host}' resolves to a blocked address ({refused[0]})")
        return str(addresses[0])


class CheckedTransport(httpx.AsyncBaseTransport):
    """httpx over the lean HTTP/1.1 pool with the checked resolver; the answer's body is read
    (at most BODY_READ bytes) before it is handed back."""

    def __init__(self, *, allow_private: bool, connections: int) -> None:
        resolver = CheckedResolver(allow_private=allow_private)
        context = httpx.create_ssl_context(trust_env=False)
        self.pool = Pool(resolver.address, context, keep=connections)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.raw_scheme
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"cannot send to a {scheme!r} URL", request=request)
        port = url.port or DEFAULT_PORTS[scheme]
        origin = (scheme.decode(), url.host, port)
        body = await request.aread()
        try:
            answer = await self.pool.post(
                origin, url.raw_path, list(request.headers.raw), body, body_read=BODY_READ
            )
        except (TimeoutError, asyncio.CancelledError, BlockedAddress, UnresolvedHost):
            raise
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            message = str(exc) or type(exc).__name__
            if isinstance(exc, ConnectionRefusedError):
                raise httpx.ConnectError(message, request=request) from exc
            raise httpx.TransportError(message) from exc
        return httpx.Response(
            status_code=answer.status, headers=answer.headers, content=answer.body, request=request
        )

    async def aclose(self) -> None:
        await self.pool.aclose()


def new_client(*, timeout: float, allow_private: bool, connections: int) -> httpx.AsyncClient:
    """The process's client: one pool, the checked transport, no redirects, no proxies."""
    return httpx.AsyncClient(
        transport=CheckedTransport(allow_private=allow_private, connections=connections),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": "assistants-api-webhooks/1", "content-type": "application/json"},
    )
