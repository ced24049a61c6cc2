"""The base of every error the app raises on purpose: a code, a message and the offending fields,
in no transport's words (each transport maps them in one table: app/rest/errors.py,
app/graphql/errors.py). The errors the store raises itself live here too, below the store
and the domain, so that the store never imports the domain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Generic, TypeVar

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


class StorageFull(DomainError):
    """A write that could not be stored: the disk (or the database server's) is full. Nothing
    of it was stored; reads keep working, and writes work again once space is freed."""

    code = "STORAGE_FULL"


class ErrorTable(Generic[T]):
    """A transport's one table of errors: a row per error class (`rows`, as declared); a class
    without a row takes its nearest ancestor's, looked up once per class."""

    __slots__ = ("_resolved", "rows")

    def __init__(self, rows: dict[type[DomainError], T]) -> None:
        if DomainError not in rows:
            raise ValueError("an error table has a row for DomainError, the fallback")
        self.rows: Mapping[type[DomainError], T] = MappingProxyType(rows)
        self._resolved = dict(rows)

    def of(self, error: DomainError) -> T:
        kind = type(error)
        found = self._resolved.get(kind)
        if found is None:
            ancestor = next(c for c in kind.__mro__ if c in self.rows)
            found = self._resolved[kind] = self.rows[ancestor]
        return found
