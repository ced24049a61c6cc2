"""REST: an integration's `config`, an action's `config`, `config.input` and
`config.definitions` hold at most 64 KiB (65,536 bytes) each as compact JSON; beyond, 400
VALIDATION_FAILED naming the field, and nothing is stored (docs/storage.md)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from app.models import Action, Integration
from tests.helpers.rows import stored_child, stored_children

LIMIT = 64 * 1024


def of_size(size: int, key: str = "k") -> dict[str, Any]:
    """An object that is exactly `size` bytes as compact JSON (ASCII)."""
    value = {key: "x" * (size - len(orjson.dumps({key: ""})))}
    assert len(orjson.dumps(value)) == size
    return value


def definitions_of_size(size: int) -> list[dict[str, Any]]:
    """A `definitions` list exactly `size` bytes as compact JSON."""
    empty = [{"path": "p", "definition": {"k": ""}}]
    filler = "x" * (size - len(orjson.dumps(empty)))
    value = [{"path": "p", "definition": {"k": filler}}]
    assert len(orjson.dumps(value)) == size
    return value


def errors_of(response: Any) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "VALIDATION_FAILED"
    for error in body["errors"]:
        assert "65536 bytes" in error["message"]
    return [e["path"] for e in body["errors"]]


async def test_an_integration_config_of_64_kib_is_stored_one_byte_more_is_refused(
    client, org, make_assistant, db
):
    assistant = await make_assistant(org)
    url = f"/orgs/c/assistants/{assistant['id']}/integrations"
    refused = await client.post(
        url, json={"integration_id": "big", "config": of_size(LIMIT + 1)}, headers=org.headers
    )
    assert errors_of(refused) == ["config"]
    assert await stored_children(db, Integration, assistant["id"]) == []

    made = await client.post(
        url, json={"integration_id": "big", "config": of_size(LIMIT)}, headers=org.headers
    )
    assert made.status_code == 201, made.text
    row = await stored_child(db, Integration, made.json()["id"])
    assert row is not None
    assert row["config"] == of_size(LIMIT)


async def test_an_integration_update_past_64_kib_changes_nothing(client, org, make_assistant, db):
    assistant = await make_assistant(org)
    url = f"/orgs/c/assistants/{assistant['id']}/integrations"
    made = await client.post(
        url, json={"integration_id": "i", "config": {"a": 1}}, headers=org.headers
    )
    item = f"{url}/{made.json()['id']}"
    refused = await client.patch(
        item, json={"config": of_size(LIMIT + 1), "enabled": False}, headers=org.headers
    )
    assert errors_of(refused) == ["config"]
    row = await stored_child(db, Integration, made.json()["id"])
    assert row is not None
    assert (row["config"], row["enabled"]) == ({"a": 1}, True)


def action_body(config: dict[str, Any]) -> dict[str, Any]:
    return {"action_id": "TOOLS:HTTP_REQUEST", "name": "Fetch", "config": config}


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"input": of_size(LIMIT + 1)}, "config.input"),
        ({"definitions": definitions_of_size(LIMIT + 1)}, "config.definitions"),
        # each part within 64 KiB, the whole beyond
        (
            {"input": of_size(LIMIT // 2), "definitions": definitions_of_size(LIMIT // 2)},
            "config",
        ),
    ],
    ids=["input", "definitions", "whole"],
)
async def test_an_action_config_past_64_kib_is_refused_naming_the_field(
    client, org, make_assistant, db, config, path
):
    assistant = await make_assistant(org)
    url = f"/orgs/c/assistants/{assistant['id']}/actions"
    refused = await client.post(url, json=action_body(config), headers=org.headers)
    assert errors_of(refused) == [path]
    assert await stored_children(db, Action, assistant["id"]) == []

    made = await client.post(url, json=action_body({}), headers=org.headers)
    assert made.status_code == 201
    item = f"{url}/{made.json()['id']}"
    patched = await client.patch(item, json={"config": config}, headers=org.headers)
    assert errors_of(patched) == [path]
    row = await stored_child(db, Action, made.json()["id"])
    assert row is not None
    assert row["config"] == {"input": {}, "definitions": []}


async def test_an_action_config_of_64_kib_is_stored(client, org, make_assistant, db):
    assistant = await make_assistant(org)
    url = f"/orgs/c/assistants/{assistant['id']}/actions"
    wrapper = len(orjson.dumps({"input": {}, "definitions": []})) - len(b"{}")
    config = {"input": of_size(LIMIT - wrapper), "definitions": []}
    assert len(orjson.dumps(config)) == LIMIT
    made = await client.post(url, json=action_body(config), headers=org.headers)
    assert made.status_code == 201, made.text
    row = await stored_child(db, Action, made.json()["id"])
    assert row is not None
    assert row["config"] == config


async def test_several_fields_past_64_kib_are_all_named(client, org, make_assistant):
    assistant = await make_assistant(org)
    url = f"/orgs/c/assistants/{assistant['id']}/actions"
    config = {"input": of_size(LIMIT + 1), "definitions": definitions_of_size(LIMIT + 1)}
    refused = await client.post(url, json=action_body(config), headers=org.headers)
    assert sorted(errors_of(refused)) == ["config.definitions", "config.input"]
