"""`/orgs/{org_id}/assistants/{assistant_id}/revisions`: history, one revision, restore."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain.assistants import restore_revision
from app.domain.history import get_assistant_revision, list_assistant_revisions
from app.domain.revisions import revision_document
from app.rest.common import (
    assistant_documents,
    etag,
    if_match_versions,
    in_turn,
    json_response,
    org_transaction,
    page_params,
    pagination_headers,
    settings_of,
    writer_of,
)


@in_turn
async def list_(request: Request) -> Response:
    page, take = page_params(request)
    async with org_transaction(request, write=False) as (tx, access):
        rows, total = await list_assistant_revisions(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            offset=(page - 1) * take,
            limit=take,
        )
    base_url = settings_of(request).base_url
    documents = [revision_document(row, base_url=base_url) for row in rows]
    return json_response(documents, headers=pagination_headers(total, page, take))


async def read(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        revision = await get_assistant_revision(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            version=request.path_params["version"],
        )
    base_url = settings_of(request).base_url
    return json_response(revision_document(revision, base_url=base_url, with_snapshot=True))


async def restore(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        row = await restore_revision(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            version=request.path_params["version"],
            writer=writer_of(request),
            expected_versions=if_match_versions(request),
        )
        [document] = await assistant_documents(tx, [row], settings_of(request).base_url)
    return json_response(document, headers={"ETag": etag(row)})


PREFIX = "/orgs/{org_id}/assistants/{assistant_id}/revisions"
routes = [
    Route(PREFIX, list_, methods=["GET"]),
    Route(PREFIX + "/{version:int}", read, methods=["GET"]),
    Route(PREFIX + "/{version:int}/restore", restore, methods=["POST"]),
]
