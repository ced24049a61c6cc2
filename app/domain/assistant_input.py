"""The one patch model of an assistant and its mapping to columns.

Absent, null and a value stay three things: fields default to an unset sentinel that pydantic
never validates, `exclude_unset` reads only what was sent, `NotNull` refuses null where a
field may not be cleared, and nested objects merge because each leaf maps to its own column.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from app.domain.fields import (
    UNSET,
    Identifier,
    Input,
    Instructions,
    KnowledgeScope,
    Language,
    ModelName,
    Name,
    NotNull,
    Ref,
    ShortMessage,
    SuggestedMessage,
    ThreadMode,
    TimeZone,
)
from app.domain.shape import LEAVES


class SttPatch(Input):
    model: ModelName | None = UNSET


class TtsPatch(Input):
    model: ModelName | None = UNSET
    voice_id: ModelName | None = UNSET


class ConversationPatch(Input):
    thread_mode: Annotated[ThreadMode, NotNull] = UNSET
    enable_memories: Annotated[bool, NotNull] = UNSET
    enable_transfer_to_human_tool: Annotated[bool, NotNull] = UNSET
    welcome_banner: ShortMessage | None = UNSET
    suggested_messages: Annotated[list[SuggestedMessage], NotNull, Field(max_length=20)] = UNSET
    auto_intro_message: ShortMessage | None = UNSET
    enable_end_conversation_tool: Annotated[bool, NotNull] = UNSET
    enable_block_contact_tool: Annotated[bool, NotNull] = UNSET
    enable_private_chats: Annotated[bool, NotNull] = UNSET
    enable_auto_resolve: Annotated[bool, NotNull] = UNSET
    enable_auto_follow_ups: Annotated[bool, NotNull] = UNSET
    enable_auto_csat: Annotated[bool, NotNull] = UNSET
    enable_update_contact_tool: Annotated[bool, NotNull] = UNSET


class ConfigPatch(Input):
    language: Annotated[Language, NotNull] = UNSET
    model: Annotated[ModelName, NotNull] = UNSET
    instructions: Annotated[Instructions, NotNull] = UNSET
    knowledge_scope: Annotated[KnowledgeScope, NotNull] = UNSET
    timezone: Annotated[TimeZone, NotNull] = UNSET
    stt: Annotated[SttPatch, NotNull] = UNSET
    tts: Annotated[TtsPatch, NotNull] = UNSET
    conversation: Annotated[ConversationPatch, NotNull] = UNSET


class AssistantPatch(Input):
    """Body of `PATCH /orgs/{org_id}/assistants/{id}` and of `UpdateAssistantInput`."""

    name: Annotated[Name, NotNull] = UNSET
    enabled: Annotated[bool, NotNull] = UNSET
    avatar_id: Identifier | None = UNSET
    ref: Ref | None = UNSET  # unique in the organisation (docs/bundles.md); null clears it
    config: Annotated[ConfigPatch, NotNull] = UNSET


class AssistantCreate(AssistantPatch):
    """Body of `POST /orgs/{org_id}/assistants`: only `name` is required."""

    name: Annotated[Name, NotNull]
    generate_secret_key: Annotated[bool, NotNull] = False


def column_values(sent: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """Flattens the keys a client sent into {column: value}: the merge of rules 1 to 3."""
    values: dict[str, Any] = {}
    for key, value in sent.items():
        path = (*prefix, key)
        column = LEAVES.get(path)
        if column is not None:
            values[column] = value
        elif isinstance(value, dict):
            values.update(column_values(value, path))
    return values
