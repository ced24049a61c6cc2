"""The `DateTime` scalar (RFC 3339 in UTC with a `Z`) and the `JSON` scalar: Strawberry's, with
its nesting bounded, for variables and for literals in the document alike;
the depth is measured without recursion before anything walks the value."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry
from graphql import GraphQLError, ListValueNode, ObjectValueNode, ValueNode
from graphql.utilities import value_from_ast_untyped
from strawberry.scalars import JSON

from app.domain.documents import rfc3339
from app.domain.json_input import MAX_JSON_DEPTH, TOO_DEEP, too_deep

ECMA_404 = (
    "https://ecma-international.org/wp-content/uploads/ECMA-404_2nd_edition_december_2017.pdf"
)


def _parse_datetime(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_json(value: Any) -> Any:
    if too_deep(value):
        raise GraphQLError(f"the JSON value {TOO_DEEP}")
    return value


def _literal_too_deep(node: ValueNode) -> bool:
    stack: list[tuple[ValueNode, int]] = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, ObjectValueNode):
            children = [field.value for field in item.fields]
        elif isinstance(item, ListValueNode):
            children = list(item.values)
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _parse_json_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    if _literal_too_deep(node):
        raise GraphQLError(f"the JSON value {TOO_DEEP}", node)
    return value_from_ast_untyped(node, variables)


SCALAR_MAP: dict[object, Any] = {
    datetime: strawberry.scalar(
        name="DateTime",
        description="An instant, RFC 3339 in UTC with a `Z`, e.g. `2026-01-31T12:00:00.000000Z`.",
        serialize=rfc3339,
        parse_value=_parse_datetime,
    ),
    JSON: strawberry.scalar(
        name="JSON",
        description=(
            f"The `JSON` scalar type represents JSON values as specified by [ECMA-404]({ECMA_404})."
        ),
        specified_by_url=ECMA_404,
        serialize=lambda v: v,
        parse_value=_parse_json,
        parse_literal=_parse_json_literal,
    ),
}
