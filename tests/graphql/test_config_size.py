"""GraphQL: an integration's `config`, an action's `config`, `config.input` and
`config.definitions` hold at most 64 KiB (65,536 bytes) each as compact JSON; beyond,
BAD_USER_INPUT naming the field in `extensions.fields`, and nothing is stored."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from app.models import Action, Integration
from tests.helpers.rows import stored_child, stored_children

LIMIT = 64 * 1024

CREATE_INTEGRATION = """
mutation($org: ID!, $assistant: ID!, $input: CreateIntegrationInput!) {
  createIntegration(orgId: $org, assistantId: $assistant, input: $input) { id config }
}
"""
UPDATE_INTEGRATION = """
mutation($org: ID!, $id: ID!, $input: UpdateIntegrationInput!) {
  updateIntegration(orgId: $org, integrationId: $id, input: $input) { id config }
}
"""
CREATE_ACTION = """
mutation($org: ID!, $assistant: ID!, $input: CreateActionInput!) {
  createAction(orgId: $org, assistantId: $assistant, input: $input) { id }
}
"""
UPDATE_ACTION = """
mutation($org: ID!, $id: ID!, $input: UpdateActionInput!) {
  updateAction(orgId: $org, actionId: $id, input: $input) { id }
}
"""


def of_size(size: int) -> dict[str, Any]:
    """An object that is exactly `size` bytes as compact JSON (ASCII)."""
    value = {"k": "x" * (size - len(b'{"k":""}'))}
    assert len(orjson.dumps(value)) == size
    return value


def definitions_of_size(size: int) -> list[dict[str, Any]]:
    filler = "x" * (size - len(orjson.dumps([{"path": "p", "definition": {"k": ""}}])))
    value = [{"path": "p", "definition": {"k": filler}}]
    assert len(orjson.dumps(value)) == size
    return value


def paths_of(body: dict[str, Any]) -> list[list[str | int]]:
    assert body["data"] is None, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    return [f["path"] for f in error["extensions"]["fields"]]


async def test_an_integration_config_past_64_kib_is_refused(gql, org, make_assistant, db):
    assistant = await make_assistant(org)
    variables = {"org": "c", "assistant": assistant["id"]}
    big = {"integrationId": "big", "config": of_size(LIMIT + 1)}
    refused = await gql(CREATE_INTEGRATION, {**variables, "input": big}, org)
    assert paths_of(refused) == [["config"]]
    assert await stored_children(db, Integration, assistant["id"]) == []

    fits = {"integrationId": "big", "config": of_size(LIMIT)}
    made = await gql(CREATE_INTEGRATION, {**variables, "input": fits}, org)
    assert "errors" not in made, made
    made_id = made["data"]["createIntegration"]["id"]

    grown = {"org": "c", "id": made_id, "input": {"config": of_size(LIMIT + 1)}}
    assert paths_of(await gql(UPDATE_INTEGRATION, grown, org)) == [["config"]]
    row = await stored_child(db, Integration, made_id)
    assert row is not None
    assert row["config"] == of_size(LIMIT)


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"input": of_size(LIMIT + 1)}, ["config", "input"]),
        ({"definitions": definitions_of_size(LIMIT + 1)}, ["config", "definitions"]),
        (
            {"input": of_size(LIMIT // 2), "definitions": definitions_of_size(LIMIT // 2)},
            ["config"],
        ),
    ],
    ids=["input", "definitions", "whole"],
)
async def test_an_action_config_past_64_kib_is_refused(gql, org, make_assistant, db, config, path):
    assistant = await make_assistant(org)
    action = {"actionId": "TOOLS:HTTP_REQUEST", "name": "Fetch"}
    variables = {"org": "c", "assistant": assistant["id"]}
    refused = await gql(CREATE_ACTION, {**variables, "input": {**action, "config": config}}, org)
    assert paths_of(refused) == [path]
    assert await stored_children(db, Action, assistant["id"]) == []

    made = await gql(CREATE_ACTION, {**variables, "input": action}, org)
    made_id = made["data"]["createAction"]["id"]
    patched = await gql(
        UPDATE_ACTION, {"org": "c", "id": made_id, "input": {"config": config}}, org
    )
    assert paths_of(patched) == [path]
    row = await stored_child(db, Action, made_id)
    assert row is not None
    assert row["config"] == {"input": {}, "definitions": []}
