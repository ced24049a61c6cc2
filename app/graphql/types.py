"""Output types. Built from the stored rows; nested children come through per-request loaders."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app.domain.documents import avatar_url
from app.graphql.context import Info  # strawberry resolves it at runtime
from app.graphql.execution import PRELOADED_ATTRIBUTE
from app.graphql.loaders import Family
from app.graphql.pagination import PageInfo
from app.models import Action as ActionRow
from app.models import Assistant as AssistantRow
from app.models import Integration as IntegrationRow

if TYPE_CHECKING:
    from app.graphql.revisions import AssistantRevisionConnection


@strawberry.enum(description="How a returning contact's conversation continues.")
class ThreadMode(Enum):
    NEW = strawberry.enum_value("new", description="Every conversation starts a new thread.")
    CONTINUE = strawberry.enum_value("continue", description="Continue the contact's last thread.")


@strawberry.enum(description="Which knowledge the assistant may draw on.")
class KnowledgeScope(Enum):
    ALL = strawberry.enum_value("all", description="All of the organisation's knowledge.")
    ASSISTANT = strawberry.enum_value("assistant", description="Only this assistant's knowledge.")
    NONE = strawberry.enum_value("none", description="No knowledge base.")


@strawberry.type(description="Speech-to-text settings.")
class SttConfig:
    model: str | None = strawberry.field(description="Speech-to-text model, or null for none.")


@strawberry.type(description="Text-to-speech settings.")
class TtsConfig:
    model: str | None = strawberry.field(description="Text-to-speech model, or null for none.")
    voice_id: str | None = strawberry.field(description="Voice of the TTS model, or null.")


@strawberry.type(description="How conversations with the assistant behave.")
class ConversationConfig:
    thread_mode: ThreadMode = strawberry.field(description="New thread or continue the last.")
    enable_memories: bool = strawberry.field(description="Remember facts about contacts.")
    enable_transfer_to_human_tool: bool = strawberry.field(
        description="May hand the conversation to a human."
    )
    welcome_banner: str | None = strawberry.field(description="Banner shown before chatting.")
    suggested_messages: list[str] = strawberry.field(
        description="Messages offered to the contact (at most 20, 1-500 characters each)."
    )
    auto_intro_message: str | None = strawberry.field(
        description="Message sent when a conversation opens."
    )
    enable_end_conversation_tool: bool = strawberry.field(description="May end conversations.")
    enable_block_contact_tool: bool = strawberry.field(description="May block contacts.")
    enable_private_chats: bool = strawberry.field(description="Allows private chats.")
    enable_auto_resolve: bool = strawberry.field(description="Resolves idle conversations.")
    enable_auto_follow_ups: bool = strawberry.field(description="Sends follow-ups by itself.")
    enable_auto_csat: bool = strawberry.field(description="Asks for a satisfaction score.")
    enable_update_contact_tool: bool = strawberry.field(description="May update contacts.")


@strawberry.type(description="The configuration of an assistant.")
class Config:
    language: str = strawberry.field(description='"auto" or a BCP 47 tag such as "pt-BR".')
    model: str = strawberry.field(description="The LLM model.")
    instructions: str = strawberry.field(description="System instructions (≤100,000 chars).")
    knowledge_scope: KnowledgeScope = strawberry.field(description="Knowledge it may use.")
    timezone: str = strawberry.field(description="IANA time zone name, e.g. Europe/Paris.")
    stt: SttConfig = strawberry.field(description="Speech-to-text settings.")
    tts: TtsConfig = strawberry.field(description="Text-to-speech settings.")
    conversation: ConversationConfig = strawberry.field(description="Conversation behaviour.")

    @classmethod
    def from_row(cls, a: AssistantRow) -> Config:
        return cls(
            language=a.language,
            model=a.model,
            instructions=a.instructions,
            knowledge_scope=KnowledgeScope(a.knowledge_scope),
            timezone=a.timezone,
            stt=SttConfig(model=a.stt_model),
            tts=TtsConfig(model=a.tts_model, voice_id=a.tts_voice_id),
            conversation=ConversationConfig(
                thread_mode=ThreadMode(a.thread_mode),
                enable_memories=a.enable_memories,
                enable_transfer_to_human_tool=a.enable_transfer_to_human_tool,
                welcome_banner=a.welcome_banner,
                suggested_messages=list(a.suggested_messages),
                auto_intro_message=a.auto_intro_message,
                enable_end_conversation_tool=a.enable_end_conversation_tool,
                enable_block_contact_tool=a.enable_block_contact_tool,
                enable_private_chats=a.enable_private_chats,
                enable_auto_resolve=a.enable_auto_resolve,
                enable_auto_follow_ups=a.enable_auto_follow_ups,
                enable_auto_csat=a.enable_auto_csat,
                enable_update_contact_tool=a.enable_update_contact_tool,
            ),
        )


@strawberry.interface(
    description=(
        "An object with an id unique across every type (Relay object identification): "
        "`node(id:)` and `nodes(ids:)` find it again by that id alone."
    )
)
class Node:
    id: strawberry.ID = strawberry.field(description="The object's id, unique across types.")


@strawberry.type(description="A channel or system the assistant is connected to.")
class Integration(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id of this integration.")
    enabled: bool = strawberry.field(description="Whether it is active.")
    integration_id: str = strawberry.field(description="Kind, a lower-case slug: `whatsapp`, …")
    assistant_id: strawberry.ID = strawberry.field(description="The assistant it belongs to.")
    connection_id: str | None = strawberry.field(description="Connection used, or null.")
    config: JSON = strawberry.field(description="Any JSON object; replaced whole on update.")
    error: str | None = strawberry.field(description="Last error, set by the server only.")
    created_at: datetime = strawberry.field(description="When it was created.")
    updated_at: datetime = strawberry.field(description="When it last changed.")

    @classmethod
    def from_row(cls, i: IntegrationRow) -> Integration:
        return cls(
            id=strawberry.ID(i.id),
            enabled=i.enabled,
            integration_id=i.integration_id,
            assistant_id=strawberry.ID(i.assistant_id),
            connection_id=i.connection_id,
            config=i.config,  # type: ignore[arg-type]  # JSON: a NewType of any JSON value
            error=i.error,
            created_at=i.created_at,
            updated_at=i.updated_at,
        )


@strawberry.type(description="A JSON-schema definition at a path of the action's input.")
class ActionDefinition:
    path: str = strawberry.field(description="Path within the input.")
    definition: JSON = strawberry.field(description="The definition, any JSON object.")


@strawberry.type(description="Configuration of an action; replaced whole on update.")
class ActionConfig:
    input: JSON = strawberry.field(description="Input of the action, any JSON object.")
    definitions: list[ActionDefinition] = strawberry.field(description="Input definitions.")


@strawberry.type(description="A tool the assistant can call, such as `TOOLS:HTTP_REQUEST`.")
class Action(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id of this action.")
    enabled: bool = strawberry.field(description="Whether it is active.")
    name: str = strawberry.field(description="Name, at most 64 characters.")
    instructions: str = strawberry.field(description="When to use it, ≤2,048 characters.")
    action_id: str = strawberry.field(description="Kind of action, fixed at creation.")
    assistant_id: strawberry.ID = strawberry.field(description="The assistant it belongs to.")
    connection_id: str | None = strawberry.field(description="Connection used, or null.")
    config: ActionConfig = strawberry.field(description="Input and definitions.")
    position: int = strawberry.field(description="Order among the actions (steps of 100).")
    created_at: datetime = strawberry.field(description="When it was created.")
    updated_at: datetime = strawberry.field(description="When it last changed.")

    @classmethod
    def from_row(cls, a: ActionRow) -> Action:
        definitions: list[Any] = a.config.get("definitions", [])
        return cls(
            id=strawberry.ID(a.id),
            enabled=a.enabled,
            name=a.name,
            instructions=a.instructions,
            action_id=a.action_id,
            assistant_id=strawberry.ID(a.assistant_id),
            connection_id=a.connection_id,
            config=ActionConfig(
                input=a.config.get("input", {}),
                definitions=[
                    ActionDefinition(path=d.get("path", ""), definition=d.get("definition", {}))
                    for d in definitions
                ],
            ),
            position=a.position,
            created_at=a.created_at,
            updated_at=a.updated_at,
        )


@strawberry.federation.type(
    description="An AI assistant: who it is, how it talks, what it may do.",
    keys=["id"],  # an Apollo Federation entity (the subgraph SDL only: see app/graphql/schema.py)
)
class Assistant(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id of the assistant.")
    name: str = strawberry.field(description="Name, 1-1024 characters, stored trimmed.")
    enabled: bool = strawberry.field(description="Whether it answers contacts.")
    deleted: bool = strawberry.field(description="Always false in what a client can see.")
    version: int = strawberry.field(
        description="Grows by one with each real change; pass it as `expectedVersion`."
    )
    secret_key: str | None = strawberry.field(
        description="Key for session hashes; null unless generated or rotated."
    )
    avatar_id: str | None = strawberry.field(description="Id of the avatar image, or null.")
    avatar_url: str | None = strawberry.field(description="Absolute URL of the avatar, or null.")
    config: Config = strawberry.field(description="Language, models, voice and behaviour.")
    created_at: datetime = strawberry.field(description="When it was created; never moves.")
    updated_at: datetime = strawberry.field(description="When it last really changed.")
    family: strawberry.Private[Family | None] = None  # (integrations, actions) when loaded

    @classmethod
    def from_row(cls, a: AssistantRow, base_url: str, family: Family | None = None) -> Assistant:
        return cls(
            id=strawberry.ID(a.id),
            name=a.name,
            enabled=a.enabled,
            deleted=a.deleted,
            version=a.version,
            secret_key=a.secret_key,
            avatar_id=a.avatar_id,
            avatar_url=avatar_url(base_url, a.avatar_id),
            config=Config.from_row(a),
            created_at=a.created_at,
            updated_at=a.updated_at,
            family=family,
        )

    @property
    def loaded_integrations(self) -> list[Integration] | None:
        """The integrations when the resolver's own transaction loaded them, else None."""
        if self.family is None:
            return None
        return [Integration.from_row(row) for row in self.family[0]]

    @property
    def loaded_actions(self) -> list[Action] | None:
        if self.family is None:
            return None
        return [Action.from_row(row) for row in self.family[1]]

    @strawberry.field(
        description="Integrations of the assistant, oldest first (at most 100).",
        graphql_type=list[Integration],
        metadata={PRELOADED_ATTRIBUTE: "loaded_integrations"},
    )
    def integrations(self, info: Info) -> Awaitable[list[Integration]] | list[Integration]:
        loaded = self.loaded_integrations  # what the executor reads itself when not None
        return self._integrations(info) if loaded is None else loaded

    async def _integrations(self, info: Info) -> list[Integration]:
        rows, _ = await info.context.loaders.children.load(str(self.id))
        return [Integration.from_row(row) for row in rows]

    @strawberry.field(
        description="Actions of the assistant, in `position` order (at most 100).",
        graphql_type=list[Action],
        metadata={PRELOADED_ATTRIBUTE: "loaded_actions"},
    )
    def actions(self, info: Info) -> Awaitable[list[Action]] | list[Action]:
        loaded = self.loaded_actions
        return self._actions(info) if loaded is None else loaded

    async def _actions(self, info: Info) -> list[Action]:
        _, rows = await info.context.loaders.children.load(str(self.id))
        return [Action.from_row(row) for row in rows]

    @strawberry.field(description="The assistant's history, newest first.")
    async def revisions(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description="How many, 1-100 (null means 20).")
        ] = 20,
        after: Annotated[
            str | None, strawberry.argument(description="Return the revisions after this cursor.")
        ] = None,
    ) -> Annotated[AssistantRevisionConnection, strawberry.lazy("app.graphql.revisions")]:
        from app.graphql.revisions import revisions_of  # noqa: PLC0415  (revisions.py imports this module)

        return await revisions_of(info, str(self.id), first, after)


@strawberry.type(description="An assistant and its cursor in a connection.")
class AssistantEdge:
    cursor: str = strawberry.field(description="Opaque position of the assistant; pass as `after`.")
    node: Assistant = strawberry.field(description="The assistant.")


@strawberry.type(description="A page of the organisation's assistants, oldest first.")
class AssistantConnection:
    edges: list[AssistantEdge] = strawberry.field(description="The assistants with their cursors.")
    nodes: list[Assistant] = strawberry.field(description="The assistants of this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and where.")
    total_count: int = strawberry.field(description="How many assistants the organisation has.")


NODE_TYPES = (Assistant, Integration, Action)  # what `node(id:)` may answer
