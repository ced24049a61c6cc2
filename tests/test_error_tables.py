"""Each transport maps the errors in one table (`PROBLEMS` in app/rest/errors.py, `CODES` in
app/graphql/errors.py); no error class carries a transport's words (status, title, challenge,
GraphQL code). What every answer says is pinned by the behaviour tests; these pin the tables."""

from __future__ import annotations

import orjson
import pytest

import app.main  # noqa: F401  (imports every module that declares an error class)
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
from app.errors import ErrorTable
from app.events import (
    EventsUnavailable,
    ShuttingDown,
    SlowConsumer,
    TooManyStreams,
    TooManyStreamsForKey,
)
from app.graphql.answer_size import ResponseTooLarge
from app.graphql.errors import CODES, extension_code, http_status
from app.graphql.persisted import (
    PersistedQueryNotFound,
    PersistedQueryNotSupported,
    TrustedDocumentRequired,
)
from app.http.errors import RateLimited, UnsupportedMediaType
from app.rest.errors import PROBLEMS, domain_error_response

TRANSPORT_WORDS = {"status", "title", "challenge", "graphql_code", "extension_code", "headers"}
GRAPHQL_ONLY = {
    PersistedQueryNotFound,
    PersistedQueryNotSupported,
    TrustedDocumentRequired,
    ResponseTooLarge,
}


def declared_errors() -> list[type[DomainError]]:
    """Every subclass of DomainError the app declares (not the tests)."""
    found: set[type[DomainError]] = set()
    todo: list[type[DomainError]] = [DomainError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("app.") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def test_the_app_declares_the_errors_we_know():
    names = {c.__name__ for c in declared_errors()}
    assert {"NotFound", "RateLimited", "TooManyStreamsForKey", "PersistedQueryNotFound"} <= names
    assert len(names) >= 19


def test_no_error_class_carries_transport_words():
    found = [
        f"{c.__module__}.{c.__qualname__}.{name}"
        for c in [DomainError, *declared_errors()]
        for name in vars(c)
        if name in TRANSPORT_WORDS
    ]
    assert found == []


def test_every_error_class_has_its_own_row_in_each_table():
    """A new error class fails here until both transports say what it is (a subclass that
    would only inherit a row says so by a row of its own)."""
    errors = declared_errors()
    assert [c.__name__ for c in errors if c not in CODES.rows] == []
    missing = [c.__name__ for c in errors if c not in PROBLEMS.rows and c not in GRAPHQL_ONLY]
    assert missing == []


# What each error class answered when the classes carried their status and title themselves:
# (REST status, title; GraphQL extensions.code, HTTP status of an answer the error ends).
BEFORE = {
    DomainError: (500, "Internal Server Error", "INTERNAL_SERVER_ERROR", 500),
    BadRequest: (400, "Bad Request", "BAD_REQUEST", 400),
    ValidationFailed: (400, "Validation Failed", "BAD_USER_INPUT", 400),
    Unauthenticated: (401, "Unauthorized", "UNAUTHENTICATED", 401),
    Forbidden: (403, "Forbidden", "FORBIDDEN", 403),
    InsufficientScope: (403, "Forbidden", "FORBIDDEN", 403),
    NotFound: (404, "Not Found", "NOT_FOUND", 404),
    PreconditionFailed: (412, "Precondition Failed", "CONFLICT", 412),
    PayloadTooLarge: (413, "Content Too Large", "PAYLOAD_TOO_LARGE", 413),
    QuotaExceeded: (413, "Content Too Large", "QUOTA_EXCEEDED", 413),
    UnsupportedMediaType: (415, "Unsupported Media Type", "UNSUPPORTED_MEDIA_TYPE", 415),
    RateLimited: (429, "Too Many Requests", "RATE_LIMITED", 429),
    DatabaseUnavailable: (503, "Service Unavailable", "DATABASE_UNAVAILABLE", 503),
    StorageFull: (507, "Insufficient Storage", "STORAGE_FULL", 507),
    SlowConsumer: (503, "Service Unavailable", "SLOW_CONSUMER", 503),
    ShuttingDown: (503, "Service Unavailable", "SHUTTING_DOWN", 503),
    TooManyStreams: (503, "Service Unavailable", "TOO_MANY_STREAMS", 503),
    TooManyStreamsForKey: (429, "Too Many Requests", "TOO_MANY_STREAMS", 429),
    EventsUnavailable: (503, "Service Unavailable", "EVENTS_UNAVAILABLE", 503),
}
GRAPHQL_BEFORE = {
    PersistedQueryNotFound: ("PERSISTED_QUERY_NOT_FOUND", 200),
    PersistedQueryNotSupported: ("PERSISTED_QUERY_NOT_SUPPORTED", 200),
    TrustedDocumentRequired: ("TRUSTED_DOCUMENT_REQUIRED", 400),
}


def an_error(kind: type[DomainError]) -> DomainError:
    if issubclass(kind, RateLimited):
        return kind("boom", 7)
    if issubclass(kind, QuotaExceeded):
        return kind("boom", 1024)
    return kind("boom")


@pytest.mark.parametrize("kind", list(BEFORE), ids=lambda k: k.__name__)
def test_each_transport_answers_as_before(kind: type[DomainError]):
    status, title, graphql_code, graphql_status = BEFORE[kind]
    error = an_error(kind)
    response = domain_error_response(error)
    body = orjson.loads(bytes(response.body))
    assert (response.status_code, body["status"], body["title"]) == (status, status, title)
    assert body["code"] == error.code
    assert (extension_code(error), http_status(error)) == (graphql_code, graphql_status)


@pytest.mark.parametrize("kind", list(GRAPHQL_BEFORE), ids=lambda k: k.__name__)
def test_graphql_only_errors_answer_as_before(kind: type[DomainError]):
    error = kind("boom")
    assert (extension_code(error), http_status(error)) == GRAPHQL_BEFORE[kind]


def test_a_class_without_a_row_takes_its_nearest_ancestors():
    class Vanished(NotFound):
        pass

    class Throttled(RateLimited):
        code = "THROTTLED"

    assert PROBLEMS.of(Vanished("gone")) is PROBLEMS.rows[NotFound]
    assert CODES.of(Vanished("gone")) is CODES.rows[NotFound]
    response = domain_error_response(Throttled("slow down", 3))
    assert (response.status_code, response.headers["retry-after"]) == (429, "3")
    assert (extension_code(Throttled("slow down", 3)), http_status(Throttled("x", 1))) == (
        "THROTTLED",
        429,
    )
    assert Vanished not in PROBLEMS.rows  # the declared rows stay as declared
    assert Throttled not in CODES.rows


def test_a_table_needs_the_fallback_row():
    with pytest.raises(ValueError, match="DomainError"):
        ErrorTable({NotFound: 404})
