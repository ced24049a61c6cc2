"""OpenTelemetry traces, on only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.

`configure()` runs at start-up: it imports the SDK (nothing from opentelemetry is imported
otherwise), installs a tracer provider whose batch processor exports over OTLP/HTTP, and reads
the standard `OTEL_*` variables the SDK itself reads (`OTEL_SERVICE_NAME`, default
`assistants-api`; `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`,
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*` …). Spans made:

- one per HTTP request (opentelemetry-instrumentation-asgi), renamed `METHOD /route/{template}`
  once the route is known, with `http.route`;
- one per GraphQL operation (`query assistant`, `mutation updateAssistant`, with
  `graphql.operation.type` and `graphql.operation.name`), made by the engine;
- one per SQL statement: on PostgreSQL by opentelemetry-instrumentation-asyncpg; on SQLite by
  the store itself (app/store/sqlite.py `trace_statements`: the sqlite3 instrumentation wraps
  `sqlite3.connect` and traces cursors, while the store runs `Connection.execute` on the
  connection aiosqlite's thread holds, which it never sees).

Log lines (app/logs.py) carry `trace_id` and `span_id` while a span is active.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SERVICE_NAME = "assistants-api"

tracer: OperationTracer | None = None  # set by configure(); the engine reads it


def wanted() -> bool:
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


class OperationTracer:
    """Spans of GraphQL operations, named per OpenTelemetry's GraphQL conventions."""

    def __init__(self, otel_tracer: Any) -> None:
        self.otel_tracer = otel_tracer

    def operation(self, kind: str, name: str | None) -> Any:
        """A context manager: the current span while the operation runs."""
        attributes = {"graphql.operation.type": kind}
        if name is not None:
            attributes["graphql.operation.name"] = name
        return self.otel_tracer.start_as_current_span(
            kind if name is None else f"{kind} {name}", attributes=attributes
        )


def configure() -> bool:
    """Tracing for this process (once), when an OTLP endpoint is set; False otherwise."""
    global tracer  # noqa: PLW0603
    if not wanted():
        return False
    if tracer is not None:
        return True
    from opentelemetry import trace  # noqa: PLC0415  (only when tracing is on)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor  # noqa: PLC0415
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    from app import logs  # noqa: PLC0415
    from app.store.sqlite import trace_statements  # noqa: PLC0415

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))  # sampler: OTEL_TRACES_*
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    otel_tracer = trace.get_tracer("app")
    # mypy ignore below: the library leaves this unannotated
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    trace_statements(otel_tracer)
    logs.trace_ids = _current_ids(trace)
    tracer = OperationTracer(otel_tracer)
    return True


def _current_ids(trace: Any) -> Callable[[], tuple[str, str] | None]:
    def current() -> tuple[str, str] | None:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format(context.trace_id, "032x"), format(context.span_id, "016x")

    return current


def http_middleware() -> list[Middleware]:
    """The ASGI middleware of a traced app, outermost first: OpenTelemetry's span per request,
    then the one that names it after its route."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: PLC0415

    return [
        Middleware(
            OpenTelemetryMiddleware,
            default_span_details=_span_details,
            exclude_spans=["receive", "send"],
        ),
        Middleware(RouteSpanName),
    ]


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    """A request's span starts named after its method (its path may hold ids); RouteSpanName
    adds the route template once the router has matched it."""
    return (scope.get("method") or "WEBSOCKET"), {}


class RouteSpanName:
    """Names the request's span after its route as the answer starts (OpenTelemetry's
    middleware ends the span with the last byte of the body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from opentelemetry import trace  # noqa: PLC0415  (tracing is on: already imported)

        span = trace.get_current_span()

        def name_it() -> None:
            route = scope.get("route")
            if route is not None and span.is_recording():
                span.update_name(f"{scope.get('method') or 'WEBSOCKET'} {route.path}")
                span.set_attribute("http.route", route.path)

        async def send_named(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                name_it()
            await send(message)

        await self.app(scope, receive, send_named)
