"""The Strawberry ASGI view: context per request, JSON error bodies for HTTP-level failures."""

from __future__ import annotations

from typing import Any

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from app.domain.errors import BadRequest, DomainError
from app.domain.json_input import parse_json_body
from app.graphql.context import Context
from app.graphql.engine import Engine, RequestError
from app.graphql.ide import page_response
from app.graphql.subscriptions import SocketContext, TransportWSHandler, accept_connection
from app.settings import Settings


def graphql_error_response(status: int, code: str, message: str) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status)


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

    def __init__(self, schema: Any, *, settings: Settings) -> None:
        super().__init__(
            schema,
            multipart_uploads_enabled=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.settings = settings
        self.engine = Engine(schema, settings)
        self.max_subscriptions_per_connection = settings.graphql_max_subscriptions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method == "POST" and media_type != "application/json":
            # No form, multipart or text/plain POST (what a cross-site form can send) executes.
            message = f"send the request as application/json, not '{media_type or 'nothing'}'"
            response = graphql_error_response(415, "UNSUPPORTED_MEDIA_TYPE", message)
            await response(scope, receive, send)
            return
        try:
            response = await self.serve(request)
        except HTTPException as exc:
            code = "BAD_REQUEST" if exc.status_code == 400 else "METHOD_NOT_ALLOWED"
            if exc.status_code == 404:
                code = "NOT_FOUND"
            response = graphql_error_response(exc.status_code, code, exc.reason)
        except RequestError as exc:
            response = graphql_error_response(400, "BAD_REQUEST", exc.message)
        except DomainError as exc:  # raised while the body streams in (413)
            response = graphql_error_response(exc.status, exc.code, exc.message)
        finally:
            context: Context | None = getattr(request.state, "graphql_context", None)
            if context is not None:
                await context.loaders.close()
        await response(scope, receive, send)

    async def serve(self, request: Request) -> Response:
        """One GraphQL request over HTTP through the engine (GraphiQL for a browser's GET)."""
        if request.method == "GET":
            params = request.query_params
            if params.get("query") is None and any(
                accepted in request.headers.get("accept", "") for accepted in ("text/html", "*/*")
            ):
                return await self.render_graphql_ide(request)
            data: Any = self.parse_query_params(params)
        else:
            data = self.parse_json(await request.body())
        if isinstance(data, list):
            raise HTTPException(400, "Batching is not enabled")
        query, variables = data.get("query"), data.get("variables")
        operation_name = data.get("operationName")
        if not isinstance(query, str) or not query:
            if query is not None and not isinstance(query, str):
                raise HTTPException(400, "The GraphQL operation's `query` must be a string")
            raise HTTPException(400, "No GraphQL query found in the request")
        if not isinstance(variables, dict | None):
            raise HTTPException(400, "The GraphQL operation's `variables` must be an object")
        if not isinstance(operation_name, str | None):
            raise HTTPException(400, "The GraphQL `operationName` must be a string")
        context = Context(
            db=request.app.state.db,
            settings=self.settings,
            authorization=request.headers.get("authorization"),
            request=request,
        )
        request.state.graphql_context = context  # its loaders are closed when the request ends
        body = await self.engine.run(query, variables, operation_name, context, request.method)
        return Response(orjson.dumps(body), media_type="application/json")

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
        return UNSET

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
