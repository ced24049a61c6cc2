"""`assistants(filter, orderBy)`: the input types and their translation to the domain's
(docs/finding-assistants.md)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from app.domain.assistant_find import DEFAULT_ORDER, NO_FILTER, AssistantFilter, Order


@strawberry.enum(description="What `assistants` sorts by; ties are in the order of creation.")
class AssistantOrderField(Enum):
    CREATED_AT = strawberry.enum_value("created_at", description="When it was created.")
    UPDATED_AT = strawberry.enum_value("updated_at", description="When it last changed.")
    NAME = strawberry.enum_value(
        "name", description="Its name's first 256 characters (code point order on SQLite)."
    )


SORTED_BY = {
    AssistantOrderField.CREATED_AT: "created_at",
    AssistantOrderField.UPDATED_AT: "updated_at",
    AssistantOrderField.NAME: "name",
}


@strawberry.enum(description="A direction of sorting.")
class OrderDirection(Enum):
    ASC = strawberry.enum_value("asc", description="Smallest first.")
    DESC = strawberry.enum_value("desc", description="Largest first.")


@strawberry.input(
    name="AssistantOrder",
    description="The order of `assistants`; without it, the oldest first.",
)
class AssistantOrderInput:
    field: AssistantOrderField = strawberry.field(description="What to sort by.")
    direction: OrderDirection = strawberry.field(
        default=OrderDirection.ASC, description="ASC (the default) or DESC."
    )


@strawberry.input(
    name="AssistantFilter",
    description="What the assistants must match; every field set must match (null: any).",
)
class AssistantFilterInput:
    search: str | None = strawberry.field(
        default=None,
        description=(
            "A text the name or the ref holds, whatever the case (an empty text matches all)."
        ),
    )
    enabled: bool | None = strawberry.field(default=None, description="Enabled or not.")
    language: str | None = strawberry.field(
        default=None, description="Exactly this `config.language`."
    )
    model: str | None = strawberry.field(default=None, description="Exactly this `config.model`.")
    ref: str | None = strawberry.field(default=None, description="Exactly this `ref`.")
    updated_since: datetime | None = strawberry.field(
        default=None, description="Changed at or after this instant (`updatedAt` ≥ it)."
    )


def filter_of(given: AssistantFilterInput | None) -> AssistantFilter:
    if given is None:
        return NO_FILTER
    return AssistantFilter(
        search=given.search,
        enabled=given.enabled,
        language=given.language,
        model=given.model,
        ref=given.ref,
        updated_since=given.updated_since,
    )


def order_of(given: AssistantOrderInput | None) -> Order:
    if given is None:
        return DEFAULT_ORDER
    return Order(SORTED_BY[given.field], given.direction is OrderDirection.DESC)
