"""Domain errors: a code, an HTTP status, a message and the offending fields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import ValidationError

Path = tuple[str | int, ...]

READ_ONLY_KEYS = frozenset(
    {
        "id",
        "secret_key",
        "avatar_url",
        "deleted",
        "version",
        "integrations",
        "actions",
        "created_at",
        "updated_at",
        "error",
        "assistant_id",
        "position",
    }
)


@dataclass(frozen=True, slots=True)
class FieldError:
    path: Path
    message: str


class DomainError(Exception):
    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    graphql_code: ClassVar[str | None] = None  # when GraphQL names the case differently
    retry_after: int | None = None  # seconds: a `Retry-After` header on both transports

    def __init__(self, message: str, fields: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []

    @property
    def extension_code(self) -> str:
        return self.graphql_code or self.code

    @property
    def details(self) -> dict[str, Any]:
        """More members of the error, by their snake_case names (`required_scope`): REST puts
        them in the problem details, GraphQL in `extensions` (camelCase)."""
        return {}

    @property
    def challenge(self) -> str | None:
        """The `WWW-Authenticate` header of a REST answer (RFC 6750), when there is one."""
        return None


class BadRequest(DomainError):
    code, status, title = "BAD_REQUEST", 400, "Bad Request"


class ValidationFailed(DomainError):
    code, status, title = "VALIDATION_FAILED", 400, "Validation Failed"
    graphql_code = "BAD_USER_INPUT"
    more: int = 0  # offending fields beyond those reported


class Unauthenticated(DomainError):
    """No key (`invalid_token` false), or a key that is unknown, revoked or expired."""

    code, status, title = "UNAUTHENTICATED", 401, "Unauthorized"

    def __init__(self, message: str, *, invalid_token: bool = True) -> None:
        super().__init__(message)
        self.invalid_token = invalid_token

    @property
    def challenge(self) -> str:
        return (
            'Bearer error="invalid_token"'
            if self.invalid_token
            else 'Bearer realm="assistants-api"'
        )


class Forbidden(DomainError):
    code, status, title = "FORBIDDEN", 403, "Forbidden"


class InsufficientScope(DomainError):
    """The key lacks the scope an operation needs (`scope`), or holds it only for some
    assistants where the operation needs every one (`scope` None). Nothing was changed."""

    code, status, title = "INSUFFICIENT_SCOPE", 403, "Forbidden"
    graphql_code = "FORBIDDEN"

    def __init__(self, message: str, scope: str | None = None) -> None:
        super().__init__(message)
        self.scope = scope

    @property
    def details(self) -> dict[str, Any]:
        return {"required_scope": self.scope} if self.scope else {}

    @property
    def challenge(self) -> str:
        if self.scope is None:
            return 'Bearer error="insufficient_scope"'
        return f'Bearer error="insufficient_scope", scope="{self.scope}"'


class NotFound(DomainError):
    code, status, title = "NOT_FOUND", 404, "Not Found"


class PreconditionFailed(DomainError):
    code, status, title = "PRECONDITION_FAILED", 412, "Precondition Failed"
    graphql_code = "CONFLICT"


class PayloadTooLarge(DomainError):
    code, status, title = "PAYLOAD_TOO_LARGE", 413, "Content Too Large"


class UnsupportedMediaType(DomainError):
    code, status, title = "UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported Media Type"


class RateLimited(DomainError):
    code, status, title = "RATE_LIMITED", 429, "Too Many Requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def details(self) -> dict[str, Any]:
        """`retry_after` (seconds) also in the body: GraphQL `extensions.retryAfter`, which sets
        the `Retry-After` of the HTTP answer when a resolver refused."""
        return {"retry_after": self.retry_after}


class DatabaseUnavailable(DomainError):
    """The database could not be reached (or was lost mid-request) within the store's wait:
    nothing of the request is known to be stored; the client retries after `retry_after`."""

    code, status, title = "DATABASE_UNAVAILABLE", 503, "Service Unavailable"
    retry_after = 5


def _message(error: Any) -> str:
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        key = loc[-1] if loc else ""
        if key in READ_ONLY_KEYS:
            return f"'{key}' is read-only"
        return f"unknown field '{key}'"
    if error["type"] == "missing":
        return "field required"
    return str(error["msg"])


MAX_REPORTED_FIELDS = 50  # so a 100,000-item array of wrong items is not echoed back item by item


def validation_failed(exc: ValidationError, prefix: Path = ()) -> ValidationFailed:
    """Every offending field of a pydantic error (the first 50), by its snake_case path."""
    errors = exc.errors()
    fields = [
        FieldError(prefix + tuple(error["loc"]), _message(error))
        for error in errors[:MAX_REPORTED_FIELDS]
    ]
    return invalid_input(fields, more=len(errors) - len(fields))


def dotted(path: Path) -> str:
    return ".".join(str(p) for p in path) or "(body)"


def describe_fields(
    fields: list[FieldError], more: int = 0, spell: Callable[[Path], str] = dotted
) -> str:
    """`invalid input: a.b, c` naming each field as `spell` writes its path."""
    names = ", ".join(spell(f.path) for f in fields)
    return f"invalid input: {names}{f' and {more} more' if more else ''}"


def invalid_input(fields: list[FieldError], more: int = 0) -> ValidationFailed:
    """The error of a request with these offending fields, each named in the message."""
    error = ValidationFailed(describe_fields(fields, more), fields)
    error.more = more
    return error
