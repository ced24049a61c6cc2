"""The base of every error the app raises on purpose: a code, a message and the offending fields,
in no transport's words (each transport maps them in one table: app/rest/errors.py,
app/graphql/errors.py). The two errors the store raises itself live here too, below the store
and the domain, so that the store never imports the domain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

Path = tuple[str | int, ...]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FieldError:
    path: Path
    message: str


class DomainError(Exception):
    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    retry_after: int | None = None  # seconds the client waits before it tries again

    def __init__(self, message: str, fields: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []

    @property
    def details(self) -> dict[str, Any]:
        """More members of the error, by their snake_case names (`required_scope`): REST puts
        them in the problem details, GraphQL in `extensions` (camelCase)."""
        return {}


class NotFound(DomainError):
    code = "NOT_FOUND"


class DatabaseUnavailable(DomainError):
    """The database could not be reached (or was lost mid-request) within the store's wait:
    nothing of the request is known to be stored; the client retries after `retry_after`."""

    code = "DATABASE_UNAVAILABLE"
    retry_after = 5


def by_class(table: dict[type[DomainError], T], error: DomainError) -> T:
    """What a transport's table says of this error: the entry of its class, else of its nearest
    ancestor (then kept under the class, so each class walks its ancestry once)."""
    kind = type(error)
    found = table.get(kind)
    if found is None:
        ancestor = next(c for c in kind.__mro__ if c in table)  # DomainError is in every table
        found = table[kind] = table[ancestor]
    return found
