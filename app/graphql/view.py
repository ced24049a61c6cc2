"""The Strawberry ASGI view: context per request, JSON error bodies for HTTP-level failures, and
the points each request spends (`extensions.cost` on every answer; see app/graphql/points.py).

GraphQL over HTTP: a client whose `Accept` takes `application/graphql-response+json` (at least
as much as `application/json`) gets that media type, and a request that fails before it runs
(parse, validation, cost, variables) is 400 without `data`; `application/json` (or no
`Accept`, or `*/*`) keeps `"data": null` and 200. Persisted and trusted documents:
app/graphql/persisted.py."""

from __future__ import annotations

from datetime import timedelta
from time import perf_counter
from typing import TYPE_CHECKING, Any

import orjson
from cross_web import HTTPException
from limits import RateLimitItem, parse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from app.domain.errors import BadRequest, DomainError
from app.graphql.answer_size import ResponseTooLarge, stopped
from app.graphql.context import Context
from app.graphql.engine import Engine, RequestError, too_large_body
from app.graphql.errors import ANSWER_STATUS, extension_code, http_status, unavailable_status
from app.graphql.handshake import PendingSockets, refuse_upgrade
from app.graphql.ide import page_response
from app.graphql.persisted import Documents, Miss
from app.graphql.points import Spending
from app.graphql.subscriptions import SocketContext, TransportWSHandler, accept_connection
from app.http.content import media_type
from app.http.errors import RateLimited
from app.http.fairshare import FairShares
from app.http.json_body import parse_json_body
from app.observability import metrics
from app.settings import Settings
from app.store.joined import store_for

if TYPE_CHECKING:
    from app.http.ratelimit import PointsBudget


JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def response_media_type(accept: str) -> str:
    """`application/graphql-response+json` when the Accept header takes it (q > 0) at least as
    much as `application/json`; `application/json` otherwise (no Accept, `*/*`, …)."""
    if GRAPHQL_RESPONSE not in accept and GRAPHQL_RESPONSE not in accept.lower():
        return JSON
    ours = theirs = 0.0
    for item in accept.lower().split(","):
        media, *parameters = item.split(";")
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.strip()
        if media == GRAPHQL_RESPONSE:
            ours = max(ours, quality)
        elif media == JSON:
            theirs = max(theirs, quality)
    return GRAPHQL_RESPONSE if ours > 0 and ours >= theirs else JSON


