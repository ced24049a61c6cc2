"""An assistant worth duplicating (every kind of content, children in a non-trivial order), and
the answer a duplicate of it must give (docs/duplicate.md)."""

from __future__ import annotations

from typing import Any

import httpx

from app.store import Store
from tests.helpers.factories import Org
from tests.helpers.rows import insert_avatar

CONFIG = {
    "language": "pt-BR",
    "instructions": "Be kind.",
    "timezone": "Europe/Paris",
    "knowledge_scope": "assistant",
    "stt": {"model": "whisper-1"},
    "tts": {"model": "tts-1", "voice_id": "v1"},
    "conversation": {
        "thread_mode": "continue",
        "enable_memories": True,
        "welcome_banner": "Hello",
        "suggested_messages": ["Hi", "Help"],
        "enable_auto_csat": True,
    },
}
ACTIONS = [
    {
        "action_id": "TOOLS:HTTP_REQUEST",
        "name": "first",
        "instructions": "call it",
        "connection_id": "conn-a",
        "config": {
            "input": {"url": "https://x.test"},
            "definitions": [{"path": "url", "definition": {"type": "string"}}],
        },
    },
    {"action_id": "TOOLS:SEND_EMAIL", "name": "second", "enabled": False},
    {"action_id": "TOOLS:HTTP_REQUEST", "name": "third"},
]


async def make_source(
    client: httpx.AsyncClient, db: Store, org: Org, name: str = "Support"
) -> dict[str, Any]:
    """An assistant with a secret key, an avatar, a config away from the defaults, two
    integrations and three actions (reordered: third, first, second), at version 2; its GET."""
    avatar_id = await insert_avatar(db, org.org_id)
    body = {
        "name": "Draft",
        "enabled": False,
        "avatar_id": avatar_id,
        "generate_secret_key": True,
        "config": CONFIG,
    }
    created = await client.post("/orgs/c/assistants", json=body, headers=org.headers)
    assert created.status_code == 201, created.text
    base = f"/orgs/c/assistants/{created.json()['id']}"
    for integration in (
        {"integration_id": "whatsapp", "connection_id": "conn-1", "config": {"k": [1, 2]}},
        {"integration_id": "slack", "enabled": False},
    ):
        made = await client.post(f"{base}/integrations", json=integration, headers=org.headers)
        assert made.status_code == 201, made.text
    ids = []
    for action in ACTIONS:
        made = await client.post(f"{base}/actions", json=action, headers=org.headers)
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    positions = {"positions": [{"id": ids[2], "position": 50}]}
    reordered = await client.patch(f"{base}/actions/reorder", json=positions, headers=org.headers)
    assert reordered.status_code == 200, reordered.text
    renamed = await client.patch(base, json={"name": name}, headers=org.headers)
    assert renamed.status_code == 200, renamed.text
    source: dict[str, Any] = renamed.json()
    assert [a["name"] for a in source["actions"]] == ["third", "first", "second"]
    assert source["version"] == 2
    return source


def child_copies(
    originals: list[dict[str, Any]], copies: list[dict[str, Any]], assistant_id: str
) -> list[dict[str, Any]]:
    """The originals as copies must show them: their content, with the copies' ids and times."""
    assert len(originals) == len(copies)
    return [
        {
            **original,
            "id": copy["id"],
            "assistant_id": assistant_id,
            "created_at": copy["created_at"],
            "updated_at": copy["updated_at"],
        }
        for original, copy in zip(originals, copies, strict=True)
    ]


def expected_copy(source: dict[str, Any], copy: dict[str, Any], name: str) -> dict[str, Any]:
    """The whole answer of a duplicate of `source` (a GET document, or a release's frozen
    assistant), with what the server makes new taken from `copy` (and checked here)."""
    old_ids = {source["id"], *(c["id"] for c in source["integrations"] + source["actions"])}
    new_ids = {copy["id"], *(c["id"] for c in copy["integrations"] + copy["actions"])}
    assert not old_ids & new_ids
    assert len(new_ids) == 1 + len(copy["integrations"]) + len(copy["actions"])
    assert copy["secret_key"] is not None
    assert len(copy["secret_key"]) >= 43
    assert copy["secret_key"] != source.get("secret_key")
    assert copy["created_at"] == copy["updated_at"]
    return {
        **source,
        "id": copy["id"],
        "name": name,
        "deleted": False,
        "version": 1,
        "secret_key": copy["secret_key"],
        "created_at": copy["created_at"],
        "updated_at": copy["updated_at"],
        "integrations": child_copies(source["integrations"], copy["integrations"], copy["id"]),
        "actions": child_copies(source["actions"], copy["actions"], copy["id"]),
    }
