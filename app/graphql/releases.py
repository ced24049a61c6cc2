"""Releases and environments (docs/releases.md): their types, the fields `Assistant.releases`,
`release`, `environments` and `environment` resolve to (declared on `Assistant` in types.py),
and publishAssistant, pinEnvironment, removeEnvironment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
import strawberry
from strawberry.scalars import JSON

from app.domain.assistants import check_page_size
from app.domain.environment_reads import check_environments_read
from app.domain.errors import NotFound
from app.domain.releases import (
    DRAFT,
    diff_release,
    get_release,
    list_releases,
    pin_environment,
    publish_release,
    remove_environment,
)
from app.graphql.args import AssistantId, OrgId
from app.graphql.context import Info
from app.graphql.pagination import PageInfo, decode_cursor, encode_cursor
from app.graphql.types import RevisionChange, revision_changes
from app.store.records import EnvironmentRecord

CURSOR_KIND = "release"
EnvironmentName = Annotated[
    str, strawberry.argument(description="The environment's name, `[a-z][a-z0-9-]{0,31}`.")
]


@strawberry.type(
    description="An immutable, numbered release: the whole assistant as it was published."
)
class AssistantRelease:
    number: int = strawberry.field(description="1 for the first release, then one more each.")
    assistant_id: strawberry.ID = strawberry.field(description="The assistant released.")
    version: int = strawberry.field(description="The draft's version it was made from.")
    note: str | None = strawberry.field(description="The note given when it was published.")
    created_at: datetime = strawberry.field(description="When it was published.")
    created_by_key_id: str | None = strawberry.field(
        description="Id of the API key that published it; null from the command line."
    )
    assistant: JSON = strawberry.field(
        description="The assistant as the REST GETs show it (snake_case; name, enabled, "
        "avatar_url, config, integrations and actions in their order; never its secret key)."
    )

    @classmethod
    def from_document(cls, text: str) -> AssistantRelease:
        document: dict[str, Any] = orjson.loads(text)
        return cls(
            number=document["number"],
            assistant_id=strawberry.ID(document["assistant_id"]),
            version=document["version"],
            note=document["note"],
            created_at=datetime.fromisoformat(document["created_at"].replace("Z", "+00:00")),
            created_by_key_id=document["created_by_key_id"],
            assistant=document["assistant"],
        )

    @strawberry.field(
        description="What changes from `against` to this release: leaf changes in the "
        "revisions' format, integrations and actions by id (`integrations.<id>.enabled`, "
        "`actions.order`). An unknown release or environment is NOT_FOUND."
    )
    async def diff(
        self,
        info: Info,
        against: Annotated[
            str,
            strawberry.argument(
                description="`draft`, another release's number, or an environment's name."
            ),
        ] = DRAFT,
    ) -> list[RevisionChange]:
        ctx = info.context
        access = ctx.principal  # the root field that gave this release authenticated the caller
        assert access is not None
        async with ctx.db.read() as tx:
            changes = await diff_release(
                tx,
                access=access,
                assistant_id=str(self.assistant_id),
                number=self.number,
                against=against,
                base_url=ctx.settings.base_url,
            )
        return revision_changes(changes)


@strawberry.type(description="A release and its cursor.")
class AssistantReleaseEdge:
    cursor: str = strawberry.field(description="Opaque position; pass it as `after`.")
    node: AssistantRelease = strawberry.field(description="The release.")


@strawberry.type(description="A page of an assistant's releases, newest first.")
class AssistantReleaseConnection:
    edges: list[AssistantReleaseEdge] = strawberry.field(description="Releases with cursors.")
    nodes: list[AssistantRelease] = strawberry.field(description="The releases of this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and where.")
    total_count: int = strawberry.field(description="How many releases the assistant has.")


@strawberry.type(description="A named environment and the release it points at.")
class AssistantEnvironment:
    name: str = strawberry.field(description="Its name, `[a-z][a-z0-9-]{0,31}`.")
    release: AssistantRelease = strawberry.field(description="The release it points at.")
    updated_at: datetime = strawberry.field(description="When it was last pointed.")

    @classmethod
    def of(cls, environment: EnvironmentRecord, document: str) -> AssistantEnvironment:
        return cls(
            name=environment.name,
            release=AssistantRelease.from_document(document),
            updated_at=environment.updated_at,
        )


# -- the fields of Assistant (declared in types.py) ------------------------------------------


async def releases_of(
    info: Info, assistant_id: str, first: int | None, after: str | None
) -> AssistantReleaseConnection:
    ctx = info.context
    size = check_page_size(20 if first is None else first, "first")
    before = None if after is None else decode_cursor(CURSOR_KIND, after)
    access = ctx.principal
    assert access is not None
    async with ctx.db.read() as tx:
        rows, total = await list_releases(
            tx,
            access=access,
            assistant_id=assistant_id,
            before_number=before,
            limit=size + 1,
            read_already=True,
        )
    edges = [
        AssistantReleaseEdge(
            cursor=encode_cursor(CURSOR_KIND, row.number),
            node=AssistantRelease.from_document(row.document),
        )
        for row in rows[:size]
    ]
    return AssistantReleaseConnection(
        edges=edges,
        nodes=[edge.node for edge in edges],
        page_info=PageInfo(
            has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
        ),
        total_count=total,
    )


async def release_of(info: Info, assistant_id: str, number: int) -> AssistantRelease:
    ctx = info.context
    access = ctx.principal
    assert access is not None
    async with ctx.db.read() as tx:
        row = await get_release(
            tx, access=access, assistant_id=assistant_id, number=number, read_already=True
        )
    return AssistantRelease.from_document(row.document)


async def environments_of(info: Info, assistant_id: str) -> list[AssistantEnvironment]:
    """Batched: the environments of every assistant of the answer in one statement (loaders)."""
    ctx = info.context
    access = ctx.principal
    assert access is not None
    check_environments_read(access=access, assistant_id=assistant_id)
    listed = await ctx.loaders.environments.load(assistant_id)
    return [AssistantEnvironment.of(environment, document) for environment, document in listed]


async def environment_of(info: Info, assistant_id: str, name: str) -> AssistantEnvironment:
    """From the same batched read as `environments_of`; an unknown name is NOT_FOUND, as the
    runtime's read answers."""
    for environment in await environments_of(info, assistant_id):
        if environment.name == name:
            return environment
    raise NotFound(f"assistant '{assistant_id}' has no environment '{name}'")


