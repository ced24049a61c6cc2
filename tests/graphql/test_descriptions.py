"""Docs in the schema: every type, field, argument, enum value and input field has a description,
so GraphiQL's documentation explorer explains the API on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    build_client_schema,
    build_schema,
    specified_directives,
)

from app.graphql.schema import schema

SDL = Path(__file__).resolve().parents[2] / "schema.graphql"
BUILT_IN_SCALARS = {"String", "Boolean", "Int", "Float", "ID"}


def described(thing: object) -> bool:
    return bool((getattr(thing, "description", None) or "").strip())


def undocumented_arguments(owner: str, args: dict[str, GraphQLArgument]) -> list[str]:
    return [f"argument {owner}({name})" for name, arg in args.items() if not described(arg)]


def undocumented_members(name: str, named: GraphQLNamedType) -> list[str]:
    missing: list[str] = []
    if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
        for field_name, field in named.fields.items():
            if not described(field):
                missing.append(f"field {name}.{field_name}")
            missing += undocumented_arguments(f"{name}.{field_name}", field.args)
    elif isinstance(named, GraphQLInputObjectType):
        missing += [
            f"input field {name}.{field_name}"
            for field_name, field in named.fields.items()
            if not described(field)
        ]
    elif isinstance(named, GraphQLEnumType):
        missing += [
            f"enum value {name}.{value_name}"
            for value_name, value in named.values.items()
            if not described(value)
        ]
    return missing


def undocumented(graphql_schema: GraphQLSchema) -> list[str]:
    """Everything without a description, built-in scalars and introspection types aside."""
    missing: list[str] = []
    for name, named in sorted(graphql_schema.type_map.items()):
        if name.startswith("__") or name in BUILT_IN_SCALARS:
            continue
        if not described(named):
            missing.append(f"type {name}")
        missing += undocumented_members(name, named)
    built_in = {directive.name for directive in specified_directives}
    for directive in graphql_schema.directives:
        if directive.name not in built_in:
            if not described(directive):
                missing.append(f"directive @{directive.name}")
            missing += undocumented_arguments(f"@{directive.name}", directive.args)
    return missing


def introspected() -> GraphQLSchema:
    """The schema as a client sees it, through the introspection query."""
    return build_client_schema(schema.introspect())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "load",
    [introspected, lambda: build_schema(SDL.read_text())],
    ids=["introspection", "schema.graphql"],
)
def test_everything_in_the_schema_has_a_description(load):
    missing = undocumented(load())
    assert missing == [], "without a description:\n  " + "\n  ".join(missing)


def test_the_check_names_everything_undocumented():
    bare = build_schema(
        '''
        directive @tag(name: String) on FIELD_DEFINITION
        """Documented."""
        type Query {
          """Documented."""
          ok(
            """Documented."""
            a: Int
            b: Int
          ): Int
          plain(c: Kind): Thing
        }
        type Thing { x: Int }
        enum Kind { ONE """Documented.""" TWO }
        """Documented."""
        input Filter { """   """ y: Int }
        scalar When
        '''
    )
    assert undocumented(bare) == [
        "input field Filter.y",
        "type Kind",
        "enum value Kind.ONE",
        "argument Query.ok(b)",
        "field Query.plain",
        "argument Query.plain(c)",
        "type Thing",
        "field Thing.x",
        "type When",
        "directive @tag",
        "argument @tag(name)",
    ]
