"""The assistant's shape, declared once: every leaf of its configuration, where it is stored.

The REST documents and snapshots (`app/domain/documents.py`), the revision leaves
(`LEAVES` below), the GraphQL output types (`app/graphql/types.py`) and the OpenAPI response
models (`app/openapi.py`) are derived from `CONFIG` at import time: the builders are compiled
into plain functions once (`compile_builder`), so a request runs the same straight-line code a
hand-written builder would. What stays written by hand, each checked leaf for leaf against
this declaration by tests/test_shape.py: the table's columns (`app/models.py`, which imports
nothing from the app) and their migration, the validation of each leaf (`ConfigPatch` in
`app/domain/assistant_input.py`), and the GraphQL input types (`app/graphql/inputs.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

REQUIRED: Any = ...  # the default of a leaf that has none (the column must be given)


@dataclass(frozen=True, slots=True)
class Leaf:
    """One setting: its name in the API (snake_case; GraphQL camel-cases it), its column."""

    name: str
    column: str
    type: type  # str, bool, or list (a list of strings)
    nullable: bool
    default: Any
    description: str  # of the GraphQL output field
    enum: str | None = None  # the GraphQL enum of a string from a fixed set (REST: the string)

    def __post_init__(self) -> None:
        assert self.name.isidentifier(), self  # compiled into source below
        assert self.column.isidentifier(), self


@dataclass(frozen=True, slots=True)
class Group:
    """A nested object of settings: its key, its GraphQL type and its OpenAPI model."""

    name: str
    graphql_type: str
    openapi_model: str
    description: str  # of the GraphQL type
    field_description: str  # of the GraphQL field that holds it
    members: tuple[Leaf | Group, ...]

    def __post_init__(self) -> None:
        assert self.name.isidentifier(), self


def _on_off(name: str, description: str) -> Leaf:
    return Leaf(name, name, bool, nullable=False, default=False, description=description)


CONFIG = Group(
    "config",
    graphql_type="Config",
    openapi_model="Config",
    description="The configuration of an assistant.",
    field_description="Language, models, voice and behaviour.",
    members=(
        Leaf("language", "language", str, False, "auto", '"auto" or a BCP 47 tag such as "pt-BR".'),
        Leaf("model", "model", str, False, REQUIRED, "The LLM model."),
        Leaf(
            "instructions", "instructions", str, False, "", "System instructions (≤100,000 chars)."
        ),
        Leaf(
            "knowledge_scope",
            "knowledge_scope",
            str,
            False,
            "all",
            "Knowledge it may use.",
            enum="KnowledgeScope",
        ),
        Leaf("timezone", "timezone", str, False, "UTC", "IANA time zone name, e.g. Europe/Paris."),
        Group(
            "stt",
            graphql_type="SttConfig",
            openapi_model="Stt",
            description="Speech-to-text settings.",
            field_description="Speech-to-text settings.",
            members=(
                Leaf(
                    "model", "stt_model", str, True, None, "Speech-to-text model, or null for none."
                ),
            ),
        ),
        Group(
            "tts",
            graphql_type="TtsConfig",
            openapi_model="Tts",
            description="Text-to-speech settings.",
            field_description="Text-to-speech settings.",
            members=(
                Leaf(
                    "model", "tts_model", str, True, None, "Text-to-speech model, or null for none."
                ),
                Leaf(
                    "voice_id", "tts_voice_id", str, True, None, "Voice of the TTS model, or null."
                ),
            ),
        ),
        Group(
            "conversation",
            graphql_type="ConversationConfig",
            openapi_model="Conversation",
            description="How conversations with the assistant behave.",
            field_description="Conversation behaviour.",
            members=(
                Leaf(
                    "thread_mode",
                    "thread_mode",
                    str,
                    False,
                    "new",
                    "New thread or continue the last.",
                    enum="ThreadMode",
                ),
                _on_off("enable_memories", "Remember facts about contacts."),
                _on_off("enable_transfer_to_human_tool", "May hand the conversation to a human."),
                Leaf(
                    "welcome_banner",
                    "welcome_banner",
                    str,
                    True,
                    None,
                    "Banner shown before chatting.",
                ),
                Leaf(
                    "suggested_messages",
                    "suggested_messages",
                    list,
                    False,
                    [],
                    "Messages offered to the contact (at most 20, 1-500 characters each).",
                ),
                Leaf(
                    "auto_intro_message",
                    "auto_intro_message",
                    str,
                    True,
                    None,
                    "Message sent when a conversation opens.",
                ),
                _on_off("enable_end_conversation_tool", "May end conversations."),
                _on_off("enable_block_contact_tool", "May block contacts."),
                _on_off("enable_private_chats", "Allows private chats."),
                _on_off("enable_auto_resolve", "Resolves idle conversations."),
                _on_off("enable_auto_follow_ups", "Sends follow-ups by itself."),
                _on_off("enable_auto_csat", "Asks for a satisfaction score."),
                _on_off("enable_update_contact_tool", "May update contacts."),
            ),
        ),
    ),
)

# The leaves of the assistant outside its configuration (their outputs are written by hand).
TOP_LEAVES = (
    Leaf("name", "name", str, False, REQUIRED, "Name, 1-1024 characters, stored trimmed."),
    Leaf("enabled", "enabled", bool, False, True, "Whether it answers contacts."),
    Leaf("avatar_id", "avatar_id", str, True, None, "Id of the avatar image, or null."),
    Leaf(
        "ref",
        "ref",
        str,
        True,
        None,
        "Name of the assistant in bundles, unique in its organisation, or null.",
    ),
)
# leaves a restore leaves alone (a restore brings back name, enabled, avatar and config)
NOT_RESTORED = frozenset({"ref"})


def leaves_of(group: Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Leaf]]:
    """(path, leaf) of every leaf under a group, in declaration order."""
    path = (*prefix, group.name)
    for member in group.members:
        if isinstance(member, Group):
            yield from leaves_of(member, path)
        else:
            yield (*path, member.name), member


def groups_of(group: Group) -> Iterator[Group]:
    """A group and every group under it, innermost first (the order to build types in)."""
    for member in group.members:
        if isinstance(member, Group):
            yield from groups_of(member)
    yield group


# Every leaf of the assistant: its path in the API and its column in the table.
LEAVES: dict[tuple[str, ...], str] = {
    **{(leaf.name,): leaf.column for leaf in TOP_LEAVES},
    **{path: leaf.column for path, leaf in leaves_of(CONFIG)},
}
COLUMN_PATHS: dict[str, tuple[str, ...]] = {column: path for path, column in LEAVES.items()}


def _expression(
    group: Group,
    leaf_expression: Callable[[Leaf], str],
    group_expression: Callable[[Group, list[tuple[str, str]]], str],
) -> str:
    items = [
        (
            member.name,
            _expression(member, leaf_expression, group_expression)
            if isinstance(member, Group)
            else leaf_expression(member),
        )
        for member in group.members
    ]
    return group_expression(group, items)


def compile_builder(
    group: Group,
    name: str,
    leaf_expression: Callable[[Leaf], str],
    group_expression: Callable[[Group, list[tuple[str, str]]], str],
    namespace: dict[str, Any],
) -> Callable[[Any], Any]:
    """`def <name>(a): return <one expression>`, compiled once from the declaration: the leaf
    and group expressions say how one leaf is read from the row `a` and how a group is built
    from its members' (key, expression) pairs; `namespace` holds the names they use."""
    source = f"def {name}(a):\n    return {_expression(group, leaf_expression, group_expression)}\n"
    scope = dict(namespace)
    exec(compile(source, f"<{name} from app/domain/shape.py>", "exec"), scope)  # noqa: S102
    built: Callable[[Any], Any] = scope[name]
    built.__doc__ = source
    return built


def document_leaf(leaf: Leaf) -> str:
    """A leaf as JSON holds it: lists copied (the row keeps its own), the rest as stored."""
    return f"list(a.{leaf.column})" if leaf.type is list else f"a.{leaf.column}"


def dict_group(_group: Group, items: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{key!r}: {value}" for key, value in items) + "}"
