"""RFC 9457 problem details: the one place an error becomes a REST answer, with the one table
of what each error class is over HTTP (status, title and headers)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from app.domain.audit import record_denial
from app.domain.errors import (
    BadRequest,
    DatabaseUnavailable,
    DomainError,
    Forbidden,
    InsufficientScope,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    QuotaExceeded,
    StorageFull,
    Unauthenticated,
    ValidationFailed,
)
from app.domain.idempotency import IdempotencyKeyInUse, IdempotencyKeyReused
from app.domain.refs import RefTaken
from app.errors import ErrorTable
from app.events import (
    EventsUnavailable,
    ShuttingDown,
    SlowConsumer,
    TooManyStreams,
    TooManyStreamsForKey,
    TooManyStreamsForOrg,
)
from app.http.content import no_store
from app.http.errors import RateLimited, UnsupportedMediaType

logger = logging.getLogger("app.errors")

PROBLEM_JSON = "application/problem+json"
CLIENT_CLOSED_REQUEST = 499


def _unauthenticated(error: DomainError) -> str:
    invalid = isinstance(error, Unauthenticated) and error.invalid_token
    return 'Bearer error="invalid_token"' if invalid else 'Bearer realm="assistants-api"'


def _insufficient_scope(error: DomainError) -> str:
    scope = error.scope if isinstance(error, InsufficientScope) else None
    if scope is None:
        return 'Bearer error="insufficient_scope"'
    return f'Bearer error="insufficient_scope", scope="{scope}"'


@dataclass(frozen=True, slots=True)
class Problem:
    """What an error class is over REST; `challenge` gives the `WWW-Authenticate` header of
    the answer (RFC 6750), when there is one."""

    status: int
    title: str
    challenge: Callable[[DomainError], str] | None = None


UNAVAILABLE = Problem(503, "Service Unavailable")
TOO_MANY = Problem(429, "Too Many Requests")

PROBLEMS: ErrorTable[Problem] = ErrorTable(
    {
        DomainError: Problem(500, "Internal Server Error"),
        BadRequest: Problem(400, "Bad Request"),
        ValidationFailed: Problem(400, "Validation Failed"),
        Unauthenticated: Problem(401, "Unauthorized", _unauthenticated),
        Forbidden: Problem(403, "Forbidden"),
        InsufficientScope: Problem(403, "Forbidden", _insufficient_scope),
        NotFound: Problem(404, "Not Found"),
        PreconditionFailed: Problem(412, "Precondition Failed"),
        RefTaken: Problem(409, "Conflict"),  # docs/bundles.md
        PayloadTooLarge: Problem(413, "Content Too Large"),
        QuotaExceeded: Problem(413, "Content Too Large"),  # ORG_STORAGE_QUOTA
        UnsupportedMediaType: Problem(415, "Unsupported Media Type"),
        RateLimited: TOO_MANY,
        DatabaseUnavailable: UNAVAILABLE,
        StorageFull: Problem(507, "Insufficient Storage"),
        SlowConsumer: UNAVAILABLE,  # the live events (app/events.py)
        ShuttingDown: UNAVAILABLE,
        TooManyStreams: UNAVAILABLE,  # the process's streams
        TooManyStreamsForKey: TOO_MANY,  # one key's share of them
        TooManyStreamsForOrg: TOO_MANY,  # one organisation's share
        EventsUnavailable: UNAVAILABLE,
        IdempotencyKeyReused: Problem(422, "Unprocessable Content"),  # docs/idempotency.md
        IdempotencyKeyInUse: Problem(409, "Conflict"),
    }
)


def problem_of(error: DomainError) -> Problem:
    return PROBLEMS.of(error)


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
    return no_store(
        Response(orjson.dumps(body), status_code=status, headers=headers, media_type=PROBLEM_JSON)
    )


def domain_error_response(error: DomainError) -> Response:
    problem = problem_of(error)
    headers: dict[str, str] = {}
    if problem.challenge is not None:  # 401 and 403 INSUFFICIENT_SCOPE (RFC 6750)
        headers["WWW-Authenticate"] = problem.challenge(error)
    if error.retry_after is not None:  # 429 RATE_LIMITED, 503 DATABASE_UNAVAILABLE
        headers["Retry-After"] = str(error.retry_after)
    errors = [
        {"path": ".".join(str(p) for p in f.path), "message": f.message} for f in error.fields
    ]
    return problem_response(
        problem.status,
        error.code,
        problem.title,
        error.message,
        errors,
        headers or None,
        **error.details,
    )


async def handle_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    if isinstance(exc, InsufficientScope):  # its audit entry, the request's transaction gone
        principal = getattr(request.state, "principal", None)
        await record_denial(request.app.state.db, exc, principal)
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
