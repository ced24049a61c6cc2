"""Input types: every field is `Maybe[T | None]`, so absent, null and a value stay distinct.

Null is refused (or accepted) by the one patch model of the domain, never here.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from strawberry import Maybe

from app.graphql.types import KnowledgeScope, ThreadMode

REF_DESCRIPTION = (
    "Name in bundles: 1-64 characters of a-z, 0-9, '.', '_', '-', unique in the organisation"
)


@strawberry.input(description="Speech-to-text settings; absent keys are left as they are.")
class SttConfigInput:
    model: Maybe[str | None] = strawberry.field(
        description="1-200 characters; null clears it.", default=None
    )


@strawberry.input(description="Text-to-speech settings; absent keys are left as they are.")
class TtsConfigInput:
    model: Maybe[str | None] = strawberry.field(
        description="1-200 characters; null clears it.", default=None
    )
    voice_id: Maybe[str | None] = strawberry.field(
        description="1-200 characters; null clears it.", default=None
    )


@strawberry.input(description="Conversation behaviour; absent keys are left as they are.")
class ConversationConfigInput:
    thread_mode: Maybe[ThreadMode | None] = strawberry.field(
        description="NEW or CONTINUE; may not be null.", default=None
    )
    enable_memories: Maybe[bool | None] = strawberry.field(
        description="May not be null.", default=None
    )
    enable_transfer_to_human_tool: Maybe[bool | None] = strawberry.field(
        description="May not be null.", default=None
    )
    welcome_banner: Maybe[str | None] = strawberry.field(
        description="At most 2,000 characters; null clears it.", default=None
    )
    suggested_messages: Maybe[list[str] | None] = strawberry.field(
        description="Replaces the whole list: at most 20 items of 1-500 characters.", default=None
    )
    auto_intro_message: Maybe[str | None] = strawberry.field(
        description="At most 2,000 characters; null clears it.", default=None
    )
    enable_end_conversation_tool: Maybe[bool | None] = strawberry.field(
        description="May not be null.", default=None
    )
    enable_block_contact_tool: Maybe[bool | None] = strawberry.field(
        description="May not be null.", default=None
    )
    enable_private_chats: Maybe[bool | None] = strawberry.field(
        description="May not be null.", default=None
    )
    enable_auto_resolve: Maybe[bool | None] = strawberry.field(
        description="May not be null.", default=None
    )
    enable_auto_follow_ups: Maybe[bool | None] = strawberry.field(
        description="May not be null.", default=None
    )
    enable_auto_csat: Maybe[bool | None] = strawberry.field(
        description="May not be null.", default=None
    )
    enable_update_contact_tool: Maybe[bool | None] = strawberry.field(
        description="May not be null.", default=None
    )


@strawberry.input(description="Assistant configuration; objects merge key by key.")
class ConfigInput:
    language: Maybe[str | None] = strawberry.field(
        description='"auto" or a BCP 47 tag such as "en" or "pt-BR".', default=None
    )
    model: Maybe[str | None] = strawberry.field(
        description="LLM model, 1-200 characters.", default=None
    )
    instructions: Maybe[str | None] = strawberry.field(
        description="At most 100,000 characters.", default=None
    )
    knowledge_scope: Maybe[KnowledgeScope | None] = strawberry.field(
        description="ALL, ASSISTANT or NONE.", default=None
    )
    timezone: Maybe[str | None] = strawberry.field(
        description="IANA time zone name, e.g. Europe/Paris.", default=None
    )
    stt: Maybe[SttConfigInput | None] = strawberry.field(
        description="Merged key by key.", default=None
    )
    tts: Maybe[TtsConfigInput | None] = strawberry.field(
        description="Merged key by key.", default=None
    )
    conversation: Maybe[ConversationConfigInput | None] = strawberry.field(
        description="Merged key by key.", default=None
    )


@strawberry.input(description="A partial update: absent keys stay, objects merge, null clears.")
class UpdateAssistantInput:
    name: Maybe[str | None] = strawberry.field(
        description="1-1024 characters, stored trimmed; may not be null.", default=None
    )
    enabled: Maybe[bool | None] = strawberry.field(description="May not be null.", default=None)
    avatar_id: Maybe[str | None] = strawberry.field(
        description="An avatar of the same organisation; null removes it.", default=None
    )
    ref: Maybe[str | None] = strawberry.field(
        description=REF_DESCRIPTION + "; null removes it.", default=None
    )
    config: Maybe[ConfigInput | None] = strawberry.field(
        description="Merged key by key, at every depth.", default=None
    )


@strawberry.input(description="A new assistant: only `name` is required.")
class CreateAssistantInput:
    name: str = strawberry.field(description="1-1024 characters, stored trimmed.")
    enabled: Maybe[bool | None] = strawberry.field(description="Default true.", default=None)
    avatar_id: Maybe[str | None] = strawberry.field(
        description="An avatar of the same organisation.", default=None
    )
    ref: Maybe[str | None] = strawberry.field(description=REF_DESCRIPTION + ".", default=None)
    config: Maybe[ConfigInput | None] = strawberry.field(
        description="Defaults apply to every absent key.", default=None
    )
    generate_secret_key: Maybe[bool | None] = strawberry.field(
        description="Create a `secretKey` for session hashes.", default=None
    )


def sent_fields(value: Any) -> Any:
    """An input object as the snake_case mapping the domain validates: only the keys sent."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [sent_fields(item) for item in value]
    definition = getattr(value, "__strawberry_definition__", None)
    if definition is None:
        return value
    sent: dict[str, Any] = {}
    for f in definition.fields:
        raw = getattr(value, f.python_name)
        if isinstance(raw, strawberry.Some):
            sent[f.python_name] = sent_fields(raw.value)
        elif raw is not None:  # a plain (required) field
            sent[f.python_name] = sent_fields(raw)
    return sent
