"""Output types. Built from the stored rows; nested children come through per-request loaders.
The assistant's history (`Assistant.revisions`, its snapshots and changes) is here too, beside
the `Assistant` that holds it, so no two modules import each other.

The config types (`Config`, `SttConfig`, `TtsConfig`, `ConversationConfig`) and `Config.from_row`
are built at import time from the declaration of the assistant's shape (app/domain/shape.py).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import strawberry
from strawberry.scalars import JSON
from strawberry.utils.str_converters import to_camel_case

from app.domain.assistants import check_page_size
from app.domain.documents import avatar_url
from app.domain.history import list_assistant_revisions
from app.domain.revisions import DUPLICATED_FROM, assistant_from_snapshot
from app.domain.shape import CONFIG, Group, Leaf, compile_builder, document_leaf, groups_of
from app.graphql.context import Info  # strawberry resolves it at runtime
from app.graphql.execution import PRELOADED_ATTRIBUTE
from app.graphql.loaders import Family
from app.graphql.pagination import PageInfo, decode_cursor, encode_cursor
from app.store.records import ActionRecord as ActionRow
from app.store.records import AssistantRecord as AssistantRow
from app.store.records import IntegrationRecord as IntegrationRow
from app.store.records import RevisionRecord as RevisionRow


@strawberry.enum(description="How a returning contact's conversation continues.")
class ThreadMode(Enum):
    NEW = strawberry.enum_value("new", description="Every conversation starts a new thread.")
    CONTINUE = strawberry.enum_value("continue", description="Continue the contact's last thread.")


@strawberry.enum(description="Which knowledge the assistant may draw on.")
class KnowledgeScope(Enum):
    ALL = strawberry.enum_value("all", description="All of the organisation's knowledge.")
    ASSISTANT = strawberry.enum_value("assistant", description="Only this assistant's knowledge.")
    NONE = strawberry.enum_value("none", description="No knowledge base.")


ENUMS: dict[str, type[Enum]] = {"ThreadMode": ThreadMode, "KnowledgeScope": KnowledgeScope}


def output_type(group: Group, types: dict[str, type]) -> type:
    """The strawberry type of a group of the declaration (app/domain/shape.py): one field per
    member, in declaration order, with the declared descriptions."""
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": __name__, "__annotations__": annotations}
    for member in group.members:
        if isinstance(member, Group):
            annotations[member.name] = types[member.graphql_type]
            namespace[member.name] = strawberry.field(description=member.field_description)
        else:
            annotations[member.name] = leaf_type(member)
            namespace[member.name] = strawberry.field(description=member.description)
    built = type(group.graphql_type, (), namespace)
    return strawberry.type(built, description=group.description)


def leaf_type(leaf: Leaf) -> Any:
    kind: Any = ENUMS[leaf.enum] if leaf.enum else list[str] if leaf.type is list else leaf.type
    return kind | None if leaf.nullable else kind


def output_leaf(leaf: Leaf) -> str:
    if leaf.enum:
        return f"{leaf.enum}(a.{leaf.column})"
    return document_leaf(leaf)


def output_group(group: Group, items: list[tuple[str, str]]) -> str:
    return f"{group.graphql_type}(" + ", ".join(f"{key}={value}" for key, value in items) + ")"


CONFIG_TYPES: dict[str, type] = {}
for _group in groups_of(CONFIG):
    CONFIG_TYPES[_group.graphql_type] = output_type(_group, CONFIG_TYPES)
# `Config.from_row(row)`: `Config(language=a.language, …, stt=SttConfig(model=a.stt_model), …)`
CONFIG_TYPES[CONFIG.graphql_type].from_row = staticmethod(  # type: ignore[attr-defined]  # a built class
    compile_builder(CONFIG, "from_row", output_leaf, output_group, {**CONFIG_TYPES, **ENUMS})
)

if TYPE_CHECKING:
    from app.graphql.releases import (
        AssistantEnvironment,
        AssistantRelease,
        AssistantReleaseConnection,
    )

    Config: TypeAlias = Any  # built from the declaration just above
else:
    Config = CONFIG_TYPES[CONFIG.graphql_type]  # (and SttConfig, TtsConfig, …)


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
    ref: str | None = strawberry.field(
        description="Name of the assistant in bundles, unique in its organisation, or null."
    )
    config: Config = strawberry.field(description=CONFIG.field_description)
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
            ref=a.ref,
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
        return info.context.loaders.converted(rows, Integration.from_row)

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
        return info.context.loaders.converted(rows, Action.from_row)

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
    ) -> AssistantRevisionConnection:
        return await revisions_of(info, str(self.id), first, after)

    # releases and environments (docs/releases.md): types and resolvers in releases.py
    @strawberry.field(description="The assistant's releases, newest first.")
    async def releases(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description="How many, 1-100 (null means 20).")
        ] = 20,
        after: Annotated[
            str | None, strawberry.argument(description="Return the releases after this cursor.")
        ] = None,
    ) -> Annotated[AssistantReleaseConnection, strawberry.lazy("app.graphql.releases")]:
        from app.graphql.releases import releases_of  # noqa: PLC0415  (it imports this module)

        return await releases_of(info, str(self.id), first, after)

    @strawberry.field(description="One release; null with a NOT_FOUND error when absent.")
    async def release(
        self,
        info: Info,
        number: Annotated[int, strawberry.argument(description="The release's number.")],
    ) -> Annotated[AssistantRelease, strawberry.lazy("app.graphql.releases")] | None:
        from app.graphql.releases import release_of  # noqa: PLC0415  (it imports this module)

        return await release_of(info, str(self.id), number)

    @strawberry.field(description="The assistant's environments (at most 10), by name.")
    async def environments(
        self, info: Info
    ) -> list[Annotated[AssistantEnvironment, strawberry.lazy("app.graphql.releases")]]:
        from app.graphql.releases import environments_of  # noqa: PLC0415  (it imports this module)

        return await environments_of(info, str(self.id))

    @strawberry.field(
        description="One environment and the release it points at; null with a NOT_FOUND "
        "error when absent."
    )
    async def environment(
        self,
        info: Info,
        name: Annotated[str, strawberry.argument(description="The environment's name.")],
    ) -> Annotated[AssistantEnvironment, strawberry.lazy("app.graphql.releases")] | None:
        from app.graphql.releases import environment_of  # noqa: PLC0415  (it imports this module)

        return await environment_of(info, str(self.id), name)


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


# -- the assistant's history (its `revisions` field) ----------------------------------------

CURSOR_KIND = "revision"


@strawberry.enum(description="What kind of change a revision records.")
class ChangeType(Enum):
    CREATED = strawberry.enum_value("created", description="The assistant was created.")
    UPDATED = strawberry.enum_value("updated", description="Fields were updated.")
    SECRET_KEY_ROTATED = strawberry.enum_value(
        "secret_key_rotated", description="A new secret key was made (values never recorded)."
    )
    RESTORED = strawberry.enum_value("restored", description="An earlier version was restored.")
    DELETED = strawberry.enum_value("deleted", description="The assistant was deleted.")
    PUBLISHED = strawberry.enum_value(
        "published",
        description="A release was published or an environment pointed at one (an event "
        "only: the draft's version is unchanged, and the history leaves it out).",
    )


@strawberry.type(description="One changed leaf: its path and its values before and after.")
class RevisionChange:
    path: str = strawberry.field(
        description="Dotted path of the leaf in GraphQL names, e.g. `config.tts.voiceId`; "
        "arrays are leaves."
    )
    from_: JSON | None = strawberry.field(name="from", description="The value before.")
    to: JSON | None = strawberry.field(description="The value after.")


def revision_changes(changes: list[dict[str, Any]]) -> list[RevisionChange]:
    return [
        RevisionChange(
            path=".".join(to_camel_case(part) for part in change["path"].split(".")),
            from_=change["from"],
            to=change["to"],
        )
        for change in changes
    ]


@strawberry.type(description="The assistant as it was at a version (never its secret key).")
class AssistantSnapshot:
    id: strawberry.ID = strawberry.field(description="Id of the assistant.")
    version: int = strawberry.field(description="The version this snapshot shows.")
    name: str = strawberry.field(description="Name at that version.")
    enabled: bool = strawberry.field(description="Whether it was enabled.")
    avatar_id: str | None = strawberry.field(description="Avatar id at that version, or null.")
    avatar_url: str | None = strawberry.field(description="Absolute URL of that avatar, or null.")
    config: Config = strawberry.field(description="Configuration at that version.")
    created_at: datetime = strawberry.field(description="When the assistant was created.")
    updated_at: datetime = strawberry.field(description="When that version was made.")


@strawberry.type(description="The assistant a duplicate was copied from, and the version copied.")
class DuplicatedFrom:
    assistant_id: strawberry.ID = strawberry.field(description="Id of the source assistant.")
    version: int = strawberry.field(
        description="The source's draft version that was copied (or that its release froze)."
    )


def duplicated_from(snapshot: dict[str, Any]) -> DuplicatedFrom | None:
    """The source a duplicate's `created` revision names (docs/duplicate.md), or None."""
    origin = snapshot.get(DUPLICATED_FROM)
    if origin is None:
        return None
    return DuplicatedFrom(
        assistant_id=strawberry.ID(origin["assistant_id"]), version=origin["version"]
    )


