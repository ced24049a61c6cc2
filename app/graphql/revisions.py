"""restoreAssistantRevision (the history's types and `Assistant.revisions` are in types.py)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.domain.assistants import restore_revision
from app.graphql.args import AssistantId, OrgId
from app.graphql.context import Info
from app.graphql.types import Assistant


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
