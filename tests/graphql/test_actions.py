"""GraphQL: createAction, updateAction, deleteAction, reorderActions."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import Action
from tests.helpers.graphql_answers import answer
from tests.helpers.rows import mark_deleted, stored_child, stored_children

FIELDS = """id enabled name instructions actionId assistantId connectionId
  config { input definitions { path definition } } position createdAt updatedAt"""
CREATE = f"""
mutation($org: ID!, $assistant: ID!, $input: CreateActionInput!) {{
  createAction(orgId: $org, assistantId: $assistant, input: $input) {{ {FIELDS} }}
}}
"""
UPDATE = f"""
mutation($org: ID!, $id: ID!, $input: UpdateActionInput!) {{
  updateAction(orgId: $org, actionId: $id, input: $input) {{ {FIELDS} }}
}}
"""
DELETE = "mutation($org: ID!, $id: ID!) { deleteAction(orgId: $org, actionId: $id) }"
REORDER = f"""
mutation($org: ID!, $assistant: ID!, $positions: [ActionPositionInput!]!) {{
  reorderActions(orgId: $org, assistantId: $assistant, positions: $positions) {{ {FIELDS} }}
}}
"""
READ = f"""
query($org: ID!, $id: ID!) {{ assistant(orgId: $org, id: $id) {{ actions {{ {FIELDS} }} }} }}
"""


@pytest.fixture
def create(gql):
    async def run(org: Any, assistant_id: str, **fields: Any) -> dict[str, Any]:
        fields.setdefault("actionId", "TOOLS:HTTP_REQUEST")
        fields.setdefault("name", "Call the CRM")
        body = await gql(
            CREATE, {"org": org.org_id, "assistant": assistant_id, "input": fields}, org
        )
        assert "errors" not in body, body
        created: dict[str, Any] = body["data"]["createAction"]
        return created

    return run


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None, body
    [error] = body["errors"]
    extensions: dict[str, Any] = error["extensions"]
    return extensions


async def test_create_with_defaults_and_positions(gql, org, make_assistant, create, db):
    assistant = await make_assistant(org)
    body = await gql(
        CREATE,
        {
            "org": "c",
            "assistant": assistant["id"],
            "input": {"actionId": "TOOLS:HTTP_REQUEST", "name": "Fetch"},
        },
        org,
    )
    first = body["data"]["createAction"]
    assert first == {
        "id": first["id"],
        "enabled": True,
        "name": "Fetch",
        "instructions": "",
        "actionId": "TOOLS:HTTP_REQUEST",
        "assistantId": assistant["id"],
        "connectionId": None,
        "config": {"input": {}, "definitions": []},
        "position": 100,
        "createdAt": first["createdAt"],
        "updatedAt": first["createdAt"],
    }
    second = await create(org, assistant["id"])
    third = await create(org, assistant["id"])
    assert (second["position"], third["position"]) == (200, 300)
    rows = await stored_children(db, Action, assistant["id"])
    assert sorted(r["position"] for r in rows) == [100, 200, 300]
    read = await gql(READ, {"org": "c", "id": assistant["id"]}, org)
    assert read["data"]["assistant"]["actions"] == [first, second, third]


async def test_create_every_field(gql, org, make_assistant, create, db):
    assistant = await make_assistant(org)
    config = {
        "input": {"url": "https://example.com"},
        "definitions": [{"path": "body", "definition": {"type": "object"}}],
    }
    created = await create(
        org,
        assistant["id"],
        actionId="CRM",
        name="n" * 64,
        instructions="i" * 2048,
        enabled=False,
        connectionId="conn",
        config=config,
    )
    assert (created["enabled"], created["connectionId"], created["config"]) == (
        False,
        "conn",
        config,
    )
    row = await stored_child(db, Action, created["id"])
    assert row is not None
    assert row["config"] == config


@pytest.mark.parametrize(
    ("fields", "paths"),
    [
        ({"actionId": "lower:case"}, [["actionId"]]),
        ({"name": "n" * 65}, [["name"]]),
        ({"name": ""}, [["name"]]),
        ({"instructions": "i" * 2049}, [["instructions"]]),
        ({"instructions": None}, [["instructions"]]),
        ({"connectionId": ""}, [["connectionId"]]),
        ({"config": {"input": [1]}}, [["config", "input"]]),
        ({"config": {"definitions": [{"path": "p", "definition": 3}]}}, None),
        ({"config": None}, [["config"]]),
        ({"position": 5}, [["position"]]),
        ({"colour": "red"}, [["colour"]]),
    ],
)
async def test_create_validation(gql, org, make_assistant, db, fields, paths):
    assistant = await make_assistant(org)
    body = await gql(
        CREATE,
        {
            "org": "c",
            "assistant": assistant["id"],
            "input": {"actionId": "A", "name": "x", **fields},
        },
        org,
    )
    extensions = error_of(body)
    assert extensions["code"] == "BAD_USER_INPUT"
    expected = paths or [["config", "definitions", 0, "definition"]]
    assert [f["path"] for f in extensions["fields"]] == expected
    assert await stored_children(db, Action, assistant["id"]) == []


async def test_update_replaces_config_and_no_op(gql, org, make_assistant, create, db):
    assistant = await make_assistant(org)
    created = await create(
        org,
        assistant["id"],
        config={"input": {"a": 1}, "definitions": [{"path": "p", "definition": {}}]},
    )
    body = await gql(
        UPDATE,
        {
            "org": "c",
            "id": created["id"],
            "input": {"name": "Renamed", "connectionId": "c2", "config": {"input": {"b": 2}}},
        },
        org,
    )
    updated = body["data"]["updateAction"]
    assert updated == {
        **created,
        "name": "Renamed",
        "connectionId": "c2",
        "config": {"input": {"b": 2}, "definitions": []},
        "updatedAt": updated["updatedAt"],
    }
    assert updated["updatedAt"] > created["updatedAt"]
    row = await stored_child(db, Action, created["id"])
    assert row is not None
    assert (row["name"], row["position"]) == ("Renamed", 100)
    again = await gql(UPDATE, {"org": "c", "id": created["id"], "input": {"name": "Renamed"}}, org)
    assert again["data"]["updateAction"] == updated


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"name": None}, ["name"]),
        ({"name": "n" * 65}, ["name"]),
        ({"instructions": "i" * 2049}, ["instructions"]),
        ({"config": None}, ["config"]),
        ({"actionId": "OTHER"}, ["actionId"]),
        ({"position": 1}, ["position"]),
    ],
)
async def test_update_validation_stores_nothing(gql, org, make_assistant, create, db, fields, path):
    assistant = await make_assistant(org)
    created = await create(org, assistant["id"])
    before = await stored_child(db, Action, created["id"])
    body = await gql(UPDATE, {"org": "c", "id": created["id"], "input": fields}, org)
    extensions = error_of(body)
    assert extensions["code"] == "BAD_USER_INPUT"
    assert [f["path"] for f in extensions["fields"]] == [path]
    assert await stored_child(db, Action, created["id"]) == before


async def test_reorder(gql, org, make_assistant, create, db):
    assistant = await make_assistant(org)
    a, b, c = [await create(org, assistant["id"], name=n) for n in "abc"]
    body = await gql(
        REORDER,
        {
            "org": "c",
            "assistant": assistant["id"],
            "positions": [{"id": c["id"], "position": 150}, {"id": a["id"], "position": 900}],
        },
        org,
    )
    result = body["data"]["reorderActions"]
    assert [(x["name"], x["position"]) for x in result] == [("c", 150), ("b", 200), ("a", 900)]
    assert result[1] == b
    rows = {r["id"]: r["position"] for r in await stored_children(db, Action, assistant["id"])}
    assert rows == {a["id"]: 900, b["id"]: 200, c["id"]: 150}
    read = await gql(READ, {"org": "c", "id": assistant["id"]}, org)
    assert read["data"]["assistant"]["actions"] == result


@pytest.mark.parametrize(
    ("positions", "path"),
    [
        ([], ["positions"]),
        ([{"id": "A", "position": 1}] * 26, ["positions"]),
        ([{"id": "A", "position": -5}], ["positions", 0, "position"]),
        ([{"id": "A", "position": 1}, {"id": "A", "position": 2}], ["positions", 1, "id"]),
        ([{"id": "A", "position": 1}, {"id": "nope", "position": 2}], ["positions", 1, "id"]),
    ],
)
async def test_reorder_validation_moves_nothing(
    gql, org, make_assistant, create, db, positions, path
):
    assistant = await make_assistant(org)
    made = await create(org, assistant["id"])
    pairs = [{**p, "id": made["id"]} if p["id"] == "A" else p for p in positions]
    before = await stored_children(db, Action, assistant["id"])
    body = await gql(REORDER, {"org": "c", "assistant": assistant["id"], "positions": pairs}, org)
    extensions = error_of(body)
    assert extensions["code"] == "BAD_USER_INPUT"
    assert [f["path"] for f in extensions["fields"]] == [path]
    assert await stored_children(db, Action, assistant["id"]) == before


async def test_delete_returns_the_id_then_not_found(gql, org, make_assistant, create, db):
    assistant = await make_assistant(org)
    kept = await create(org, assistant["id"], name="kept")
    gone = await create(org, assistant["id"], name="gone")
    body = await gql(DELETE, {"org": "c", "id": gone["id"]}, org)
    assert body == answer({"deleteAction": gone["id"]}, 0)
    assert await stored_child(db, Action, gone["id"]) is None
    assert error_of(await gql(DELETE, {"org": "c", "id": gone["id"]}, org))["code"] == "NOT_FOUND"
    update = await gql(UPDATE, {"org": "c", "id": gone["id"], "input": {"name": "x"}}, org)
    assert error_of(update)["code"] == "NOT_FOUND"
    read = await gql(READ, {"org": "c", "id": assistant["id"]}, org)
    assert read["data"]["assistant"]["actions"] == [kept]


async def test_isolation_between_organisations(gql, org, other_org, make_assistant, create, db):
    mine = await make_assistant(org)
    own = await create(org, mine["id"])
    theirs = await make_assistant(other_org)
    target = await create(other_org, theirs["id"], instructions="their secret")
    before = await stored_children(db, Action, theirs["id"])
    attempts = [
        (CREATE, {"org": "c", "assistant": theirs["id"], "input": {"actionId": "A", "name": "x"}}),
        (UPDATE, {"org": "c", "id": target["id"], "input": {"name": "hijacked"}}),
        (DELETE, {"org": "c", "id": target["id"]}),
        (
            REORDER,
            {
                "org": "c",
                "assistant": theirs["id"],
                "positions": [{"id": target["id"], "position": 1}],
            },
        ),
    ]
    for query, variables in attempts:
        body = await gql(query, variables, org)
        assert error_of(body)["code"] == "NOT_FOUND"
        assert "their secret" not in str(body)
        forbidden = await gql(query, {**variables, "org": other_org.org_id}, org)
        assert error_of(forbidden)["code"] == "FORBIDDEN"
    # Their action in a reorder of my own assistant: a validation error naming it.
    foreign = await gql(
        REORDER,
        {
            "org": "c",
            "assistant": mine["id"],
            "positions": [{"id": own["id"], "position": 5}, {"id": target["id"], "position": 1}],
        },
        org,
    )
    assert [f["path"] for f in error_of(foreign)["fields"]] == [["positions", 1, "id"]]
    assert await stored_children(db, Action, theirs["id"]) == before
    assert [r["position"] for r in await stored_children(db, Action, mine["id"])] == [100]


async def test_deleted_assistant_hides_its_actions(gql, org, make_assistant, create, db):
    assistant = await make_assistant(org)
    target = await create(org, assistant["id"])
    before = await stored_children(db, Action, assistant["id"])
    await mark_deleted(db, assistant["id"])
    attempts = [
        (
            CREATE,
            {"org": "c", "assistant": assistant["id"], "input": {"actionId": "A", "name": "x"}},
        ),
        (UPDATE, {"org": "c", "id": target["id"], "input": {"name": "x"}}),
        (DELETE, {"org": "c", "id": target["id"]}),
        (
            REORDER,
            {
                "org": "c",
                "assistant": assistant["id"],
                "positions": [{"id": target["id"], "position": 1}],
            },
        ),
    ]
    for query, variables in attempts:
        assert error_of(await gql(query, variables, org))["code"] == "NOT_FOUND"
    assert await stored_children(db, Action, assistant["id"]) == before
