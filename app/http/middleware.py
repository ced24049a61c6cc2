"""Pure ASGI middleware: request ids, the access log, masking of unexpected errors, body size
limits (checked before the body is read), and the client address behind trusted proxies.

It imports neither transport: the refusals it makes itself are rendered by the functions
`create_app` gives it (`Refusals`, and the handler of unexpected errors)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from os import urandom
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.errors import DomainError, PayloadTooLarge
from app.observability import metrics as observed

access_logger = logging.getLogger("app.access")
GRAPHQL_PATH = "/graphql"

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
AVATAR_UPLOAD = re.compile(r"^/orgs/[^/]+/avatars/?$")
# a bundle may be 5 MiB (docs/bundles.md; MAX_BUNDLE_BYTES of app/domain/bundle_format.py)
BUNDLE_APPLY = re.compile(r"^/orgs/[^/]+/bundles/apply/?$")
BUNDLE_BYTES = 5 * 1024 * 1024


class RequestIdMiddleware:
    """Echoes `X-Request-ID` (taken from the request when sane, made otherwise)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        # made: 32 hex digits of os.urandom, uuid4's source without its UUID object
        request_id = given if _REQUEST_ID.match(given) else urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """413 for a body over the limit: at once from Content-Length, else while it streams in."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, max_avatar_bytes: int, refusals: Refusals
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_avatar_bytes = max_avatar_bytes
        self.refusals = refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self.max_avatar_bytes if AVATAR_UPLOAD.match(path) else self.max_bytes
        if BUNDLE_APPLY.match(path):
            limit = max(limit, BUNDLE_BYTES)
        error = PayloadTooLarge(f"the body may be at most {limit} bytes")
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self.refusals.response(scope, error)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise error
            return message

        await self.app(scope, limited_receive, send)


Render = Callable[[DomainError], Response]


class Refusals:
    """How the middleware answers a refusal made outside any endpoint (413, 429): with the
    renderers of the transports (`rest`: problem details; `graphql`: a GraphQL error body),
    handed over by `create_app`, so that this package imports neither transport."""

    __slots__ = ("graphql", "rest")

    def __init__(self, *, rest: Render, graphql: Render) -> None:
        self.rest = rest
        self.graphql = graphql

    def response(self, scope: Scope, error: DomainError) -> Response:
        """GraphQL-shaped on /graphql (with the REST answer's headers), else problem details."""
        response = self.rest(error)
        if scope["path"] != GRAPHQL_PATH:
            return response
        graphql = self.graphql(error)
        for name in ("retry-after", "www-authenticate"):
            if name in response.headers:
                graphql.headers[name] = response.headers[name]
        return graphql


def request_state(scope: Scope) -> dict[str, Any]:
    """The per-request state (`request.state` of Starlette): request id and, once
    authenticated, the `principal` (set by the REST helper and the GraphQL context)."""
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def client_address(scope: Scope) -> str:
    """The client's address: the one place it is read (per-address limits, the access log).
    The direct peer, or what X-Forwarded-For says when the peer is a trusted proxy
    (`ForwardedMiddleware` has then rewritten `scope["client"]`)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


class TrustedProxies:
    """FORWARDED_ALLOW_IPS: comma-separated addresses and CIDRs, or `*` for any peer."""

    def __init__(self, allowed: str) -> None:
        entries = [entry.strip() for entry in allowed.split(",") if entry.strip()]
        self.everyone = "*" in entries
        self.networks = tuple(ip_network(e, strict=False) for e in entries if e != "*")
        self.trusts = lru_cache(maxsize=4096)(self._trusts)

    def _trusts(self, address: str) -> bool:
        if self.everyone:
            return True
        try:
            parsed: IPv4Address | IPv6Address = ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The right-most address of the chain (X-Forwarded-For, then the peer) that is not a
        trusted proxy: what the last proxy we trust saw. Anything to its left was written by
        the client and is ignored. A chain of trusted proxies only: its left-most address."""
        if forwarded_for is None or not self.trusts(peer):
            return peer
        chain = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(chain):
            if not self.trusts(hop):
                return hop
        return chain[0] if chain else peer


class ForwardedMiddleware:
    """Outermost (only when FORWARDED_ALLOW_IPS is set): a request from a trusted proxy gets
    the client address of its X-Forwarded-For in `scope["client"]`, so every layer after it
    (limits, logs, metrics) sees the same one; from anyone else the header is ignored."""

    def __init__(self, app: ASGIApp, *, allowed: str) -> None:
        self.app = app
        self.proxies = TrustedProxies(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if scope["type"] in ("http", "websocket") and peer:
            forwarded_for = Headers(scope=scope).getlist("x-forwarded-for")
            if forwarded_for:
                client = self.proxies.client(peer[0], ",".join(forwarded_for))
                if client != peer[0]:
                    scope["client"] = (client[:100], 0)
        await self.app(scope, receive, send)


class AccessLogMiddleware:
    """One structured line per request on the `app.access` logger: request id, organisation and
    key id (when authenticated), method, route, path, status and duration. Never a header
    value, a query string or a body. The same timing feeds the Prometheus metrics (`metrics`,
    None while they are off)."""

    def __init__(self, app: ASGIApp, metrics: observed.Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            seconds = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.request(scope, status, seconds)
            fields = access_fields(scope, status, seconds)
            access_logger.info("%s %s %s", scope["method"], scope["path"], status, extra=fields)


def access_fields(scope: Scope, status: int, seconds: float) -> dict[str, Any]:
    state = request_state(scope)
    principal = state.get("principal")
    route = scope.get("route")
    return {
        "request_id": state.get("request_id"),
        "org_id": getattr(principal, "org_id", None),
        "key_id": getattr(principal, "key_id", None),
        "client": client_address(scope),
        "method": scope["method"],
        "route": getattr(route, "path", None),
        "path": scope["path"],
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
    }


class UnexpectedErrorMiddleware:
    """An exception no handler took becomes the masked 500 (its id in the answer and, with the
    traceback, in the log), inside the request-id and access-log middleware so that answer
    carries `X-Request-ID` and is logged like any other."""

    def __init__(
        self, app: ASGIApp, *, handle: Callable[[Request, Exception], Awaitable[Response]]
    ) -> None:
        self.app = app
        self.handle = handle  # the REST handler of unexpected errors (app/rest/errors.py)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_and_note(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception as exc:
            if started:
                raise
            response = await self.handle(Request(scope), exc)
            await response(scope, receive, send)


def cors_options(origins: list[str]) -> dict[str, Any]:
    """Starlette's CORSMiddleware for an allow-list of origins (no credentials: the API key is
    a header the page sends itself)."""
    return {
        "allow_origins": origins,
        "allow_methods": ["GET", "POST", "PATCH", "DELETE"],
        "allow_headers": ["Authorization", "Content-Type", "If-Match", "X-Request-ID"],
        "expose_headers": [
            "ETag",
            "X-Request-ID",
            "Retry-After",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
            "RateLimit-Policy",
            "pagination-count",
            "pagination-page",
            "pagination-take",
        ],
        "max_age": 600,
    }