# -- mutations --------------------------------------------------------------------------------


@strawberry.type
class ReleaseMutation:
    @strawberry.mutation(
        description="Publish the draft as it is now as the next release; with `environment`, "
        "point that environment at it. Emits a PUBLISHED event; the draft's version does not "
        "change. A stale `expectedVersion` is CONFLICT."
    )
    async def publish_assistant(
        self,
        info: Info,
        org_id: OrgId,
        assistant_id: AssistantId,
        environment: Annotated[
            str | None,
            strawberry.argument(description="An environment to point at the new release."),
        ] = None,
        note: Annotated[
            str | None, strawberry.argument(description="A note, at most 1024 characters.")
        ] = None,
        expected_version: Annotated[
            int | None,
            strawberry.argument(
                description="Refuse (CONFLICT) unless the assistant is at this version."
            ),
        ] = None,
    ) -> AssistantRelease:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            release = await publish_release(
                tx,
                access=access,
                assistant_id=assistant_id,
                writer=ctx.writer,
                base_url=ctx.settings.base_url,
                environment=environment,
                note=note,
                expected_versions=None if expected_version is None else [expected_version],
            )
        return AssistantRelease.from_document(release.document)

    @strawberry.mutation(
        description="Point an environment at a release (promote or roll back), making the "
        "environment if new (at most 10 per assistant). Emits a PUBLISHED event. An unknown "
        "release is NOT_FOUND; a stale `expectedRelease` is CONFLICT."
    )
    async def pin_environment(
        self,
        info: Info,
        org_id: OrgId,
        assistant_id: AssistantId,
        environment: EnvironmentName,
        release: Annotated[int, strawberry.argument(description="The release's number.")],
        expected_release: Annotated[
            int | None,
            strawberry.argument(
                description="Refuse (CONFLICT) unless the environment points at this release."
            ),
        ] = None,
    ) -> AssistantEnvironment:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            pinned, row = await pin_environment(
                tx,
                access=access,
                assistant_id=assistant_id,
                name=environment,
                release=release,
                writer=ctx.writer,
                expected_releases=None if expected_release is None else [expected_release],
            )
        return AssistantEnvironment.of(pinned, row.document)

    @strawberry.mutation(
        description="Remove an environment (its releases stay); true once removed. An "
        "unknown environment is NOT_FOUND."
    )
    async def remove_environment(
        self,
        info: Info,
        org_id: OrgId,
        assistant_id: AssistantId,
        environment: EnvironmentName,
    ) -> bool:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            await remove_environment(tx, access=access, assistant_id=assistant_id, name=environment)
        return True
