"""Records: plain slotted objects with the models' attribute names, one class per table.

A record is what a statement reads (no ORM identity map, no change tracking): the domain, the
document builders and the GraphQL types read its attributes like those of a model row, and the
domain sets the new values on it after its UPDATE. The classes are derived from the SQLModel
tables, so the shape is declared once; for a type checker each record class is its model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from app.models import (
    Action,
    ApiKey,
    Assistant,
    AssistantEnvironment,
    AssistantRelease,
    AssistantRevision,
    AuditEntry,
    AuditPending,
    Avatar,
    Integration,
    Webhook,
    WebhookDelivery,
)

if TYPE_CHECKING:
    from sqlmodel import SQLModel


R = TypeVar("R")


class Record:
    """Base of the record classes: attributes only (their names in `__slots__`)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return as_dict(self) == as_dict(other)

    # mypy ignore below: records are mutable, never hashed
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in as_dict(self).items())
        return f"{type(self).__name__}({shown})"


def as_dict(record: Any) -> dict[str, Any]:
    """{attribute: value} of a record (the attributes it holds)."""
    return {name: getattr(record, name) for name in record.__slots__ if hasattr(record, name)}


def replaced(record: R, **changes: Any) -> R:
    """A copy of a record with some attributes changed (the record itself stays as it is)."""
    twin = object.__new__(type(record))
    for name, value in {**as_dict(record), **changes}.items():
        setattr(twin, name, value)
    return twin


def record_class(name: str, attributes: Iterable[str]) -> type[Record]:
    """A Record class with these attributes."""
    return type(name, (Record,), {"__slots__": tuple(attributes), "__module__": __name__})


def table_record(model: type[SQLModel], name: str) -> type[Record]:
    """The record class of a table: one attribute per column."""
    # mypy ignore below: SQLModel's metaclass sets __table__
    return record_class(name, (c.key for c in model.__table__.c))  # type: ignore[attr-defined]


if TYPE_CHECKING:
    AssistantRecord = Assistant
    IntegrationRecord = Integration
    ActionRecord = Action
    RevisionRecord = AssistantRevision
    ApiKeyRecord = ApiKey
    AvatarRecord = Avatar
    ReleaseRecord = AssistantRelease
    EnvironmentRecord = AssistantEnvironment
    WebhookRecord = Webhook
    WebhookDeliveryRecord = WebhookDelivery
    AuditRecord = AuditEntry
    PendingRecord = AuditPending
else:
    AssistantRecord = table_record(Assistant, "AssistantRecord")
    IntegrationRecord = table_record(Integration, "IntegrationRecord")
    ActionRecord = table_record(Action, "ActionRecord")
    RevisionRecord = table_record(AssistantRevision, "RevisionRecord")
    ApiKeyRecord = table_record(ApiKey, "ApiKeyRecord")
    AvatarRecord = table_record(Avatar, "AvatarRecord")
    ReleaseRecord = table_record(AssistantRelease, "ReleaseRecord")
    EnvironmentRecord = table_record(AssistantEnvironment, "EnvironmentRecord")
    WebhookRecord = table_record(Webhook, "WebhookRecord")
    WebhookDeliveryRecord = table_record(WebhookDelivery, "WebhookDeliveryRecord")
    AuditRecord = table_record(AuditEntry, "AuditRecord")
    PendingRecord = table_record(AuditPending, "PendingRecord")
