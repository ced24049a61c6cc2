"""applyBundle (docs/bundles.md): the same use case as `POST /orgs/{org_id}/bundles/apply`."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app.domain.bundles import apply_bundle
from app.graphql.args import OrgId
from app.graphql.context import Info


@strawberry.type
class BundleMutation:
    @strawberry.mutation(
        description=(
            'Compare a bundle (`{kind: "assistants-api/bundle", version: 1, assistants}`, '
            "docs/bundles.md) with the organisation and answer the plan: per assistant "
            "`create`, `update` (leaf changes in the revisions' format), `unchanged`, and with "
            "`prune` `delete` for assistants with a ref not in the bundle. Unless `dryRun`, "
            "the plan is applied, all or nothing. Needs `assistants:write` on a key that is "
            "not restricted to some assistants; `${env:NAME}` is refused here (command line "
            "only)."
        ),
        graphql_type=JSON,
    )
    async def apply_bundle(
        self,
        info: Info,
        org_id: OrgId,
        bundle: Annotated[JSON, strawberry.argument(description="The bundle document.")],
        dry_run: Annotated[
            bool, strawberry.argument(description="Answer the plan only; nothing is written.")
        ] = False,
        prune: Annotated[
            bool,
            strawberry.argument(
                description="Delete the organisation's assistants whose ref is not in the bundle."
            ),
        ] = False,
    ) -> Any:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            return await apply_bundle(
                tx,
                access=access,
                document=bundle,
                writer=dataclasses.replace(ctx.writer, source="bundle"),
                default_model=ctx.settings.default_model,
                dry_run=dry_run,
                prune=prune,
                quota=ctx.request.app.state.creation_quota,
            )
