"""`POST /orgs/{org_id}/assistants/{assistant_id}/duplicate` (docs/duplicate.md)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain.duplicate import duplicate_assistant
from app.rest.common import (
    assistant_documents,
    etag,
    json_response,
    org_transaction,
    read_json,
    settings_of,
    writer_of,
)


async def duplicate(request: Request) -> Response:
    settings = settings_of(request)
    async with org_transaction(request, write=True) as (tx, access):
        body: Any = await read_json(request) if await request.body() else None
        row = await duplicate_assistant(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            body=body,
            writer=writer_of(request),
            quota=request.app.state.creation_quota,
        )
        [document] = await assistant_documents(tx, [row], settings.base_url)
    # the new assistant's own address, beside its source's
    location = f"/orgs/{request.path_params['org_id']}/assistants/{row.id}"
    return json_response(document, 201, {"Location": location, "ETag": etag(row)})


routes = [
    Route("/orgs/{org_id}/assistants/{assistant_id}/duplicate", duplicate, methods=["POST"]),
]
