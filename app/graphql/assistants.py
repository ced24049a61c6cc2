"""`assistant`, `createAssistant`, `updateAssistant`: translation to the domain use cases."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.domain.assistants import create_assistant, get_assistant, update_assistant
from app.graphql.args import AssistantId, OrgId
from app.graphql.context import Info
from app.graphql.inputs import CreateAssistantInput, UpdateAssistantInput, sent_fields
from app.graphql.types import Assistant


@strawberry.type
class AssistantQuery:
    @strawberry.field(description="One assistant; null with a NOT_FOUND error when absent.")
    async def assistant(self, info: Info, org_id: OrgId, id: AssistantId) -> Assistant | None:  # noqa: A002
        ctx = info.context
        async with ctx.db.read() as session:
            org = await ctx.org(session, org_id)
            row = await get_assistant(session, org_id=org, assistant_id=id)
        return Assistant.from_row(row, ctx.settings.base_url)


@strawberry.type
class AssistantMutation:
    @strawberry.mutation(description="Create an assistant; defaults apply to every absent key.")
    async def create_assistant(
        self,
        info: Info,
        org_id: OrgId,
        input: Annotated[  # noqa: A002
            CreateAssistantInput, strawberry.argument(description="The new assistant.")
        ],
    ) -> Assistant:
        ctx = info.context
        async with ctx.db.write() as session:
            org = await ctx.org(session, org_id)
            row = await create_assistant(
                session,
                org_id=org,
                body=sent_fields(input),
                default_model=ctx.settings.default_model,
            )
        return Assistant.from_row(row, ctx.settings.base_url)

    @strawberry.mutation(
        description=(
            "Partial update: absent keys stay, objects merge key by key, arrays replace, "
            "null clears a nullable field. All or nothing. A stale `expectedVersion` is CONFLICT."
        )
    )
    async def update_assistant(
        self,
        info: Info,
        org_id: OrgId,
        assistant_id: AssistantId,
        input: Annotated[  # noqa: A002
            UpdateAssistantInput,
            strawberry.argument(description="The keys to change, with the merge rules above."),
        ],
        expected_version: Annotated[
            int | None,
            strawberry.argument(
                description="Refuse the update (CONFLICT) unless the assistant is at this version."
            ),
        ] = None,
    ) -> Assistant:
        ctx = info.context
        async with ctx.db.write() as session:
            org = await ctx.org(session, org_id)
            row = await update_assistant(
                session,
                org_id=org,
                assistant_id=assistant_id,
                patch=sent_fields(input),
                expected_versions=None if expected_version is None else [expected_version],
            )
        return Assistant.from_row(row, ctx.settings.base_url)
