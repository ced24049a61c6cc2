"""Outbound requests: one httpx client per process, through a transport that checks the address
it connects to (docs/webhooks.md, "Where webhooks may send").

The connection pool's network backend resolves each host itself, refuses the connection
(`BlockedAddress`: no socket is opened) when any of its addresses is blocked, and connects to
the address it checked; TLS still uses the name (SNI and the certificate's check). So a second
resolution between a check and the connection (DNS rebinding) cannot slip another address in.
Redirects are never followed. Only public httpx and httpcore API.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from app.domain.webhook_urls import IPAddress, blocked, resolve

BODY_KEPT = 1024  # bytes of a response recorded with its attempt
BODY_READ = 64 * 1024  # a longer body is not read to its end (the connection is dropped)


class BlockedAddress(Exception):
    """The host resolves to an address no attempt may reach: no connection was made."""


class UnresolvedHost(OSError):
    """The host does not resolve."""


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to checked addresses (any address with `allow_private`)."""

    def __init__(self, *, allow_private: bool) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.allow_private = allow_private

    async def address(self, host: str, port: int) -> IPAddress:
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
        return addresses[0]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self.address(host, port)
        return await self.inner.connect_tcp(
            str(address), port, timeout=timeout, local_address=local_address,
            socket_options=socket_options,
        )  # fmt: skip

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("webhooks never connect to a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class CheckedTransport(httpx.AsyncBaseTransport):
    """httpx over an httpcore pool with the checked backend; the answer's body is read (at most
    BODY_READ bytes) before it is handed back."""

    def __init__(self, *, allow_private: bool, connections: int) -> None:
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=30.0,
            network_backend=CheckedBackend(allow_private=allow_private),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self.pool.handle_async_request(core_request)
            body = b""
            try:
                async for chunk in response.aiter_stream():
                    body += chunk
                    if len(body) > BODY_READ:
                        break
            finally:
                await response.aclose()
        except httpcore.TimeoutException as exc:
            raise httpx.TimeoutException(str(exc) or "timed out", request=request) from exc
        except httpcore.ConnectError as exc:
            raise httpx.ConnectError(str(exc) or "connection refused", request=request) from exc
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise httpx.TransportError(str(exc) or type(exc).__name__) from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            content=body[:BODY_READ],
            request=request,
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
