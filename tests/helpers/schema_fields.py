"""The root fields of the GraphQL schema, with the functions that resolve them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from app.graphql.schema import schema


def root_fields() -> Iterator[tuple[str, str, Callable[..., Any]]]:
    """(kind, Python name, resolver function) of every root field: Query, Mutation, Subscription."""
    for kind, definition in (
        ("Query", schema.query),
        ("Mutation", schema.mutation),
        ("Subscription", schema.subscription),
    ):
        for field in definition.__strawberry_definition__.fields:  # type: ignore[union-attr]
            assert field.base_resolver is not None, f"{kind}.{field.name} has no resolver"
            yield kind, field.name, field.base_resolver.wrapped_func
