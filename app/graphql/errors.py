"""Every GraphQL error gets `extensions.code`; domain errors keep theirs (or what the one table
below names them over GraphQL), the rest are masked."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.utils.str_converters import to_camel_case

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
    describe_fields,
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
from app.graphql.answer_size import ResponseTooLarge
from app.graphql.persisted import (
    PersistedQueryNotFound,
    PersistedQueryNotSupported,
    TrustedDocumentRequired,
)
from app.http.errors import RateLimited, UnsupportedMediaType

logger = logging.getLogger("app.errors")


@dataclass(frozen=True, slots=True)
class Coded:
    """What an error class is over GraphQL: its `extensions.code` (None: the error's own code)
    and the HTTP status of an answer it ends before anything runs (a refusal of the request
    itself, a persisted document's miss: 200, as Apollo's clients expect), or that closes a
    websocket (503: try again later)."""

    code: str | None
    status: int


UNAVAILABLE = Coded(None, 503)

CODES: ErrorTable[Coded] = ErrorTable(
    {
        DomainError: Coded(None, 500),
        BadRequest: Coded(None, 400),
        ValidationFailed: Coded("BAD_USER_INPUT", 400),
        Unauthenticated: Coded(None, 401),
        Forbidden: Coded(None, 403),
        InsufficientScope: Coded("FORBIDDEN", 403),
        NotFound: Coded(None, 404),
        PreconditionFailed: Coded("CONFLICT", 412),
        RefTaken: Coded(None, 409),  # a mutation's error: its answer stays 200
        PayloadTooLarge: Coded(None, 413),
        QuotaExceeded: Coded(None, 413),  # a mutation's error: its answer stays 200
        UnsupportedMediaType: Coded(None, 415),
        RateLimited: Coded(None, 429),
        DatabaseUnavailable: UNAVAILABLE,
        StorageFull: Coded(None, 507),  # an answer that ran stays 200 (as other errors)
        PersistedQueryNotFound: Coded(None, 200),
        PersistedQueryNotSupported: Coded(None, 200),
        TrustedDocumentRequired: Coded(None, 400),
        ResponseTooLarge: Coded(None, 200),  # stopped as it ran: no `data` (docs/graphql-bounds.md)
        SlowConsumer: UNAVAILABLE,  # the live events (app/events.py)
        ShuttingDown: UNAVAILABLE,
        TooManyStreams: UNAVAILABLE,
        TooManyStreamsForKey: Coded(None, 429),
        TooManyStreamsForOrg: Coded(None, 429),
        EventsUnavailable: UNAVAILABLE,
        IdempotencyKeyReused: Coded(None, 422),  # refused before the request runs
        IdempotencyKeyInUse: Coded(None, 409),
    }
)

# The codes that change the status of an answer that ran (200 otherwise), with its header.
ANSWER_STATUS = {DatabaseUnavailable.code: 503, RateLimited.code: 429}


def extension_code(error: DomainError) -> str:
    return CODES.of(error).code or error.code


def http_status(error: DomainError) -> int:
    return CODES.of(error).status


def _field_path(path: tuple[str | int, ...]) -> list[str | int]:
    return [to_camel_case(p) if isinstance(p, str) else p for p in path]


def _graphql_path(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in _field_path(path))


def domain_message(error: DomainError) -> str:
    """The error's message, with the fields a validation message lists spelt as in GraphQL."""
    if isinstance(error, ValidationFailed) and error.message == describe_fields(
        error.fields, error.more
    ):
        return describe_fields(error.fields, error.more, _graphql_path)
    return error.message


def domain_extensions(error: DomainError) -> dict[str, Any]:
    extensions: dict[str, Any] = {"code": extension_code(error)}
    for name, value in error.details.items():  # e.g. requiredScope
        extensions[to_camel_case(name)] = value
    if error.fields:
        extensions["fields"] = [
            {"path": _field_path(f.path), "message": f.message} for f in error.fields
        ]
    return extensions


_VARIABLE_ERROR = re.compile(r"^Variable '\$[^']+' has invalid value(?: at ([^:]+))?: (.+)$", re.S)
_SEGMENT = re.compile(r"\.([_A-Za-z][_0-9A-Za-z]*)|\[(\d+)\]")
_NAMED_KEY = re.compile(r"(?:unknown|required) field '([^']+)'")


def variable_fields(message: str) -> list[dict[str, Any]]:
    """The offending input field of a variable that failed GraphQL coercion (wrong type,
    unknown key, bad enum value), as `extensions.fields` (empty when the message is another)."""
    match = _VARIABLE_ERROR.match(message)
    if match is None:
        return []
    at, detail = match.groups()
    path: list[str | int] = [name or int(index) for name, index in _SEGMENT.findall(at or "")]
    named = _NAMED_KEY.search(detail)
    if named:
        path.append(named.group(1))
    return [{"path": path, "message": detail}]


def unavailable_status(errors: list[dict[str, Any]]) -> tuple[int, dict[str, str]] | None:
    """HTTP 503 and `Retry-After` when an error of the answer is DATABASE_UNAVAILABLE (see
    docs/production.md: the same status and header as over REST), else None."""
    for error in errors:
        if (error.get("extensions") or {}).get("code") == DatabaseUnavailable.code:
            return ANSWER_STATUS[DatabaseUnavailable.code], {
                "Retry-After": str(DatabaseUnavailable.retry_after)
            }
    return None


def mask_unexpected(error: GraphQLError) -> None:
    """Log the traceback under an id; tell the client only the id."""
    error_id = uuid.uuid4().hex
    original = error.original_error
    logger.error(
        "unexpected error %s in GraphQL field %s",
        error_id,
        error.path,
        exc_info=(type(original), original, original.__traceback__) if original else None,
    )
    error.message = f"Internal server error (error id {error_id})"
    error.extensions = {"code": "INTERNAL_SERVER_ERROR", "errorId": error_id}


def code_error(error: GraphQLError, phase: str) -> None:
    """Give one error its `extensions.code`, by what raised it and the phase it was raised in
    ("parse", "validation" or "execution"); unexpected errors are masked and logged. The one
    table for every GraphQL path (HTTP engine, websocket)."""
    original = error.original_error
    if isinstance(original, DomainError):
        error.message = domain_message(original)
        error.extensions = domain_extensions(original)
    elif phase == "parse":
        error.extensions = {"code": "GRAPHQL_PARSE_FAILED", **(error.extensions or {})}
    elif phase == "validation":
        error.extensions = {"code": "GRAPHQL_VALIDATION_FAILED"}
    elif original is None or isinstance(original, GraphQLError):
        fields = variable_fields(error.message)
        extensions = {"code": "BAD_USER_INPUT", **(error.extensions or {})}
        error.extensions = {**extensions, "fields": fields} if fields else extensions
    else:
        mask_unexpected(error)


class ErrorCodes(SchemaExtension):
    """Gives each error its code once the operation is over (the websocket path, which runs
    through Strawberry's `Schema.subscribe`/`execute`)."""

    def __init__(self) -> None:
        self._phase = "execution"

    def on_parse(self) -> Iterator[None]:
        yield
        if self.execution_context.graphql_document is None:
            self._phase = "parse"

    def on_validate(self) -> Iterator[None]:
        yield
        if self.execution_context.pre_execution_errors:
            self._phase = "validation"

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in (result.errors if result else None) or []:
            self._annotate(error)

    def _annotate(self, error: GraphQLError) -> None:
        code_error(error, self._phase)
