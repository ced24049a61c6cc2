"""History in GraphQL: `Assistant.revisions`, `AssistantRevision.snapshot`, restore."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.utils.str_converters import to_camel_case

from app.domain.assistants import check_page_size, restore_revision
from app.domain.documents import avatar_url
from app.domain.history import list_assistant_revisions
from app.domain.revisions import assistant_from_snapshot
from app.graphql.args import AssistantId, OrgId
from app.graphql.context import Info
from app.graphql.pagination import PageInfo, decode_cursor, encode_cursor
from app.graphql.types import Assistant, Config
from app.store.records import RevisionRecord as RevisionRow

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


@strawberry.type(description="One real change of an assistant, written with the change itself.")
class AssistantRevision:
    version: int = strawberry.field(description="The version the change produced.")
    changed_at: datetime = strawberry.field(description="When it was committed.")
    change_type: ChangeType = strawberry.field(description="What kind of change it was.")
    actor_key_id: str | None = strawberry.field(
        description="Id of the API key that made it; null when made from the command line."
    )
    source: str = strawberry.field(description="Where it came from: rest, graphql or cli.")
    changes: list[RevisionChange] = strawberry.field(description="The changed leaves.")
    snapshot: AssistantSnapshot = strawberry.field(description="The assistant as it was then.")

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


@strawberry.type
class RevisionMutation:
    @strawberry.mutation(
        description=(
            "Make name, enabled, avatar and config equal to those of an earlier version, "
            "recording a `RESTORED` revision; integrations, actions and the secret key stay. "
            "An unknown version is NOT_FOUND; a stale `expectedVersion` is CONFLICT."
        )
    )
    async def restore_assistant_revision(
        self,
        info: Info,
        org_id: OrgId,
        assistant_id: AssistantId,
        version: Annotated[int, strawberry.argument(description="The version to go back to.")],
        expected_version: Annotated[
            int | None,
            strawberry.argument(
                description="Refuse (CONFLICT) unless the assistant is at this version."
            ),
        ] = None,
    ) -> Assistant:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await restore_revision(
                tx,
                access=access,
                assistant_id=assistant_id,
                version=version,
                writer=ctx.writer,
                expected_versions=None if expected_version is None else [expected_version],
            )
        return Assistant.from_row(row, ctx.settings.base_url)
