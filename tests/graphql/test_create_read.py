"""createAssistant and assistant(orgId, id) over GraphQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.assistant_cases import FULL, RFC3339_Z, URL_SAFE
from tests.helpers.graphql_answers import answer
from tests.helpers.graphql_operations import CREATE_ASSISTANT, READ_ASSISTANT, to_input
from tests.helpers.rows import count_assistants

DEFAULT_CONFIG = {
    "language": "auto",
    "model": "gpt-4o-mini",
    "instructions": "",
    "knowledgeScope": "ALL",
    "timezone": "UTC",
    "stt": {"model": None},
    "tts": {"model": None, "voiceId": None},
    "conversation": {
        "threadMode": "NEW",
        "enableMemories": False,
        "enableTransferToHumanTool": False,
        "welcomeBanner": None,
        "suggestedMessages": [],
        "autoIntroMessage": None,
        "enableEndConversationTool": False,
        "enableBlockContactTool": False,
        "enablePrivateChats": False,
        "enableAutoResolve": False,
        "enableAutoFollowUps": False,
        "enableAutoCsat": False,
        "enableUpdateContactTool": False,
    },
}


@pytest.fixture
def create(gql: Any, org: Any) -> Any:
    async def send(input_: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = await gql(CREATE_ASSISTANT, {"org": "c", "input": input_}, org)
        return body

    return send


async def test_only_name_is_required_and_defaults_apply(create, stored, org):
    result = await create({"name": "  Bot  "})
    assert "errors" not in result, result
    created = result["data"]["createAssistant"]
    assert created == {
        "id": created["id"],
        "name": "Bot",
        "enabled": True,
        "deleted": False,
        "version": 1,
        "secretKey": None,
        "avatarId": None,
        "avatarUrl": None,
        "ref": None,
        "createdAt": created["createdAt"],
        "updatedAt": created["createdAt"],
        "config": DEFAULT_CONFIG,
        "integrations": [],
        "actions": [],
    }
    assert RFC3339_Z.match(created["createdAt"])
    row = await stored(created["id"])
    assert (row["org_id"], row["name"], row["model"], row["version"]) == (
        org.org_id,
        "Bot",
        "gpt-4o-mini",
        1,
    )


async def test_create_with_every_field_stores_them(create, stored):
    result = await create(to_input(FULL))
    assert "errors" not in result, result
    config = result["data"]["createAssistant"]["config"]
    assert config["tts"] == {"model": "t-1", "voiceId": "v-1"}
    assert config["conversation"]["threadMode"] == "CONTINUE"
    assert config["knowledgeScope"] == "ASSISTANT"
    row = await stored(result["data"]["createAssistant"]["id"])
    assert (row["tts_voice_id"], row["thread_mode"], row["knowledge_scope"]) == (
        "v-1",
        "continue",
        "assistant",
    )
    assert row["suggested_messages"] == ["a", "b"]


async def test_generate_secret_key(create, stored):
    result = await create({"name": "Bot", "generateSecretKey": True})
    created = result["data"]["createAssistant"]
    assert URL_SAFE.match(created["secretKey"])
    assert len(created["secretKey"]) >= 43
    assert (await stored(created["id"]))["secret_key"] == created["secretKey"]


@pytest.mark.parametrize(
    ("input_", "path"),
    [
        ({}, ["name"]),
        ({"name": ""}, ["name"]),
        ({"name": "x", "generateSecretKey": None}, ["generateSecretKey"]),
        ({"name": "x", "secretKey": "mine"}, ["secretKey"]),
        ({"name": "x", "config": {"tts": {"voiceId": ""}}}, ["config", "tts", "voiceId"]),
        ({"name": "x", "config": {"conversation": None}}, ["config", "conversation"]),
    ],
)
async def test_invalid_create_stores_nothing(create, db, input_, path):
    result = await create(input_)
    assert result["data"] is None
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert [f["path"] for f in error["extensions"]["fields"]] == [path]
    assert await count_assistants(db) == 0


async def test_read_answers_what_create_answered(create, gql, org):
    created = (await create(to_input(FULL)))["data"]["createAssistant"]
    for org_id in (org.org_id, "c"):
        result = await gql(READ_ASSISTANT, {"org": org_id, "id": created["id"]}, org)
        assert result == answer({"assistant": created}, 200)


async def test_rest_and_graphql_read_the_same_assistant(make_assistant, gql, org):
    created = await make_assistant(org, **FULL)
    result = await gql(READ_ASSISTANT, {"org": "c", "id": created["id"]}, org)
    read = result["data"]["assistant"]
    assert (read["id"], read["version"], read["createdAt"], read["updatedAt"]) == (
        created["id"],
        created["version"],
        created["created_at"],
        created["updated_at"],
    )
    assert read["config"]["tts"]["voiceId"] == created["config"]["tts"]["voice_id"]
