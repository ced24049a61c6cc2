"""RFC 9457 problem details: the one place a domain error becomes an HTTP response."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from app.domain.errors import DomainError

logger = logging.getLogger("app.errors")

PROBLEM_JSON = "application/problem+json"
CLIENT_CLOSED_REQUEST = 499


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": f"https://errors.assistants-api.dev/{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "errors": errors or [],
        **extra,
    }
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type=PROBLEM_JSON
    )


def domain_error_response(error: DomainError) -> Response:
    headers: dict[str, str] = {}
    if (challenge := error.challenge) is not None:  # 401 and 403 INSUFFICIENT_SCOPE (RFC 6750)
        headers["WWW-Authenticate"] = challenge
    if error.retry_after is not None:  # 429 RATE_LIMITED, 503 DATABASE_UNAVAILABLE
        headers["Retry-After"] = str(error.retry_after)
    errors = [
        {"path": ".".join(str(p) for p in f.path), "message": f.message} for f in error.fields
    ]
    return problem_response(
        error.status,
        error.code,
        error.title,
        error.message,
        errors,
        headers or None,
        **error.details,
    )


async def handle_domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return domain_error_response(exc)


_HTTP_CODES = {
    404: ("NOT_FOUND", "Not Found"),
    405: ("METHOD_NOT_ALLOWED", "Method Not Allowed"),
    400: ("BAD_REQUEST", "Bad Request"),
}


async def handle_http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("HTTP_ERROR", "HTTP Error"))
    return problem_response(
        exc.status_code, code, title, str(exc.detail), headers=dict(exc.headers or {}) or None
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Masks the failure; the id appears both in the answer and beside the traceback in the log.
    A client that went away while its body was read is no failure: a quiet 499 (nginx's
    "client closed request"), which nobody receives but the access log records."""
    if isinstance(exc, ClientDisconnect):
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    if isinstance(exc, DomainError):  # raised outside a route (the database lost at the end)
        return domain_error_response(exc)
    error_id = uuid.uuid4().hex
    logger.error(
        "unexpected error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc
    )
    return problem_response(
        500,
        "INTERNAL_SERVER_ERROR",
        "Internal Server Error",
        f"an unexpected error occurred (error id {error_id})",
        error_id=error_id,
    )
