"""POST and GET /orgs/{org_id}/assistants[/{id}]: defaults, secret keys, the documented shape."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.helpers.assistant_cases import FULL, RFC3339_Z, URL_SAFE
from tests.helpers.rows import count_assistants

# Every key of the response in ../shared/seed/ ("Update an existing assistant"), by object.
SEED_KEYS = {
    (): {
        "id",
        "name",
        "enabled",
        "secret_key",
        "avatar_url",
        "config",
        "integrations",
        "actions",
        "created_at",
        "updated_at",
    },
    ("config",): {"language", "model", "stt", "tts", "conversation", "knowledge_scope"}
    | {"instructions"},
    ("config", "stt"): {"model"},
    ("config", "tts"): {"model", "voice_id"},
    ("config", "conversation"): {
        "thread_mode",
        "enable_memories",
        "enable_transfer_to_human_tool",
        "welcome_banner",
        "suggested_messages",
        "auto_intro_message",
        "enable_end_conversation_tool",
        "enable_block_contact_tool",
        "enable_private_chats",
    },
}

DEFAULT_CONFIG = {
    "language": "auto",
    "model": "gpt-4o-mini",
    "instructions": "",
    "knowledge_scope": "all",
    "timezone": "UTC",
    "stt": {"model": None},
    "tts": {"model": None, "voice_id": None},
    "conversation": {
        "thread_mode": "new",
        "enable_memories": False,
        "enable_transfer_to_human_tool": False,
        "welcome_banner": None,
        "suggested_messages": [],
        "auto_intro_message": None,
        "enable_end_conversation_tool": False,
        "enable_block_contact_tool": False,
        "enable_private_chats": False,
        "enable_auto_resolve": False,
        "enable_auto_follow_ups": False,
        "enable_auto_csat": False,
        "enable_update_contact_tool": False,
    },
}


def at(document: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        document = document[key]
    return document


async def create(client: Any, org: Any, body: Any) -> Any:
    return await client.post(f"/orgs/{org.org_id}/assistants", json=body, headers=org.headers)


async def test_only_name_is_required_and_defaults_apply(client, org, stored):
    response = await create(client, org, {"name": "  Bot  "})
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == {
        "id": body["id"],
        "name": "Bot",
        "enabled": True,
        "deleted": False,
        "version": 1,
        "secret_key": None,
        "avatar_id": None,
        "avatar_url": None,
        "ref": None,
        "config": DEFAULT_CONFIG,
        "integrations": [],
        "actions": [],
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
    }
    assert response.headers["etag"] == '"1"'
    assert RFC3339_Z.match(body["created_at"])
    row = await stored(body["id"])
    assert row["org_id"] == org.org_id
    assert (row["name"], row["model"], row["language"], row["suggested_messages"]) == (
        "Bot",
        "gpt-4o-mini",
        "auto",
        [],
    )
    assert (row["secret_key"], row["avatar_id"], row["tts_voice_id"]) == (None, None, None)


async def test_response_has_every_key_of_the_documented_response(make_assistant, org):
    body = await make_assistant(org)
    for path, keys in SEED_KEYS.items():
        assert keys <= set(at(body, path)), path


async def test_create_with_every_field_stores_them(client, org, stored):
    response = await create(client, org, FULL)
    assert response.status_code == 201, response.text
    body = response.json()
    expected_config = {
        **DEFAULT_CONFIG,
        **FULL["config"],
        "conversation": {**DEFAULT_CONFIG["conversation"], **FULL["config"]["conversation"]},
    }
    assert body["config"] == expected_config
    row = await stored(body["id"])
    assert (row["tts_model"], row["tts_voice_id"], row["stt_model"]) == ("t-1", "v-1", "s-1")
    assert (row["thread_mode"], row["suggested_messages"]) == ("continue", ["a", "b"])


async def test_generate_secret_key(client, org, stored):
    keys = []
    for _ in range(2):
        response = await create(client, org, {"name": "Bot", "generate_secret_key": True})
        assert response.status_code == 201, response.text
        secret = response.json()["secret_key"]
        assert URL_SAFE.match(secret)
        assert len(secret) >= 43
        assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) >= 32
        assert (await stored(response.json()["id"]))["secret_key"] == secret
        keys.append(secret)
    assert keys[0] != keys[1]
    response = await create(client, org, {"name": "Bot", "generate_secret_key": False})
    assert response.json()["secret_key"] is None


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({}, "name"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "generate_secret_key": "yes"}, "generate_secret_key"),
        ({"name": "x", "secret_key": "mine"}, "secret_key"),
        ({"name": "x", "id": "mine"}, "id"),
        ({"name": "x", "config": {"tts": {"voice_id": ""}}}, "config.tts.voice_id"),
        ({"name": "x", "config": {"language": "english!"}}, "config.language"),
        ({"name": "x", "config": None}, "config"),
    ],
)
async def test_invalid_create_stores_nothing(client, org, db, body, path):
    response = await create(client, org, body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "VALIDATION_FAILED"
    assert [e["path"] for e in problem["errors"]] == [path]
    assert await count_assistants(db) == 0


async def test_read_answers_the_stored_assistant(client, org, make_assistant):
    created = await make_assistant(org, **FULL)
    for org_id in (org.org_id, "c"):
        response = await client.get(
            f"/orgs/{org_id}/assistants/{created['id']}", headers=org.headers
        )
        assert response.status_code == 200, response.text
        assert response.json() == created
        assert response.headers["etag"] == '"1"'


async def test_read_after_update_shows_the_change(client, org, make_assistant):
    created = await make_assistant(org)
    url = f"/orgs/c/assistants/{created['id']}"
    patched = await client.patch(url, json={"enabled": False}, headers=org.headers)
    response = await client.get(url, headers=org.headers)
    assert response.json() == patched.json()
    assert response.json()["enabled"] is False
    assert response.headers["etag"] == '"2"'
    assert RFC3339_Z.match(response.json()["updated_at"])
    assert response.json()["updated_at"] > created["updated_at"]


async def test_created_resources_name_their_location(client, org):
    """Each 201 carries `Location`, which reads back what was created."""
    response = await client.post("/orgs/c/assistants", json={"name": "Here"}, headers=org.headers)
    assert response.headers["location"] == f"/orgs/c/assistants/{response.json()['id']}"
    created = [response]
    collection = response.headers["location"]
    children = [
        (f"{collection}/integrations", {"integration_id": "internal"}),
        (f"{collection}/actions", {"action_id": "TOOLS:HTTP_REQUEST", "name": "call"}),
    ]
    for url, body in children:
        child = await client.post(url, json=body, headers=org.headers)
        assert child.status_code == 201, child.text
        assert child.headers["location"] == f"{url}/{child.json()['id']}"
        created.append(child)
    for response in created:
        read = await client.get(response.headers["location"], headers=org.headers)
        assert read.status_code == 200
        assert read.json()["id"] == response.json()["id"]
