"""`createIntegration`, `updateIntegration`, `deleteIntegration`: translation to the domain."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry import Maybe
from strawberry.scalars import JSON

from app.domain.integrations import create_integration, delete_integration, update_integration
from app.graphql.args import AssistantId, OrgId
from app.graphql.context import Info
from app.graphql.inputs import sent_fields
from app.graphql.types import Integration

IntegrationId = Annotated[strawberry.ID, strawberry.argument(description="The integration's id.")]


@strawberry.input(description="A new integration: only `integrationId` is required.")
class CreateIntegrationInput:
    integration_id: str = strawberry.field(
        description="Kind, a lower-case slug such as `whatsapp`; fixed at creation."
    )
    enabled: Maybe[bool | None] = strawberry.field(description="Default true.", default=None)
    connection_id: Maybe[str | None] = strawberry.field(
        description="Connection to use, 1-200 characters; default null.", default=None
    )
    config: Maybe[JSON | None] = strawberry.field(
        description="Any JSON object; default {}.", default=None
    )


@strawberry.input(description="A partial update: absent keys stay, `config` is replaced whole.")
class UpdateIntegrationInput:
    enabled: Maybe[bool | None] = strawberry.field(description="May not be null.", default=None)
    connection_id: Maybe[str | None] = strawberry.field(
        description="1-200 characters; null clears it.", default=None
    )
    config: Maybe[JSON | None] = strawberry.field(
        description="Any JSON object, replacing the whole config; may not be null.", default=None
    )


@strawberry.type
class IntegrationMutation:
    @strawberry.mutation(
        description="Add an integration to an assistant. An assistant holds at most 100 "
        "integrations: beyond, BAD_USER_INPUT and nothing is stored."
    )
    async def create_integration(
        self,
        info: Info,
        org_id: OrgId,
        assistant_id: AssistantId,
        input: Annotated[  # noqa: A002
            CreateIntegrationInput, strawberry.argument(description="The new integration.")
        ],
    ) -> Integration:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await create_integration(
                tx,
                access=access,
                assistant_id=assistant_id,
                body=sent_fields(input),
                storage_quota=ctx.settings.org_storage_quota,
            )
        return Integration.from_row(row)

    @strawberry.mutation(
        description="Change an integration; `updatedAt` moves only on a real change."
    )
    async def update_integration(
        self,
        info: Info,
        org_id: OrgId,
        integration_id: IntegrationId,
        input: Annotated[  # noqa: A002
            UpdateIntegrationInput, strawberry.argument(description="The keys to change.")
        ],
    ) -> Integration:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await update_integration(
                tx,
                access=access,
                integration_id=integration_id,
                patch=sent_fields(input),
                storage_quota=ctx.settings.org_storage_quota,
            )
        return Integration.from_row(row)

    @strawberry.mutation(description="Delete an integration; returns the id of the deleted one.")
    async def delete_integration(
        self, info: Info, org_id: OrgId, integration_id: IntegrationId
    ) -> strawberry.ID:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await delete_integration(tx, access=access, integration_id=integration_id)
        return strawberry.ID(row.id)