@strawberry.type(description="One real change of an assistant, written with the change itself.")
class AssistantRevision:
    version: int = strawberry.field(description="The version the change produced.")
    changed_at: datetime = strawberry.field(description="When it was committed.")
    change_type: ChangeType = strawberry.field(description="What kind of change it was.")
    actor_key_id: str | None = strawberry.field(
        description="Id of the API key that made it; null when made from the command line."
    )
    source: str = strawberry.field(description="Where it came from: rest, graphql, cli or bundle.")
    changes: list[RevisionChange] = strawberry.field(description="The changed leaves.")
    snapshot: AssistantSnapshot = strawberry.field(description="The assistant as it was then.")
    duplicated_from: DuplicatedFrom | None = strawberry.field(
        default=None,
        description="For the CREATED revision of a duplicate: the assistant and version copied.",
    )

    @classmethod
    def from_row(cls, row: RevisionRow, base_url: str) -> AssistantRevision:
        was = assistant_from_snapshot(row.snapshot, row.org_id)
        return cls(
            version=row.version,
            changed_at=row.changed_at,
            change_type=ChangeType(row.change_type),
            actor_key_id=row.actor_key_id,
            source=row.source,
            changes=revision_changes(row.changes),
            snapshot=AssistantSnapshot(
                id=strawberry.ID(was.id),
                version=was.version,
                name=was.name,
                enabled=was.enabled,
                avatar_id=was.avatar_id,
                avatar_url=avatar_url(base_url, was.avatar_id),
                config=Config.from_row(was),
                created_at=was.created_at,
                updated_at=was.updated_at,
            ),
            duplicated_from=duplicated_from(row.snapshot),
        )


