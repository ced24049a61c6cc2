"""The cases of the update rules shared by the REST and GraphQL tests of create, update and
read, spelt as REST spells them (snake_case; GraphQL tests convert them with
`tests.helpers.graphql_operations.to_input`), and the formats an answer's values must match."""

from __future__ import annotations

import re
from typing import Any

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")

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

# The columns every change moves (compare the rest with `without(row, *VOLATILE)`).
VOLATILE = ("version", "updated_at")


def without(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The row without those keys."""
    return {k: v for k, v in row.items() if k not in keys}
