"""The bytes of one GraphQL answer, counted by the executor as it writes it
(GRAPHQL_MAX_RESPONSE_BYTES; docs/graphql-bounds.md).

Stored data can make a small query's answer huge: an integration's `config` is a JSON value
of up to 64 KiB, 100 per assistant, and aliases repeat the same selection. The cost (list
items) does not see bytes, so the executor counts them as it completes each object: a
constant per selection (its keys and punctuation, worked out once per plan) plus the length of
each string leaf and the serialized size of each JSON leaf. It stops the operation
(`ResponseTooLarge`) as soon as the count passes the bound, so the answer is never built much
beyond it. Strings count their characters (a non-ASCII or escaped character may take a few
bytes more); the HTTP view checks the serialized answer against the same bound, so the bound
holds to the byte there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from graphql import (
    GraphQLBoolean,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLNamedType,
    GraphQLString,
    is_enum_type,
)

from app.errors import DomainError

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
KEY_OVERHEAD = 4  # `"key":` and a comma around a key's text
OBJECT_OVERHEAD = 2  # `{}` (and `[]` of a list)
ERROR_OVERHEAD = 96  # an error's `message`, `locations`, `path` and `extensions` around its text
DATETIME_BYTES = 29  # `"2026-01-31T12:00:00.000000Z"`

Measure = Callable[[Any], int]


class ResponseTooLarge(DomainError):
    """The answer would pass GRAPHQL_MAX_RESPONSE_BYTES: the operation is stopped, and its
    answer is this error alone (no `data`)."""

    code = "RESPONSE_TOO_LARGE"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            f"the answer passed {max_bytes} bytes, the most one GraphQL answer may hold; "
            "ask for less (fewer aliases or fields, smaller pages)"
        )
        self.max_bytes = max_bytes

    @property
    def details(self) -> dict[str, Any]:
        return {"max_bytes": self.max_bytes}


def stopped(body: dict[str, Any]) -> bool:
    """Whether an answer (or a websocket `next` payload) is that of an operation stopped as
    too large: its first error is RESPONSE_TOO_LARGE and it holds no data."""
    errors = body.get("errors")
    if not errors or body.get("data") is not None:
        return False
    return bool((errors[0].get("extensions") or {}).get("code") == ResponseTooLarge.code)


def json_size(value: Any) -> int:
    """The serialized size of a JSON value (a `JSON` scalar's: the big leaves)."""
    try:
        return len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return len(str(value)) + OBJECT_OVERHEAD


def value_size(value: Any) -> int:
    """The serialized size of any leaf value: exact for strings (ASCII), JSON values and
    booleans, a close estimate for numbers."""
    kind = type(value)
    if kind is str:
        return len(value) + 2
    if kind is bool or kind is int or value is None:
        return 5
    if kind is float:
        return 12
    return json_size(value)


def string_size(value: Any) -> int:
    """A string leaf's characters (its quotes are in the step's constant); null counts 4."""
    return 2 if value is None else len(value)


def leaf_size(named: GraphQLNamedType) -> tuple[int, Measure | None]:
    """How a leaf of this type counts: (a constant, the function that measures its value, or
    None when the constant is all)."""
    if named is GraphQLString or named is GraphQLID:
        return 2, string_size
    if named is GraphQLBoolean:
        return 5, None
    if named is GraphQLInt:
        return 4, None
    if named is GraphQLFloat:
        return 8, None
    if is_enum_type(named):
        names = getattr(named, "values", None) or {"": None}
        return max(len(name) for name in names) + 2, None
    if named.name == "DateTime":
        return DATETIME_BYTES, None
    return 0, value_size
