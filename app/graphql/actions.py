"""`createAction`, `updateAction`, `deleteAction`, `reorderActions`: translation to the domain."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry import Maybe
from strawberry.scalars import JSON

from app.domain.actions import create_action, delete_action, reorder_actions, update_action
from app.graphql.args import AssistantId, OrgId
from app.graphql.context import Info
from app.graphql.inputs import sent_fields
from app.graphql.types import Action

ActionId = Annotated[strawberry.ID, strawberry.argument(description="The action's id.")]


@strawberry.input(description="A JSON-schema definition at a path of the action's input.")
class ActionDefinitionInput:
    path: str = strawberry.field(description="Path within the input, 1-1,024 characters.")
    definition: JSON = strawberry.field(description="The definition, any JSON object.")


@strawberry.input(description="An action's whole configuration; absent keys take their defaults.")
class ActionConfigInput:
    input: Maybe[JSON | None] = strawberry.field(
        description="Input of the action, any JSON object; default {}.", default=None
    )
    definitions: Maybe[list[ActionDefinitionInput] | None] = strawberry.field(
        description="At most 100 definitions; default [].", default=None
    )


@strawberry.input(description="A new action; it goes last (`position` = highest + 100).")
class CreateActionInput:
    action_id: str = strawberry.field(
        description="Kind, such as `TOOLS:HTTP_REQUEST` (1-128 characters); fixed at creation."
    )
    name: str = strawberry.field(description="1-64 characters, stored trimmed.")
    enabled: Maybe[bool | None] = strawberry.field(description="Default true.", default=None)
    instructions: Maybe[str | None] = strawberry.field(
        description='When to use it, at most 2,048 characters; default "".', default=None
    )
    connection_id: Maybe[str | None] = strawberry.field(
        description="Connection to use, 1-200 characters; default null.", default=None
    )
    config: Maybe[ActionConfigInput | None] = strawberry.field(
        description="Input and definitions; default empty.", default=None
    )


@strawberry.input(description="A partial update: absent keys stay, `config` is replaced whole.")
class UpdateActionInput:
    name: Maybe[str | None] = strawberry.field(
        description="1-64 characters, stored trimmed; may not be null.", default=None
    )
    enabled: Maybe[bool | None] = strawberry.field(description="May not be null.", default=None)
    instructions: Maybe[str | None] = strawberry.field(
        description="At most 2,048 characters; may not be null.", default=None
    )
    connection_id: Maybe[str | None] = strawberry.field(
        description="1-200 characters; null clears it.", default=None
    )
    config: Maybe[ActionConfigInput | None] = strawberry.field(
        description="Replaces the whole config; may not be null.", default=None
    )


@strawberry.input(description="Where one action goes.")
class ActionPositionInput:
    id: strawberry.ID = strawberry.field(description="An action of the assistant.")
    position: int = strawberry.field(description="Its new position, 0 to 1,000,000,000.")


@strawberry.type
class ActionMutation:
    @strawberry.mutation(
        description="Add an action to an assistant, after its other actions. An assistant "
        "holds at most 100 actions: beyond, BAD_USER_INPUT and nothing is stored."
    )
    async def create_action(
        self,
        info: Info,
        org_id: OrgId,
        assistant_id: AssistantId,
        input: Annotated[  # noqa: A002
            CreateActionInput, strawberry.argument(description="The new action.")
        ],
    ) -> Action:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await create_action(
                tx,
                access=access,
                assistant_id=assistant_id,
                body=sent_fields(input),
                storage_quota=ctx.settings.org_storage_quota,
            )
        return Action.from_row(row)

    @strawberry.mutation(
        description="Change an action; `position` changes only by `reorderActions`."
    )
    async def update_action(
        self,
        info: Info,
        org_id: OrgId,
        action_id: ActionId,
        input: Annotated[  # noqa: A002
            UpdateActionInput, strawberry.argument(description="The keys to change.")
        ],
    ) -> Action:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await update_action(
                tx,
                access=access,
                action_id=action_id,
                patch=sent_fields(input),
                storage_quota=ctx.settings.org_storage_quota,
            )
        return Action.from_row(row)

    @strawberry.mutation(description="Delete an action; returns the id of the deleted one.")
    async def delete_action(self, info: Info, org_id: OrgId, action_id: ActionId) -> strawberry.ID:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await delete_action(tx, access=access, action_id=action_id)
        return strawberry.ID(row.id)

    @strawberry.mutation(
        description="Move actions (1-25 distinct ids of this assistant); all of them, in order."
    )
    async def reorder_actions(
        self,
        info: Info,
        org_id: OrgId,
        assistant_id: AssistantId,
        positions: Annotated[
            list[ActionPositionInput],
            strawberry.argument(description="The actions to move and their new positions."),
        ],
    ) -> list[Action]:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            rows = await reorder_actions(
                tx,
                access=access,
                assistant_id=assistant_id,
                body={"positions": sent_fields(positions)},
            )
        return [Action.from_row(row) for row in rows]
