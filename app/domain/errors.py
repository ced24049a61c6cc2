"""Domain errors: a code, a message and the offending fields, in no transport's words (each
transport maps them in one table: app/rest/errors.py, app/graphql/errors.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from app.errors import DatabaseUnavailable, DomainError, FieldError, NotFound, Path, StorageFull

__all__ = [  # the base and the store's own, declared below the store (app/errors.py)
    "BadRequest",
    "DatabaseUnavailable",
    "DomainError",
    "FieldError",
    "Forbidden",
    "InsufficientScope",
    "NotFound",
    "Path",
    "PayloadTooLarge",
    "PreconditionFailed",
    "QuotaExceeded",
    "StorageFull",
    "Unauthenticated",
    "ValidationFailed",
    "describe_fields",
    "dotted",
    "invalid_input",
    "validation_failed",
]

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


class BadRequest(DomainError):
    code = "BAD_REQUEST"


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"
    more: int = 0  # offending fields beyond those reported


class Unauthenticated(DomainError):
    """No key (`invalid_token` false), or a key that is unknown, revoked or expired."""

    code = "UNAUTHENTICATED"

    def __init__(self, message: str, *, invalid_token: bool = True) -> None:
        super().__init__(message)
        self.invalid_token = invalid_token


class Forbidden(DomainError):
    code = "FORBIDDEN"


class InsufficientScope(DomainError):
    """The key lacks the scope an operation needs (`scope`), or holds it only for some
    assistants where the operation needs every one (`scope` None). Nothing was changed."""

    code = "INSUFFICIENT_SCOPE"

    def __init__(
        self,
        message: str,
        scope: str | None = None,
        *,
        use_case: str | None = None,
        access: Any = None,
        resource_ids: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.scope = scope
        # for the refusal's audit entry (app/domain/audit.py): what was refused, to whom
        self.use_case = use_case
        self.access = access
        self.resource_ids = resource_ids or {}
        self.audited = False

    @property
    def details(self) -> dict[str, Any]:
        return {"required_scope": self.scope} if self.scope else {}


class PreconditionFailed(DomainError):
    code = "PRECONDITION_FAILED"


class PayloadTooLarge(DomainError):
    """A body, or an avatar (the use case's own limit), over its size limit."""

    code = "PAYLOAD_TOO_LARGE"


class QuotaExceeded(DomainError):
    """A write that would take its organisation's stored bytes past ORG_STORAGE_QUOTA
    (app/domain/storage.py); nothing of it is stored."""

    code = "QUOTA_EXCEEDED"

    def __init__(self, message: str, quota: int) -> None:
        super().__init__(message)
        self.quota = quota

    @property
    def details(self) -> dict[str, Any]:
        return {"quota_bytes": self.quota}


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
