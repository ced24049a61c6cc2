"""Pure ASGI middleware: request ids and body size limits (checked before the body is read)."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.errors import PayloadTooLarge
from app.rest.errors import domain_error_response

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
AVATAR_UPLOAD = re.compile(r"^/orgs/[^/]+/avatars/?$")


class RequestIdMiddleware:
    """Echoes `X-Request-ID` (taken from the request when sane, made otherwise)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """413 for a body over the limit: at once from Content-Length, else while it streams in."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_avatar_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_avatar_bytes = max_avatar_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_avatar_bytes if AVATAR_UPLOAD.match(scope["path"]) else self.max_bytes
        error = PayloadTooLarge(f"the body may be at most {limit} bytes")
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await domain_error_response(error)(scope, receive, send)
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