@strawberry.type(description="A revision and its cursor.")
class AssistantRevisionEdge:
    cursor: str = strawberry.field(description="Opaque position; pass it as `after`.")
    node: AssistantRevision = strawberry.field(description="The revision.")


@strawberry.type(description="A page of an assistant's revisions, newest first.")
class AssistantRevisionConnection:
    edges: list[AssistantRevisionEdge] = strawberry.field(description="Revisions with cursors.")
    nodes: list[AssistantRevision] = strawberry.field(description="The revisions of this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and where.")
    total_count: int = strawberry.field(description="How many revisions are kept in all.")


async def revisions_of(
    info: Info, assistant_id: str, first: int | None, after: str | None
) -> AssistantRevisionConnection:
    ctx = info.context
    size = check_page_size(20 if first is None else first, "first")
    before = None if after is None else decode_cursor(CURSOR_KIND, after)
    access = ctx.principal  # the root field that gave this assistant authenticated the caller
    assert access is not None
    async with ctx.db.read() as tx:
        rows, total = await list_assistant_revisions(
            tx,
            access=access,
            assistant_id=assistant_id,
            before_version=before,
            limit=size + 1,
            read_already=True,
        )
    edges = [
        AssistantRevisionEdge(
            cursor=encode_cursor(CURSOR_KIND, row.version),
            node=AssistantRevision.from_row(row, ctx.settings.base_url),
        )
        for row in rows[:size]
    ]
    return AssistantRevisionConnection(
        edges=edges,
        nodes=[edge.node for edge in edges],
        page_info=PageInfo(
            has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
        ),
        total_count=total,
    )
