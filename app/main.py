"""create_app(settings): routes, middleware, lifespan and exception handlers."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from app.auth import KeyUsage
from app.domain.audit import keep_sealing
from app.domain.audit_log import keep_pruning
from app.domain.errors import DomainError
from app.events import Broker
from app.graphql import ide
from app.graphql.idempotency import mutation_material
from app.graphql.schema import build_schema
from app.graphql.view import GraphQLView, refusal_response
from app.http.fairshare import FairShares
from app.http.idempotency import IdempotencyMiddleware
from app.http.middleware import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    ForwardedMiddleware,
    Refusals,
    RequestIdMiddleware,
    UnexpectedErrorMiddleware,
    cors_options,
)
from app.http.ratelimit import Buckets, CreationQuota, PointsBudget, RateLimitMiddleware
from app.logs import configure_logging
from app.observability import metrics, tracing
from app.openapi import openapi_json
from app.rest import (
    actions,
    api_keys,
    assistants,
    audit_log,
    avatars,
    bundles,
    duplicate,
    events,
    integrations,
    releases,
    revisions,
    webhooks,
)
from app.rest.errors import (
    domain_error_response,
    handle_domain_error,
    handle_http_error,
    handle_unexpected,
)
from app.settings import Settings
from app.shutdown import OpenSockets, Shutdown
from app.store import Store, disk, open_store
from app.webhooks.engine import Engine, client_of

logger = logging.getLogger("app")


NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def readyz(request: Request) -> Response:
    """200 when the database answers and writes can be stored; 503 when it does not, while
    the disk is full (docs/database-faults.md), or once the process is shutting down (SIGTERM:
    see app/shutdown.py)."""
    if request.app.state.shutdown.draining:
        return JSONResponse({"status": "shutting_down"}, status_code=503, headers=NO_STORE)
    store: Store = request.app.state.db
    flagged = store.storage_full  # a write failed for a full disk: probe with a write
    if not await store.ping():
        return JSONResponse({"status": "unavailable"}, status_code=503, headers=NO_STORE)
    directories = [*store.data_directories(), request.app.state.settings.avatars_dir]
    if not await asyncio.to_thread(disk.room_to_write, directories, flagged):
        return JSONResponse({"status": "storage_full"}, status_code=503, headers=NO_STORE)
    if flagged:
        store.storage_full = False
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


GC_THRESHOLDS = (20_000, 10, 10)
_gc_settled = False


def settle_garbage_collector() -> None:
    """What the first app of the process built at start-up (schema, routes, statements) lives
    as long as the process: frozen out of the collector's generations (once per process), so
    that the collections requests trigger do not walk it again and again; the youngest
    generation is collected every 20,000 allocations instead of 700 (a list of 100 assistants
    allocates tens of thousands of objects), the older two as often as by default, so that the
    cycles requests leave behind are freed and memory stays flat."""
    global _gc_settled  # noqa: PLW0603
    if _gc_settled:
        return
    _gc_settled = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# The middleware's own refusals (413, 429), rendered by the transports (app/http imports neither).
REFUSALS = Refusals(rest=domain_error_response, graphql=refusal_response)


def middleware(settings: Settings, buckets: Buckets, graphql: GraphQLView) -> list[Middleware]:
    """Outermost first: every answer (even a masked 500 or a 429) gets its request id and its
    access-log line; CORS (when origins are configured) answers preflights before the rate
    limiter counts anything; the rate limiter refuses before a body is read (in `buckets`,
    where the GraphQL points are counted too)."""
    stack = [
        Middleware(RequestIdMiddleware),
        Middleware(AccessLogMiddleware, metrics=metrics.active),
        Middleware(UnexpectedErrorMiddleware, handle=handle_unexpected),
    ]
    if tracing.tracer is not None:  # the span is around all but the client-address rewrite
        stack[:0] = tracing.http_middleware()
    if settings.forwarded_allow_ips:  # first: every layer sees the same client address
        stack.insert(0, Middleware(ForwardedMiddleware, allowed=settings.forwarded_allow_ips))
    if settings.cors_origins:
        stack.append(Middleware(CORSMiddleware, **cors_options(settings.cors_origins)))
    return [
        *stack,
        Middleware(
            RateLimitMiddleware, limit=settings.rate_limit, refusals=REFUSALS, buckets=buckets
        ),
        Middleware(
            BodyLimitMiddleware,
            max_bytes=settings.max_body_bytes,
            max_avatar_bytes=settings.max_avatar_bytes,
            refusals=REFUSALS,
        ),
        Middleware(  # innermost: the body is within its limit, the rate limiter has counted
            IdempotencyMiddleware,
            refusals=REFUSALS,
            graphql_mutation=partial(mutation_material, graphql.documents),
            ttl=settings.idempotency_ttl,
        ),
    ]


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    metrics.configure(settings.metrics_enabled)  # before the engine and middleware read it
    tracing.configure()  # only with OTEL_EXPORTER_OTLP_ENDPOINT set

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.db = open_store(settings)  # the store (no connection opened yet)
        app.state.broker = Broker(app.state.db, settings)
        app.state.key_usage = KeyUsage(app.state.db)  # writes `last_used_at`, once a minute
        app.state.shutdown = Shutdown(
            app.state.broker,
            sockets,
            settings.shutdown_grace_seconds,
            settings.shutdown_drain_seconds,
        )
        # webhooks: one client (pool) per process; the delivery engine unless WEBHOOKS_DELIVERY=off
        app.state.webhook_client = client_of(settings)
        engine = None
        if settings.webhooks_delivery == "inline":
            engine = Engine(settings, app.state.webhook_client)
            engine.start()
            app.state.shutdown.on_drain.append(engine.stop_claiming)
        # the audit log (docs/audit-log.md): pending entries chained; retention
        audit_tasks = []
        if settings.audit_seal_seconds > 0:
            sealing = keep_sealing(app.state.db, settings.audit_seal_seconds)
            audit_tasks.append(asyncio.create_task(sealing))
        if settings.audit_keep_days is not None:
            keeping = keep_pruning(app.state.db, settings.audit_keep_days)
            audit_tasks.append(asyncio.create_task(keeping))
        restore_signals = app.state.shutdown.install()
        settle_garbage_collector()
        try:
            yield
        finally:
            restore_signals()
            for task in audit_tasks:
                task.cancel()
            if engine is not None:
                await engine.stop(settings.shutdown_grace_seconds)
            await app.state.webhook_client.aclose()
            await app.state.broker.stop()
            await app.state.key_usage.close()
            await app.state.db.close()
            await buckets.close()
            metrics.mark_worker_dead()

    buckets = Buckets.of_settings(settings)  # memory, or Redis shared by every process
    points = PointsBudget(buckets, settings.graphql_points)
    limit = settings.create_assistant_limit
    creation_quota = CreationQuota(buckets, limit) if limit else None
    fair = FairShares(buckets, settings)  # expensive work takes turns per tenant
    graphql = GraphQLView(build_schema(settings), settings=settings, points=points, fair=fair)
    sockets = OpenSockets(graphql)  # the websockets, closed with 1001 at shutdown
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        *releases.runtime_routes,  # polled by voice runtimes: matched first (docs/releases.md)
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", sockets),
        *ide.routes,
        *assistants.routes,
        *duplicate.routes,
        *integrations.routes,
        *actions.routes,
        *avatars.routes,
        *revisions.routes,
        *releases.routes,
        *events.routes,
        *api_keys.routes,
        *webhooks.routes,
        *bundles.routes,
        *audit_log.routes,
    ]
    if settings.metrics_enabled:  # for the scraper: no API key; METRICS_TOKEN when set
        endpoint = metrics.metrics_endpoint(settings.metrics_token)
        routes.append(Route("/metrics", endpoint, methods=["GET"]))
    app = Starlette(
        routes=routes,
        middleware=middleware(settings, buckets, graphql),
        exception_handlers={
            DomainError: handle_domain_error,
            HTTPException: handle_http_error,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.creation_quota = creation_quota
    app.state.fair = fair
    return app
