"""GraphQL: createIntegration, updateIntegration, deleteIntegration."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import Integration
from tests.helpers.graphql_answers import answer
from tests.helpers.rows import mark_deleted, stored_child, stored_children

FIELDS = "id enabled integrationId assistantId connectionId config error createdAt updatedAt"
CREATE = f"""
mutation($org: ID!, $assistant: ID!, $input: CreateIntegrationInput!) {{
  createIntegration(orgId: $org, assistantId: $assistant, input: $input) {{ {FIELDS} }}
}}
"""
UPDATE = f"""
mutation($org: ID!, $id: ID!, $input: UpdateIntegrationInput!) {{
  updateIntegration(orgId: $org, integrationId: $id, input: $input) {{ {FIELDS} }}
}}
"""
DELETE = """
mutation($org: ID!, $id: ID!) { deleteIntegration(orgId: $org, integrationId: $id) }
"""
READ = f"""
query($org: ID!, $id: ID!) {{ assistant(orgId: $org, id: $id) {{ integrations {{ {FIELDS} }} }} }}
"""


@pytest.fixture
def create(gql):
    async def run(org: Any, assistant_id: str, **fields: Any) -> dict[str, Any]:
        fields.setdefault("integrationId", "whatsapp")
        body = await gql(
            CREATE, {"org": org.org_id, "assistant": assistant_id, "input": fields}, org
        )
        assert "errors" not in body, body
        created: dict[str, Any] = body["data"]["createIntegration"]
        return created

    return run


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None, body
    [error] = body["errors"]
    extensions: dict[str, Any] = error["extensions"]
    return extensions


async def test_create_with_defaults(gql, org, make_assistant, db):
    assistant = await make_assistant(org)
    body = await gql(
        CREATE,
        {"org": "c", "assistant": assistant["id"], "input": {"integrationId": "internal"}},
        org,
    )
    created = body["data"]["createIntegration"]
    assert created == {
        "id": created["id"],
        "enabled": True,
        "integrationId": "internal",
        "assistantId": assistant["id"],
        "connectionId": None,
        "config": {},
        "error": None,
        "createdAt": created["createdAt"],
        "updatedAt": created["createdAt"],
    }
    row = await stored_child(db, Integration, created["id"])
    assert row is not None
    assert (row["org_id"], row["integration_id"], row["config"]) == (org.org_id, "internal", {})


async def test_create_every_field_and_read_through_the_assistant(gql, org, make_assistant, create):
    assistant = await make_assistant(org)
    first = await create(
        org, assistant["id"], enabled=False, connectionId="conn", config={"a": [1, {"b": None}]}
    )
    second = await create(org, assistant["id"], integrationId="web")
    assert (first["enabled"], first["connectionId"], first["config"]) == (
        False,
        "conn",
        {"a": [1, {"b": None}]},
    )
    body = await gql(READ, {"org": "c", "id": assistant["id"]}, org)
    assert body["data"]["assistant"]["integrations"] == [first, second]


@pytest.mark.parametrize(
    ("fields", "paths"),
    [
        ({"integrationId": "Not A Slug"}, [["integrationId"]]),
        ({"integrationId": "x", "config": [1]}, [["config"]]),
        ({"integrationId": "x", "config": "text"}, [["config"]]),
        ({"integrationId": "x", "config": None}, [["config"]]),
        ({"integrationId": "x", "enabled": None}, [["enabled"]]),
        ({"integrationId": "x", "connectionId": ""}, [["connectionId"]]),
        ({"integrationId": "x", "error": "boom"}, [["error"]]),
        ({"integrationId": "x", "colour": "red"}, [["colour"]]),
    ],
)
async def test_create_validation(gql, org, make_assistant, db, fields, paths):
    assistant = await make_assistant(org)
    body = await gql(CREATE, {"org": "c", "assistant": assistant["id"], "input": fields}, org)
    extensions = error_of(body)
    assert extensions["code"] == "BAD_USER_INPUT"
    assert [f["path"] for f in extensions["fields"]] == paths
    assert await stored_children(db, Integration, assistant["id"]) == []


async def test_update_and_no_op(gql, org, make_assistant, create, db):
    assistant = await make_assistant(org)
    created = await create(org, assistant["id"], connectionId="c1", config={"a": 1})
    body = await gql(
        UPDATE,
        {"org": "c", "id": created["id"], "input": {"connectionId": None, "config": {"b": 2}}},
        org,
    )
    updated = body["data"]["updateIntegration"]
    assert updated == {
        **created,
        "connectionId": None,
        "config": {"b": 2},
        "updatedAt": updated["updatedAt"],
    }
    assert updated["updatedAt"] > created["updatedAt"]
    row = await stored_child(db, Integration, created["id"])
    assert row is not None
    assert (row["connection_id"], row["config"]) == (None, {"b": 2})
    again = await gql(UPDATE, {"org": "c", "id": created["id"], "input": {"enabled": True}}, org)
    assert again["data"]["updateIntegration"] == updated


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"enabled": None}, ["enabled"]),
        ({"config": None}, ["config"]),
        ({"config": 5}, ["config"]),
        ({"connectionId": "c" * 201}, ["connectionId"]),
        ({"integrationId": "telegram"}, ["integrationId"]),
        ({"error": None}, ["error"]),
    ],
)
async def test_update_validation_stores_nothing(gql, org, make_assistant, create, db, fields, path):
    assistant = await make_assistant(org)
    created = await create(org, assistant["id"])
    before = await stored_child(db, Integration, created["id"])
    body = await gql(UPDATE, {"org": "c", "id": created["id"], "input": fields}, org)
    extensions = error_of(body)
    assert extensions["code"] == "BAD_USER_INPUT"
    assert [f["path"] for f in extensions["fields"]] == [path]
    assert await stored_child(db, Integration, created["id"]) == before


async def test_delete_returns_the_id_then_not_found(gql, org, make_assistant, create, db):
    assistant = await make_assistant(org)
    created = await create(org, assistant["id"])
    body = await gql(DELETE, {"org": "c", "id": created["id"]}, org)
    assert body == answer({"deleteIntegration": created["id"]}, 0)
    assert await stored_child(db, Integration, created["id"]) is None
    again = await gql(DELETE, {"org": "c", "id": created["id"]}, org)
    assert error_of(again)["code"] == "NOT_FOUND"
    update = await gql(UPDATE, {"org": "c", "id": created["id"], "input": {}}, org)
    assert error_of(update)["code"] == "NOT_FOUND"
    read = await gql(READ, {"org": "c", "id": assistant["id"]}, org)
    assert read["data"]["assistant"]["integrations"] == []


async def test_isolation_between_organisations(gql, org, other_org, make_assistant, create, db):
    theirs = await make_assistant(other_org)
    target = await create(other_org, theirs["id"], config={"secret": 1})
    before = await stored_children(db, Integration, theirs["id"])
    attempts = [
        (CREATE, {"org": "c", "assistant": theirs["id"], "input": {"integrationId": "x"}}),
        (UPDATE, {"org": "c", "id": target["id"], "input": {"enabled": False}}),
        (DELETE, {"org": "c", "id": target["id"]}),
    ]
    for query, variables in attempts:
        body = await gql(query, variables, org)
        assert error_of(body)["code"] == "NOT_FOUND"
        assert "secret" not in str(body)
        forbidden = await gql(query, {**variables, "org": other_org.org_id}, org)
        assert error_of(forbidden)["code"] == "FORBIDDEN"
    assert await stored_children(db, Integration, theirs["id"]) == before


async def test_deleted_assistant_hides_its_integrations(gql, org, make_assistant, create, db):
    assistant = await make_assistant(org)
    target = await create(org, assistant["id"])
    before = await stored_child(db, Integration, target["id"])
    await mark_deleted(db, assistant["id"])
    attempts = [
        (CREATE, {"org": "c", "assistant": assistant["id"], "input": {"integrationId": "x"}}),
        (UPDATE, {"org": "c", "id": target["id"], "input": {"enabled": False}}),
        (DELETE, {"org": "c", "id": target["id"]}),
    ]
    for query, variables in attempts:
        assert error_of(await gql(query, variables, org))["code"] == "NOT_FOUND"
    assert await stored_child(db, Integration, target["id"]) == before
    assert len(await stored_children(db, Integration, assistant["id"])) == 1


async def test_needs_an_api_key(gql, org, make_assistant):
    assistant = await make_assistant(org)
    body = await gql(
        CREATE, {"org": "c", "assistant": assistant["id"], "input": {"integrationId": "x"}}
    )
    assert error_of(body)["code"] == "UNAUTHENTICATED"
