"""`POST /orgs/{org_id}/bundles/apply` and `GET /schemas/bundle.json` (docs/bundles.md)."""

from __future__ import annotations

import dataclasses
import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain.bundle_format import bundle_json_schema
from app.domain.bundles import apply_bundle
from app.rest.common import (
    bool_param,
    json_response,
    org_transaction,
    read_json,
    settings_of,
    writer_of,
)

# built once from the bundle's model; docs/bundle.schema.json is the same text (`make schema`)
SCHEMA = (json.dumps(bundle_json_schema(), indent=2) + "\n").encode()


async def apply(request: Request) -> Response:
    dry_run, prune = bool_param(request, "dry_run"), bool_param(request, "prune")
    async with org_transaction(request, write=True) as (tx, access):
        body = await read_json(request)
        plan = await apply_bundle(
            tx,
            access=access,
            document=body,
            writer=dataclasses.replace(writer_of(request), source="bundle"),
            default_model=settings_of(request).default_model,
            dry_run=dry_run,
            prune=prune,
            quota=request.app.state.creation_quota,
        )
    return json_response(plan)


async def schema(_request: Request) -> Response:
    """The JSON Schema of bundles, public (editors fetch it), cacheable for an hour."""
    return Response(
        SCHEMA,
        media_type="application/schema+json",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


routes = [
    Route("/orgs/{org_id}/bundles/apply", apply, methods=["POST"]),
    Route("/schemas/bundle.json", schema, methods=["GET"]),
]
