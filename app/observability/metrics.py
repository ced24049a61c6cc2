"""Prometheus metrics: `GET /metrics` and the hooks that feed it.

The collectors are made once per process (`configure`), in prometheus-client's multiprocess
mode when `PROMETHEUS_MULTIPROC_DIR` is set (`python -m app serve --workers N` sets up a fresh
directory itself): each worker writes its values to mmap'd files there and `/metrics` sums them.

Every label value is bounded: methods outside the HTTP ones and paths no route matches are
`other`, operation names beyond the first 200 distinct ones are `other`, and error codes are a
closed set (`other` for anything else). The children of the hot labels are cached, so that a
request costs a dict lookup, one `inc()` and one `observe()`.

`active` is None while metrics are off (`METRICS_ENABLED=false`): every hook then costs one
attribute read.
"""

from __future__ import annotations

import hmac
import os
from ipaddress import IPv6Address, ip_address
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

MAX_OPERATION_NAMES = 200
OTHER = "other"
ANONYMOUS = "anonymous"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# graphql_operations_total{outcome}: ran without errors / ran with errors (data may be partial)
# / refused before running (parse, validation, cost, variables, no such operation, rate limit)
SUCCESS, ERROR, REJECTED = "success", "error", "rejected"
OUTCOMES = (SUCCESS, ERROR, REJECTED)
ERROR_CODES = frozenset(
    {
        "BAD_REQUEST",
        "BAD_USER_INPUT",
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "INSUFFICIENT_SCOPE",
        "NOT_FOUND",
        "CONFLICT",
        "PAYLOAD_TOO_LARGE",
        "RATE_LIMITED",
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "UNSUPPORTED_MEDIA_TYPE",
        "METHOD_NOT_ALLOWED",
        "INTERNAL_SERVER_ERROR",
        "TOO_MANY_SUBSCRIPTIONS",
        "TOO_MANY_STREAMS",
        "SLOW_CONSUMER",
        "SHUTTING_DOWN",
        "EVENTS_UNAVAILABLE",
        "DATABASE_UNAVAILABLE",
        "STORAGE_FULL",
        "PERSISTED_QUERY_NOT_FOUND",
        "PERSISTED_QUERY_NOT_SUPPORTED",
        "TRUSTED_DOCUMENT_REQUIRED",
        "PRECONDITION_FAILED",
    }
)
# seconds: from 1 ms (a cached read) to 10 s (a request waiting for the database)
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The process's collectors, and the cached children of their hot labels."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `*_created` series: half the lines, nothing lost
        self.requests = Counter(
            "http_requests_total", "HTTP requests answered", ("method", "route", "status")
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (until its body is sent)",
            ("method", "route"),
            buckets=DURATION_BUCKETS,
        )
        self.operations = Counter(
            "graphql_operations_total",
            "GraphQL operations by type, name and outcome (success, error, rejected)",
            ("type", "name", "outcome"),
        )
        self.operation_duration = Histogram(
            "graphql_operation_duration_seconds",
            "Time to run a GraphQL operation over HTTP (from its document to its answer)",
            ("type", "name"),
            buckets=DURATION_BUCKETS,
        )
        self.errors = Counter("graphql_errors_total", "GraphQL errors answered", ("code",))
        self.rate_limited = Counter("rate_limited_total", "Requests refused with 429")
        self.revisions = Counter(
            "revisions_written_total", "Assistant revisions written", ("change_type",)
        )
        self.streams = Gauge(
            "event_streams_open",
            "Open live-change streams (sse, websocket)",
            ("transport",),
            multiprocess_mode="livesum",
        )
        # webhooks (docs/webhooks.md): attempts by outcome, commit to 2xx, deliveries waiting
        self.webhook_deliveries = Counter(
            "webhook_deliveries_total",
            "Webhook delivery attempts by outcome (delivered, retry, failed, gone, blocked)",
            ("outcome",),
        )
        self.webhook_seconds = Histogram(
            "webhook_delivery_seconds",
            "Time from a change's commit to its webhook's 2xx",
            buckets=(*DURATION_BUCKETS, 30.0, 60.0, 300.0, 3600.0),
        )
        self.webhook_pending = Gauge(
            "webhook_pending",
            "Webhook deliveries waiting for an attempt (as last counted by a delivery engine)",
            multiprocess_mode="mostrecent",
        )
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._operations: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._names: set[str] = set()
        self._errors: dict[str, Any] = {}
        self._revisions: dict[str, Any] = {}

    # -- HTTP ------------------------------------------------------------------------------

    def request(self, scope: Scope, status: int, seconds: float) -> None:
        """One answered HTTP request (called by the access-log middleware with its timing)."""
        route = scope.get("route")
        key = (scope["method"], route.path if route is not None else _template(scope), status)
        children = self._http.get(key)
        if children is None:
            children = self._http_children(*key)
        children[0].inc()
        children[1].observe(seconds)
        if status == 429:  # every refusal for too many requests, whichever limit made it
            self.rate_limited.inc()

    def _http_children(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        label = method if method in METHODS else OTHER
        children = (
            self.requests.labels(label, route, str(status)),
            self.duration.labels(label, route),
        )
        if method in METHODS:  # an invented method is not kept (the key would be unbounded)
            self._http[(method, route, status)] = children
        return children

    # -- GraphQL -----------------------------------------------------------------------------

    def operation(self, kind: str, name: str | None, outcome: str, seconds: float) -> None:
        key = (kind, name or ANONYMOUS, outcome)
        children = self._operations.get(key)
        if children is None:
            children = self._operation_children(*key)
        children[0].inc()
        children[1].observe(seconds)

    def _operation_children(self, kind: str, name: str, outcome: str) -> tuple[Any, Any]:
        label = name
        if name not in self._names:
            if len(self._names) >= MAX_OPERATION_NAMES:
                label = OTHER
            else:
                self._names.add(name)
        children = (
            self.operations.labels(kind, label, outcome),
            self.operation_duration.labels(kind, label),
        )
        if label != OTHER or name == OTHER:
            self._operations[(kind, name, outcome)] = children
        return children

    def graphql_errors(self, errors: Any) -> None:
        """The errors of one GraphQL answer, by `extensions.code`."""
        for error in errors:
            extensions = error.get("extensions") if isinstance(error, dict) else None
            code = extensions.get("code") if isinstance(extensions, dict) else None
            # mypy ignore below: codes outside the closed set map to 'other'
            child = self._errors.get(code)  # type: ignore[arg-type]
            if child is None:
                child = self.errors.labels(code if code in ERROR_CODES else OTHER)
                if code in ERROR_CODES:
                    self._errors[code] = child
            child.inc()

    # -- the domain and the live streams ----------------------------------------------------

    def revision_written(self, change_type: str) -> None:
        child = self._revisions.get(change_type)
        if child is None:  # the domain's change types: a closed set
            child = self._revisions[change_type] = self.revisions.labels(change_type)
        child.inc()

    def stream_opened(self, transport: str) -> Any:
        """Counts an open stream; `.dec()` on the answer when it closes."""
        child = self.streams.labels(transport)
        child.inc()
        return child

    def webhook_attempt(self, outcome: str, seconds_since_commit: float | None) -> None:
        self.webhook_deliveries.labels(outcome).inc()
        if seconds_since_commit is not None:
            self.webhook_seconds.observe(seconds_since_commit)


def _template(scope: Scope) -> str:
    """The route template of a request no router has looked at (refused by a middleware), or
    `other` when no route matches its path."""
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return str(route.path)
    return OTHER


_metrics: Metrics | None = None
active: Metrics | None = None  # what the hooks feed; None while metrics are off


def configure(enabled: bool) -> Metrics | None:
    """The process's metrics (made on first use), or None when off."""
    global _metrics, active  # noqa: PLW0603
    if enabled and _metrics is None:
        _metrics = Metrics()
    active = _metrics if enabled else None
    return active


def exposition() -> bytes:
    """The text exposition: this process's values, or every worker's summed."""
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    # mypy ignore below: the library leaves this unannotated
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def is_loopback(client: tuple[str, int] | None) -> bool:
    """Whether the client address (after the trusted proxies' X-Forwarded-For: a forwarded
    request is its client's, not the proxy's) is a loopback one (127.0.0.0/8, ::1, or
    ::ffff:127.x.y.z)."""
    if not client:
        return False
    try:
        address = ip_address(client[0].partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


LOOPBACK_ONLY = (
    "metrics are served to loopback clients only; set METRICS_TOKEN to scrape from elsewhere\n"
)


def metrics_endpoint(token: str | None) -> Any:
    """`GET /metrics`; with a token, `Authorization: Bearer <token>` (compared in constant
    time) or 401; without one, only to loopback clients (403 for anyone else: the series name
    every tenant's operations)."""
    expected = f"Bearer {token}".encode() if token else None

    async def metrics(request: Request) -> Response:
        if expected is None and not is_loopback(request.scope.get("client")):
            return Response(LOOPBACK_ONLY, 403, media_type="text/plain")
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return Response(
                    "a metrics token is required: Authorization: Bearer <METRICS_TOKEN>\n",
                    401,
                    {"WWW-Authenticate": 'Bearer realm="metrics"'},
                    media_type="text/plain",
                )
        return Response(exposition(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    return metrics


def mark_worker_dead() -> None:
    """On a worker's exit in multiprocess mode: its live gauges (open streams) stop counting."""
    if multiprocess_dir() is not None:
        # mypy ignore below: the library leaves this unannotated
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