def graphql_error_body(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def graphql_error_response(status: int, code: str, message: str) -> Response:
    return JSONResponse(graphql_error_body(code, message), status_code=status)


def refusal_response(error: DomainError) -> Response:
    """A refusal made outside any endpoint (413, 429 by the middleware), GraphQL-shaped."""
    if metrics.active is not None:
        metrics.active.graphql_errors(({"extensions": {"code": error.code}},))
    return graphql_error_response(http_status(error), extension_code(error), error.message)


def rate_limited(errors: list[dict[str, Any]]) -> dict[str, str] | None:
    """The `Retry-After` of a RATE_LIMITED error a resolver raised (CREATE_ASSISTANT_LIMIT):
    that answer is a 429 over HTTP, like every other refusal of its kind."""
    for error in errors:
        extensions = error.get("extensions") or {}
        if extensions.get("code") == RateLimited.code:
            return {"Retry-After": str(extensions.get("retryAfter", 1))}
    return None


def answer_bytes(body: dict[str, Any], content: bytes) -> int:
    """The bytes of an answer's data and errors: all of it but its `extensions`."""
    return len(content) - len(orjson.dumps({"extensions": body["extensions"]})) + 1


async def answer(
    spending: Spending,
    body: dict[str, Any],
    status: int = 200,
    media_type: str = JSON,
    max_bytes: int | None = None,
) -> Response:
    """A GraphQL answer with its `extensions.cost`; a request that did not run spends its
    point now (429 RATE_LIMITED when even that is beyond the budget). `max_bytes`: the bound of
    an answer that ran, checked here to the byte once it is serialized (the executor counted it
    as it wrote, so it is never much larger)."""
    headers = None
    if status == 200 and "errors" in body and (outage := unavailable_status(body["errors"])):
        status, headers = outage  # 503 DATABASE_UNAVAILABLE with Retry-After
    try:
        await spending.settle()
    except RateLimited as exc:
        body, status = graphql_error_body(exc.code, exc.message), http_status(exc)
        headers = {"Retry-After": str(exc.retry_after)}
    if status == 200 and "errors" in body and (headers := rate_limited(body["errors"])):
        status = ANSWER_STATUS[RateLimited.code]
    body["extensions"] = {**body.get("extensions", {}), "cost": spending.extension}
    content = orjson.dumps(body)
    if (
        max_bytes is not None
        and len(content) > max_bytes
        and answer_bytes(body, content) > max_bytes
    ):
        body = {**too_large_body(ResponseTooLarge(max_bytes)), "extensions": body["extensions"]}
        status = 400 if media_type == GRAPHQL_RESPONSE else 200
        content = orjson.dumps(body)
    if "errors" in body and metrics.active is not None:
        metrics.active.graphql_errors(body["errors"])
    return Response(content, status, headers, media_type=media_type)


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """graphql-transport-ws messages as text frames (browser clients parse text only)."""

    async def send_json(self, message: Any) -> None:
        try:
            await self.ws.send_text(orjson.dumps(message).decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class GraphQLView(GraphQL[Context, None]):
    websocket_adapter_class = TextWebSocketAdapter
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(
        self,
        schema: Any,
        *,
        settings: Settings,
        points: PointsBudget | None = None,
        fair: FairShares | None = None,
    ) -> None:
        super().__init__(
            schema,
            multipart_uploads_enabled=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            # graphql-transport-ws closes with 4408 when connection_init is late
            connection_init_wait_timeout=timedelta(seconds=settings.graphql_ws_init_timeout),
        )
        # the handshakes waiting for their connection_init (app/graphql/handshake.py)
        self.pending = PendingSockets(
            settings.graphql_ws_max_pending_per_address, settings.graphql_ws_init_timeout
        )
        # each `subscribe` message is a request of the request limit (RATE_LIMIT), as over HTTP
        self.request_limit: RateLimitItem = parse(settings.rate_limit)
        self.settings = settings
        self.engine = Engine(schema, settings)
        self.documents = Documents(  # a bad trusted documents manifest stops the start-up here
            self.engine,
            keep=settings.graphql_persisted_max,
            manifest=settings.graphql_trusted_documents,
        )
        if points is None:  # a view of its own (the app passes the budget of its rate limiter)
            from app.http.ratelimit import Buckets, PointsBudget  # noqa: PLC0415  (imports this module)

            points = PointsBudget(Buckets(), settings.graphql_points)
        self.points = points
        # expensive operations take turns per tenant (app/http/fairshare.py)
        self.engine.fair = self.fair = fair or FairShares(points.buckets, settings)
        self.max_subscriptions_per_connection = settings.graphql_max_subscriptions
        self.max_response_bytes = settings.graphql_max_response_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.socket(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        spending = Spending(self.points, self.points.buckets.of_request(scope))
        headers = request.headers
        sent = media_type(headers)
        answers = response_media_type(headers.get("accept", ""))
        if request.method == "POST" and sent != "application/json":
            # No form, multipart or text/plain POST (what a cross-site form can send) executes.
            message = f"send the request as application/json, not '{sent or 'nothing'}'"
            body = graphql_error_body("UNSUPPORTED_MEDIA_TYPE", message)
            await (await answer(spending, body, 415, answers))(scope, receive, send)
            return
        try:
            response = await self.serve(request, spending, answers)
        except HTTPException as exc:
            code = "BAD_REQUEST" if exc.status_code == 400 else "METHOD_NOT_ALLOWED"
            if exc.status_code == 404:
                code = "NOT_FOUND"
            body = graphql_error_body(code, exc.reason)
            response = await answer(spending, body, exc.status_code, answers)
        except RequestError as exc:
            body = graphql_error_body("BAD_REQUEST", exc.message)
            response = await answer(spending, body, 400, answers)
        except RateLimited as exc:  # the points of the request are beyond the budget
            body = graphql_error_body(exc.code, exc.message)
            response = await answer(spending, body, http_status(exc), answers)
            response.headers["Retry-After"] = str(exc.retry_after)
        except DomainError as exc:  # 413 while the body streams in; persisted documents' errors
            body = graphql_error_body(exc.code, exc.message)
            response = await answer(spending, body, http_status(exc), answers)
            if exc.retry_after is not None:
                response.headers["Retry-After"] = str(exc.retry_after)
        finally:
            context: Context | None = getattr(request.state, "graphql_context", None)
            if context is not None:
                await context.loaders.close()
        await response(scope, receive, send)

    async def socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A websocket, within its address's share of pending handshakes (else 429 before the
        upgrade); its place is freed once its connection_init is answered, or when it ends."""
        pending = self.pending.admit(scope)
        if pending is None:
            error = self.pending.refusal()
            response = refusal_response(error)
            response.headers["Retry-After"] = str(error.retry_after)
            await refuse_upgrade(scope, receive, send, response)
            return
        try:
            await super().__call__(scope, receive, send)
        finally:
            pending.release()

    async def serve(self, request: Request, spending: Spending, answers: str) -> Response:
        """One GraphQL request over HTTP through the engine (GraphiQL for a browser's GET);
        `answers` is the media type of the response."""
        if request.method == "GET":
            params = request.query_params
            if (
                "query" not in params
                and "extensions" not in params
                and any(
                    accepted in request.headers.get("accept", "")
                    for accepted in ("text/html", "*/*")
                )
            ):
                return await self.render_graphql_ide(request)
            data: Any = self.parse_query_params(params)
        else:
            data = self.parse_json(await request.body())
        if isinstance(data, list):
            raise HTTPException(400, "Batching is not enabled")
        query, variables = data.get("query"), data.get("variables")
        operation_name = data.get("operationName")
        prepared = None
        extensions = data.get("extensions")
        context = Context(
            db=store_for(request.scope, request.app.state.db),
            settings=self.settings,
            authorization=request.headers.get("authorization"),
            request=request,
        )
        request.state.graphql_context = context  # its loaders are closed when the request ends
        if (extensions is not None or self.documents.trusted is not None) and isinstance(
            query, str | None
        ):
            found = self.documents.resolve(query, extensions)
            if isinstance(found, Miss):  # a hash this process does not know yet
                found = await self.documents.complete(found, context.db, context.authenticated)
            if found is not None:
                query, prepared = found
        if not isinstance(query, str) or not query:
            if query is not None and not isinstance(query, str):
                raise HTTPException(400, "The GraphQL operation's `query` must be a string")
            raise HTTPException(400, "No GraphQL query found in the request")
        if not isinstance(variables, dict | None):
            raise HTTPException(400, "The GraphQL operation's `variables` must be an object")
        if not isinstance(operation_name, str | None):
            raise HTTPException(400, "The GraphQL `operationName` must be a string")
        engine = self.engine
        if engine.metrics is None:
            body = await engine.run(
                query, variables, operation_name, context, request.method, spending, prepared
            )
        else:
            started = perf_counter()
            try:
                body = await engine.run(
                    query, variables, operation_name, context, request.method, spending, prepared
                )
            except BaseException:
                engine.count(query, operation_name, prepared, None, spending, started)
                raise
            engine.count(query, operation_name, prepared, body, spending, started)
        if context.denied:
            await context.record_denials()
        if "data" not in body:
            # failed before it ran (parse, validation, cost or variables), or stopped as its
            # answer passed GRAPHQL_MAX_RESPONSE_BYTES (no `data` either way in this media type)
            if answers == GRAPHQL_RESPONSE:
                return await answer(spending, body, 400, answers)
            if not stopped(body):
                body = {"data": None, **body}
            return await answer(spending, body, 200, answers)
        return await answer(spending, body, 200, answers, self.max_response_bytes)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        """The websocket's context (HTTP requests make theirs in `serve`)."""
        return SocketContext(
            db=request.app.state.db,
            settings=self.settings,
            authorization=request.headers.get("authorization"),
            request=request,
            response=response,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """`connection_init` must carry `{"authorization": "Bearer <key>"}` (else 4403)."""
        await accept_connection(context)
        accepted: UnsetType = UNSET  # (Strawberry types UNSET as Any)
        return accepted

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from the pinned local assets, opening on a runnable example."""
        return page_response(self.settings, request.url.path)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        """A JSON object (or a batch, which Strawberry refuses); any other JSON is a 400."""
        try:
            parsed = parse_json_body(data)  # also refuses a key repeated within an object
        except BadRequest as exc:
            raise HTTPException(400, exc.message) from None
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "the body must be a JSON object")
        return parsed
