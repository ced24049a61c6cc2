"""duplicateAssistant (docs/duplicate.md): translation to the domain use case."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.domain.duplicate import duplicate_assistant
from app.graphql.args import AssistantId, OrgId
from app.graphql.assistants import children_if_asked, node
from app.graphql.context import Info
from app.graphql.types import Assistant


@strawberry.input(description="What a duplicate copies; every field may be left out.")
class DuplicateAssistantInput:
    name: str | None = strawberry.field(
        default=None, description='1-1024 characters; null means "<name> (copy)".'
    )
    include_integrations: bool = strawberry.field(
        default=True, description="Copy the integrations."
    )
    include_actions: bool = strawberry.field(
        default=True, description="Copy the actions, in their order."
    )
    from_release: int | None = strawberry.field(
        default=None,
        description="Copy this release of the source (its number) instead of the draft; "
        "an unknown one is NOT_FOUND.",
    )


@strawberry.type
class DuplicateMutation:
    @strawberry.mutation(
        description=(
            "A new assistant (new ids, a new `secretKey`, version 1) with the source's name "
            '(by default "<name> (copy)"), enabled, avatar and config, from its draft or from '
            "one of its releases, and its integrations and actions unless excluded. Its "
            "`CREATED` revision names `duplicatedFrom`. It is a create: it needs "
            "`assistants:write` on a key not restricted to some assistants, and counts against "
            "CREATE_ASSISTANT_LIMIT."
        )
    )
    async def duplicate_assistant(
        self,
        info: Info,
        org_id: OrgId,
        assistant_id: AssistantId,
        input: Annotated[  # noqa: A002
            DuplicateAssistantInput | None,
            strawberry.argument(description="What to copy (null: everything, from the draft)."),
        ] = None,
    ) -> Assistant:
        ctx = info.context
        sent = input or DuplicateAssistantInput()
        body = {
            "name": sent.name,
            "include_integrations": sent.include_integrations,
            "include_actions": sent.include_actions,
            "from_release": sent.from_release,
        }
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await duplicate_assistant(
                tx,
                access=access,
                assistant_id=assistant_id,
                body=body,
                writer=ctx.writer,
                quota=ctx.request.app.state.creation_quota,
            )
            children = await children_if_asked(info, tx, [row])
        return node(row, ctx.settings.base_url, children)
