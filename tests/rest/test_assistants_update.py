"""PATCH /orgs/{org_id}/assistants/{id}: CONTRACT section 4, rules 1-7 and the validation list.

The tables are shared with tests/graphql/test_update_assistant.py (same patches, snake_case).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert

from app.models import Avatar, new_id, utcnow

# An assistant with every nullable field set and every default changed, so that a test can
# see that absent keys are left alone and null clears.
FULL: dict[str, Any] = {
    "name": "Full",
    "enabled": True,
    "config": {
        "language": "en",
        "model": "m-1",
        "instructions": "be kind",
        "knowledge_scope": "assistant",
        "timezone": "Europe/Paris",
        "stt": {"model": "s-1"},
        "tts": {"model": "t-1", "voice_id": "v-1"},
        "conversation": {
            "thread_mode": "continue",
            "enable_memories": True,
            "welcome_banner": "hello",
            "suggested_messages": ["a", "b"],
            "auto_intro_message": "intro",
        },
    },
}

CONVERSATION_FLAGS = [
    "enable_memories",
    "enable_transfer_to_human_tool",
    "enable_end_conversation_tool",
    "enable_block_contact_tool",
    "enable_private_chats",
    "enable_auto_resolve",
    "enable_auto_follow_ups",
    "enable_auto_csat",
    "enable_update_contact_tool",
]
CONV = ("config", "conversation")


def nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """{"a": {"b": value}} from ("a", "b")."""
    body: Any = value
    for key in reversed(path):
        body = {key: body}
    result: dict[str, Any] = body
    return result


# Rules 1-4: (patch, {column: value} expected to change; every other column stays).
CHANGES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"name": "  Renamed  "}, {"name": "Renamed"}),
    ({"enabled": False}, {"enabled": False}),
    (nest(("config", "tts", "voice_id"), "v-2"), {"tts_voice_id": "v-2"}),
    (nest(("config", "tts", "model"), "t-2"), {"tts_model": "t-2"}),
    (nest(("config", "stt", "model"), "s-2"), {"stt_model": "s-2"}),
    (nest(("config", "language"), "pt-BR"), {"language": "pt-BR"}),
    (nest(("config", "language"), "auto"), {"language": "auto"}),
    (nest(("config", "model"), "m" * 200), {"model": "m" * 200}),
    (nest(("config", "instructions"), ""), {"instructions": ""}),
    (nest(("config", "instructions"), "i" * 100_000), {"instructions": "i" * 100_000}),
    (nest(("config", "knowledge_scope"), "none"), {"knowledge_scope": "none"}),
    (nest(("config", "timezone"), "America/Sao_Paulo"), {"timezone": "America/Sao_Paulo"}),
    (nest((*CONV, "thread_mode"), "new"), {"thread_mode": "new"}),
    (nest((*CONV, "welcome_banner"), "w" * 2000), {"welcome_banner": "w" * 2000}),
    (nest((*CONV, "auto_intro_message"), ""), {"auto_intro_message": ""}),
    (nest((*CONV, "suggested_messages"), ["z"]), {"suggested_messages": ["z"]}),
    (nest((*CONV, "suggested_messages"), []), {"suggested_messages": []}),
    (
        nest((*CONV, "suggested_messages"), ["s" * 500] * 20),
        {"suggested_messages": ["s" * 500] * 20},
    ),
    *[(nest((*CONV, f), True), {f: True}) for f in CONVERSATION_FLAGS if f != "enable_memories"],
    (nest((*CONV, "enable_memories"), False), {"enable_memories": False}),
    (
        {"config": {"tts": {"voice_id": "v-3"}, "conversation": {"enable_auto_resolve": True}}},
        {"tts_voice_id": "v-3", "enable_auto_resolve": True},
    ),
    # Rule 4: explicit null clears each nullable field.
    (nest(("config", "stt", "model"), None), {"stt_model": None}),
    (nest(("config", "tts", "model"), None), {"tts_model": None}),
    (nest(("config", "tts", "voice_id"), None), {"tts_voice_id": None}),
    (nest((*CONV, "welcome_banner"), None), {"welcome_banner": None}),
    (nest((*CONV, "auto_intro_message"), None), {"auto_intro_message": None}),
]

# Rule 4: null for a non-nullable field is a validation error naming it.
NOT_NULLABLE: list[tuple[str, ...]] = [
    ("name",),
    ("enabled",),
    ("config",),
    ("config", "stt"),
    ("config", "tts"),
    ("config", "conversation"),
    ("config", "language"),
    ("config", "model"),
    ("config", "instructions"),
    ("config", "knowledge_scope"),
    ("config", "timezone"),
    (*CONV, "thread_mode"),
    (*CONV, "suggested_messages"),
    *[(*CONV, flag) for flag in CONVERSATION_FLAGS],
]

# Rule 5: read-only keys and unknown keys at every depth.
READ_ONLY = [
    "id",
    "secret_key",
    "avatar_url",
    "deleted",
    "version",
    "integrations",
    "actions",
    "created_at",
    "updated_at",
]
UNKNOWN: list[tuple[str, ...]] = [
    ("colour",),
    ("config", "colour"),
    ("config", "stt", "colour"),
    ("config", "tts", "colour"),
    ("config", "conversation", "colour"),
]

# The validation list: (patch, the path named in the error).
INVALID: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "n" * 1025}, "name"),
    ({"name": "tab\there"}, "name"),
    ({"name": "bell\x07"}, "name"),
    ({"name": "nul\x00"}, "name"),
    (nest(("config", "language"), "english!"), "config.language"),
    (nest(("config", "language"), ""), "config.language"),
    (nest(("config", "language"), "en\x00"), "config.language"),
    (nest(("config", "timezone"), "Mars/Olympus"), "config.timezone"),
    (nest(("config", "timezone"), "Europe/Paris\x00"), "config.timezone"),
    (nest(("config", "timezone"), "localtime"), "config.timezone"),
    (nest(("config", "model"), ""), "config.model"),
    (nest(("config", "model"), "m" * 201), "config.model"),
    (nest(("config", "model"), "m\x00"), "config.model"),
    (nest(("config", "stt", "model"), ""), "config.stt.model"),
    (nest(("config", "stt", "model"), "s" * 201), "config.stt.model"),
    (nest(("config", "tts", "model"), "t" * 201), "config.tts.model"),
    (nest(("config", "tts", "voice_id"), ""), "config.tts.voice_id"),
    (nest(("config", "tts", "voice_id"), "v" * 201), "config.tts.voice_id"),
    (nest(("config", "tts", "voice_id"), "v\x00"), "config.tts.voice_id"),
    (nest(("config", "instructions"), "i" * 100_001), "config.instructions"),
    (nest(("config", "instructions"), "\x00"), "config.instructions"),
    (nest((*CONV, "welcome_banner"), "w" * 2001), "config.conversation.welcome_banner"),
    (nest((*CONV, "welcome_banner"), "\x00"), "config.conversation.welcome_banner"),
    (nest((*CONV, "auto_intro_message"), "a" * 2001), "config.conversation.auto_intro_message"),
    (nest((*CONV, "suggested_messages"), ["s"] * 21), "config.conversation.suggested_messages"),
    (nest((*CONV, "suggested_messages"), ["ok", ""]), "config.conversation.suggested_messages.1"),
    (nest((*CONV, "suggested_messages"), ["s" * 501]), "config.conversation.suggested_messages.0"),
    (nest((*CONV, "suggested_messages"), ["\x00"]), "config.conversation.suggested_messages.0"),
    (nest((*CONV, "thread_mode"), "sometimes"), "config.conversation.thread_mode"),
    (nest(("config", "knowledge_scope"), "everything"), "config.knowledge_scope"),
    ({"avatar_id": "no-such-avatar"}, "avatar_id"),
    ({"avatar_id": ""}, "avatar_id"),
    ({"avatar_id": "a\x00"}, "avatar_id"),
    # Wrong JSON types: no coercion.
    ({"name": 5}, "name"),
    ({"enabled": "true"}, "enabled"),
    (nest(("config", "instructions"), 7), "config.instructions"),
    (nest((*CONV, "enable_memories"), "false"), "config.conversation.enable_memories"),
    (nest((*CONV, "suggested_messages"), [1]), "config.conversation.suggested_messages.0"),
    (nest(("config", "tts", "voice_id"), 3), "config.tts.voice_id"),
]

# REST only: GraphQL spells enums in upper case, types objects itself and (by the GraphQL
# spec's input coercion) takes a single string as a list of one.
REST_ONLY_INVALID = [
    (nest((*CONV, "suggested_messages"), "one"), "config.conversation.suggested_messages"),
    ({"enabled": 1}, "enabled"),
    (nest(("config", "knowledge_scope"), "ALL"), "config.knowledge_scope"),
    ({"config": "x"}, "config"),
    (nest(("config", "tts"), 5), "config.tts"),
]

VOLATILE = ("version", "updated_at")


def without(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in keys}


async def insert_avatar(db: Any, org_id: str) -> str:
    avatar_id = new_id()
    values = {
        "id": avatar_id,
        "org_id": org_id,
        "content_type": "image/png",
        "size": 1,
        "sha256": "0" * 64,
        "created_at": utcnow(),
    }
    async with db.write() as tx:
        await tx.execute(insert(Avatar.__table__).values(values))
    return avatar_id


@pytest.fixture
async def full(org: Any, make_assistant: Any) -> dict[str, Any]:
    created: dict[str, Any] = await make_assistant(org, **FULL)
    return created


@pytest.fixture
def patch(client: Any, org: Any) -> Any:
    async def send(assistant_id: str, body: Any, **headers: str) -> Any:
        return await client.patch(
            f"/orgs/c/assistants/{assistant_id}", json=body, headers={**org.headers, **headers}
        )

    return send


def assert_problem(response: Any, status: int, code: str, paths: list[str]) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= {"type", "title", "status", "detail", "code", "errors"}
    assert (body["status"], body["code"]) == (status, code)
    assert [e["path"] for e in body["errors"]] == paths
    assert all(isinstance(e["message"], str) and e["message"] for e in body["errors"])


@pytest.mark.parametrize(("body", "changes"), CHANGES)
async def test_change_merges_and_bumps_version(full, patch, stored, body, changes):
    before = await stored(full["id"])
    response = await patch(full["id"], body)
    assert response.status_code == 200, response.text
    after = await stored(full["id"])
    assert without(after, *VOLATILE) == {**without(before, *VOLATILE), **changes}
    assert after["version"] == before["version"] + 1 == response.json()["version"]
    assert after["updated_at"] > before["updated_at"]
    assert after["created_at"] == before["created_at"]
    assert response.json()["created_at"] == full["created_at"]
    assert response.headers["etag"] == f'"{after["version"]}"'


@pytest.mark.parametrize(
    "body",
    [{}, {"config": {}}, {"config": {"tts": {}}}, {"name": "Full"}, FULL],
    ids=["empty", "empty-config", "empty-tts", "same-name", "everything-same"],
)
async def test_no_op_leaves_updated_at_and_version(full, patch, stored, body):
    before = await stored(full["id"])
    response = await patch(full["id"], body)
    assert response.status_code == 200, response.text
    assert response.json() == full
    assert await stored(full["id"]) == before


@pytest.mark.parametrize("path", NOT_NULLABLE, ids=".".join)
async def test_null_for_a_non_nullable_field_is_refused(full, patch, stored, path):
    before = await stored(full["id"])
    response = await patch(full["id"], nest(path, None))
    assert_problem(response, 400, "VALIDATION_FAILED", [".".join(path)])
    assert response.json()["errors"][0]["message"] == "may not be null"
    assert await stored(full["id"]) == before


@pytest.mark.parametrize("key", READ_ONLY)
async def test_read_only_key_is_refused(full, patch, stored, key):
    before = await stored(full["id"])
    response = await patch(full["id"], {key: full.get(key), "name": "Changed"})
    assert_problem(response, 400, "VALIDATION_FAILED", [key])
    assert key in response.json()["errors"][0]["message"]
    assert await stored(full["id"]) == before


@pytest.mark.parametrize("path", UNKNOWN, ids=".".join)
async def test_unknown_key_is_refused_at_every_depth(full, patch, stored, path):
    before = await stored(full["id"])
    response = await patch(full["id"], nest(path, "x"))
    assert_problem(response, 400, "VALIDATION_FAILED", [".".join(path)])
    assert "colour" in response.json()["errors"][0]["message"]
    assert await stored(full["id"]) == before


@pytest.mark.parametrize(("body", "path"), INVALID + REST_ONLY_INVALID)
async def test_invalid_value_is_refused_and_nothing_stored(full, patch, stored, body, path):
    before = await stored(full["id"])
    response = await patch(full["id"], body)
    assert_problem(response, 400, "VALIDATION_FAILED", [path])
    assert await stored(full["id"]) == before


async def test_all_or_nothing_reports_every_bad_field(full, patch, stored):
    before = await stored(full["id"])
    body = {
        "name": "Good name",
        "enabled": None,
        "config": {"tts": {"voice_id": "fine"}, "language": "english!", "colour": 1},
    }
    response = await patch(full["id"], body)
    paths = sorted(e["path"] for e in response.json()["errors"])
    assert paths == ["config.colour", "config.language", "enabled"]
    assert response.status_code == 400
    assert await stored(full["id"]) == before


async def test_avatar_of_the_same_org_is_set_and_null_clears_it(full, patch, stored, db, org):
    avatar_id = await insert_avatar(db, org.org_id)
    response = await patch(full["id"], {"avatar_id": avatar_id})
    assert response.status_code == 200, response.text
    assert response.json()["avatar_url"] == f"https://api.test/avatars/{avatar_id}"
    assert (await stored(full["id"]))["avatar_id"] == avatar_id
    response = await patch(full["id"], {"avatar_id": None})
    assert response.json()["avatar_url"] is None
    assert (await stored(full["id"]))["avatar_id"] is None


async def test_avatar_of_another_org_is_refused(full, patch, stored, db, other_org):
    avatar_id = await insert_avatar(db, other_org.org_id)
    before = await stored(full["id"])
    response = await patch(full["id"], {"avatar_id": avatar_id, "name": "x"})
    assert_problem(response, 400, "VALIDATION_FAILED", ["avatar_id"])
    assert await stored(full["id"]) == before


async def test_merge_patch_content_type_works(full, client, org, stored):
    response = await client.patch(
        f"/orgs/{org.org_id}/assistants/{full['id']}",
        content=b'{"config": {"tts": {"voice_id": "mp"}}}',
        headers={**org.headers, "content-type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    assert (await stored(full["id"]))["tts_voice_id"] == "mp"
