"""The assistant's shape is declared once (app/domain/shape.py): every leaf of the declaration
is a column of the table, a field of the SDL, of the patch model and of the GraphQL input,
a property of the OpenAPI document, and a value of a REST answer, a GraphQL answer, a snapshot
and the first revision's changes; and a leaf added to a copy of the declaration reaches the
REST document, the GraphQL type and `from_row`, and the OpenAPI model built from that copy."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    build_schema,
)
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from strawberry.utils.str_converters import to_camel_case

from app.domain.assistant_input import AssistantPatch, ConfigPatch
from app.domain.documents import config_document
from app.domain.shape import (
    CONFIG,
    LEAVES,
    REQUIRED,
    TOP_LEAVES,
    Group,
    Leaf,
    compile_builder,
    dict_group,
    document_leaf,
    groups_of,
    leaves_of,
)
from app.graphql.types import ENUMS, Config, output_group, output_leaf, output_type
from app.models import Assistant
from app.openapi import Document, document_model

SDL = build_schema((Path(__file__).resolve().parent.parent / "schema.graphql").read_text())
COLUMNS = Assistant.__table__.c  # type: ignore[attr-defined]
NOT_LEAVES = {"seq", "id", "org_id", "deleted", "version", "secret_key", "created_at"} | {
    "updated_at"
}
CONFIG_LEAVES = list(leaves_of(CONFIG))


def graphql_base(leaf: Leaf) -> str:
    if leaf.enum:
        return leaf.enum
    return "[String!]" if leaf.type is list else {str: "String", bool: "Boolean"}[leaf.type]


def spelt(graphql_type: Any) -> str:
    """A GraphQL type as the SDL spells it: `String`, `[String!]!`, `ThreadMode!`."""
    if isinstance(graphql_type, GraphQLNonNull):
        return spelt(graphql_type.of_type) + "!"
    if isinstance(graphql_type, GraphQLList):
        return f"[{spelt(graphql_type.of_type)}]"
    return str(graphql_type.name)


def test_every_column_of_the_table_but_the_bookkeeping_is_a_declared_leaf_as_declared():
    declared = [leaf for leaf in TOP_LEAVES] + [leaf for _, leaf in CONFIG_LEAVES]
    assert {leaf.column for leaf in declared} == {c.key for c in COLUMNS} - NOT_LEAVES
    assert len(LEAVES) == len(declared)
    for leaf in declared:
        column = COLUMNS[leaf.column]
        assert column.nullable == leaf.nullable, leaf
        field = Assistant.model_fields[leaf.column]
        default = field.default_factory() if field.default_factory else field.default
        assert default == (PydanticUndefined if leaf.default is REQUIRED else leaf.default), leaf


def test_every_leaf_is_a_field_of_the_sdl_with_its_type_and_description():
    assistant = SDL.get_type("Assistant")
    assert isinstance(assistant, GraphQLObjectType)
    assert spelt(assistant.fields["config"].type) == "Config!"
    assert assistant.fields["config"].description == CONFIG.field_description
    for leaf in TOP_LEAVES:
        expected = graphql_base(leaf) + ("" if leaf.nullable else "!")
        assert spelt(assistant.fields[to_camel_case(leaf.name)].type) == expected, leaf
    for group in groups_of(CONFIG):
        sdl_type = SDL.get_type(group.graphql_type)
        assert isinstance(sdl_type, GraphQLObjectType), group.graphql_type
        assert sdl_type.description == group.description
        assert list(sdl_type.fields) == [to_camel_case(m.name) for m in group.members]
        for member in group.members:
            field = sdl_type.fields[to_camel_case(member.name)]
            if isinstance(member, Group):
                assert spelt(field.type) == member.graphql_type + "!"
                assert field.description == member.field_description
            else:
                expected = graphql_base(member) + ("" if member.nullable else "!")
                assert spelt(field.type) == expected, member
                assert field.description == member.description, member
                if member.enum:
                    assert isinstance(SDL.get_type(member.enum), GraphQLEnumType)


def test_every_leaf_is_a_field_of_the_patch_model_and_of_the_graphql_input():
    def check(model: type[BaseModel], group: Group) -> None:
        assert list(model.model_fields) == [m.name for m in group.members], model
        sdl_input = SDL.get_type(group.graphql_type + "Input")
        assert isinstance(sdl_input, GraphQLInputObjectType), group.graphql_type
        assert list(sdl_input.fields) == [to_camel_case(m.name) for m in group.members]
        for member in group.members:
            if isinstance(member, Group):
                nested = model.model_fields[member.name].annotation
                assert isinstance(nested, type), member
                assert issubclass(nested, BaseModel), member
                check(nested, member)
            else:
                graphql_type = spelt(sdl_input.fields[to_camel_case(member.name)].type)
                assert graphql_type == graphql_base(member), member  # nullable: absent ≠ null

    check(ConfigPatch, CONFIG)
    for leaf in TOP_LEAVES:
        assert leaf.name in AssistantPatch.model_fields, leaf


def json_schema_of(leaf: Leaf) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "boolean" if leaf.type is bool else "string"}
    if leaf.type is list:
        base = {"items": {"type": "string"}, "type": "array"}
    return {"anyOf": [base, {"type": "null"}]} if leaf.nullable else base


async def test_every_leaf_is_a_required_property_of_the_openapi_document(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    schemas = response.json()["components"]["schemas"]
    assert schemas["Assistant"]["properties"]["config"] == {
        "$ref": f"#/components/schemas/{CONFIG.openapi_model}"
    }
    for group in groups_of(CONFIG):
        schema = schemas[group.openapi_model]
        assert schema["required"] == [m.name for m in group.members]
        for member in group.members:
            found = dict(schema["properties"][member.name])
            found.pop("title", None)  # pydantic titles leaves, not references
            if isinstance(member, Group):
                assert found == {"$ref": f"#/components/schemas/{member.openapi_model}"}
            else:
                assert found == json_schema_of(member), member


# Leaves a generic value would not pass the validation of (the others take `sample`'s).
VALID = {"language": "pt-BR", "timezone": "Europe/Lisbon"}


def sample(leaf: Leaf) -> Any:
    """A valid value of the leaf other than its default."""
    if leaf.column in VALID:
        return VALID[leaf.column]
    if leaf.enum:
        return next(e.value for e in ENUMS[leaf.enum] if e.value != leaf.default)
    if leaf.type is bool:
        return not leaf.default
    if leaf.type is list:
        return [f"{leaf.name} 1", f"{leaf.name} 2"]
    return f"{leaf.name}-{len(leaf.column)}"


def nested(values: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    """{("config", "tts", "voice_id"): v} → {"config": {"tts": {"voice_id": v}}}."""
    document: dict[str, Any] = {}
    for path, value in values.items():
        node = document
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return document


def selection(group: Group) -> str:
    """The GraphQL selection of every member of a group, at every depth."""
    return " ".join(
        to_camel_case(m.name) + (f" {{ {selection(m)} }}" if isinstance(m, Group) else "")
        for m in group.members
    )


def as_graphql(values: dict[str, Any], group: Group) -> dict[str, Any]:
    """A REST config document as GraphQL answers it: camelCase keys, enums by name."""
    answer: dict[str, Any] = {}
    for member in group.members:
        value = values[member.name]
        if isinstance(member, Group):
            value = as_graphql(value, member)
        elif member.enum:
            value = ENUMS[member.enum](value).name
        answer[to_camel_case(member.name)] = value
    return answer


async def test_every_leaf_reaches_a_rest_answer_a_graphql_answer_and_a_snapshot(
    client, org, gql, stored
):
    values = {path: sample(leaf) for path, leaf in CONFIG_LEAVES}
    body = {"name": "Every leaf", "enabled": False, **nested(values)}
    response = await client.post(f"/orgs/{org.org_id}/assistants", json=body, headers=org.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    expected = nested(values)["config"]
    assert created["config"] == expected

    row = await stored(created["id"])
    assert row is not None
    assert {leaf.column: row[leaf.column] for _, leaf in CONFIG_LEAVES} == {
        leaf.column: values[path] for path, leaf in CONFIG_LEAVES
    }
    url = f"/orgs/{org.org_id}/assistants/{created['id']}"
    read = await client.get(url, headers=org.headers)
    assert read.json()["config"] == expected

    revision = await client.get(f"{url}/revisions/1", headers=org.headers)
    assert revision.status_code == 200, revision.text
    assert revision.json()["snapshot"]["config"] == expected
    changes = {c["path"]: c["to"] for c in revision.json()["changes"]}
    assert set(changes) == {".".join(path) for path in LEAVES}
    assert {path: changes[".".join(path)] for path in values} == values

    config = selection(CONFIG)
    answer = await gql(
        f"""query($org: ID!, $id: ID!) {{ assistant(orgId: $org, id: $id) {{
              config {{ {config} }}
              revisions(first: 1) {{ nodes {{ snapshot {{ config {{ {config} }} }} }} }} }} }}""",
        {"org": org.org_id, "id": created["id"]},
        org,
    )
    assert "errors" not in answer, answer
    assistant = answer["data"]["assistant"]
    assert assistant["config"] == as_graphql(expected, CONFIG)
    assert assistant["revisions"]["nodes"][0]["snapshot"]["config"] == as_graphql(expected, CONFIG)


def with_new_leaf(group: Group, leaf: Leaf) -> Group:
    """A copy of the declaration with one more leaf in its `conversation` group."""
    members = tuple(
        dataclasses.replace(m, members=(*m.members, leaf))
        if isinstance(m, Group) and m.name == "conversation"
        else m
        for m in group.members
    )
    return dataclasses.replace(group, members=members)


def test_a_leaf_added_to_a_copy_of_the_declaration_reaches_every_derived_surface():
    new = Leaf("enable_haiku", "enable_haiku", bool, False, False, "Answers in haiku.")
    shape = with_new_leaf(CONFIG, new)
    row = SimpleNamespace(
        **{leaf.column: sample(leaf) for _, leaf in CONFIG_LEAVES}, enable_haiku=True
    )

    document = compile_builder(shape, "document", document_leaf, dict_group, {})(row)
    assert document["conversation"]["enable_haiku"] is True
    assert document == {
        **config_document(row),  # type: ignore[arg-type]
        "conversation": {**config_document(row)["conversation"], "enable_haiku": True},  # type: ignore[arg-type]
    }

    types: dict[str, type] = {}
    for group in groups_of(shape):
        types[group.graphql_type] = output_type(group, types)
    from_row = compile_builder(shape, "from_row", output_leaf, output_group, {**types, **ENUMS})
    built = from_row(row)
    assert built.conversation.enable_haiku is True
    assert built.conversation.thread_mode == ENUMS["ThreadMode"](row.thread_mode)

    config_type = types[shape.graphql_type]
    query = strawberry.type(
        type(
            "Query",
            (),
            {"config": strawberry.field(resolver=lambda: built, graphql_type=config_type)},
        )
    )
    schema = strawberry.Schema(query=query)
    sdl = schema.as_str()
    assert '  """Answers in haiku."""\n  enableHaiku: Boolean!\n' in sdl
    answer = schema.execute_sync("{ config { conversation { enableHaiku } } }")
    assert answer.data == {"config": {"conversation": {"enableHaiku": True}}}

    models: dict[str, type[Document]] = {}
    for group in groups_of(shape):
        models[group.openapi_model] = document_model(group, models)
    conversation = models["Conversation"].model_json_schema()
    assert conversation["properties"]["enable_haiku"] == {
        "title": "Enable Haiku",
        "type": "boolean",
    }
    assert conversation["required"][-1] == "enable_haiku"
    assert models["Config"].model_validate(document).model_dump() == document
    assert Config.from_row(row).conversation.thread_mode == built.conversation.thread_mode
