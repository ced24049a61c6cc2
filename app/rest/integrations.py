"""`/orgs/{org_id}/assistants/{assistant_id}/integrations`: the integrations of one assistant."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain.documents import integration_document
from app.domain.integrations import (
    create_integration,
    delete_integration,
    get_integration,
    list_integrations,
    update_integration,
)
from app.http.content import PATCH_TYPES
from app.rest.common import (
    created_response,
    in_turn,
    json_response,
    org_transaction,
    read_json,
    settings_of,
)

COLLECTION = "/orgs/{org_id}/assistants/{assistant_id}/integrations"
ITEM = COLLECTION + "/{integration_id}"


async def create(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        body = await read_json(request)
        row = await create_integration(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            body=body,
            storage_quota=settings_of(request).org_storage_quota,
        )
        document = integration_document(row)
    return created_response(request, document)


@in_turn
async def list_all(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        rows = await list_integrations(
            tx, access=access, assistant_id=request.path_params["assistant_id"]
        )
        documents = [integration_document(row) for row in rows]
    return json_response(documents)


async def read(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        row = await get_integration(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            integration_id=request.path_params["integration_id"],
        )
        document = integration_document(row)
    return json_response(document)


async def patch(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        body = await read_json(request, PATCH_TYPES)
        row = await update_integration(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            integration_id=request.path_params["integration_id"],
            patch=body,
            storage_quota=settings_of(request).org_storage_quota,
        )
        document = integration_document(row)
    return json_response(document)


async def delete(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        await delete_integration(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            integration_id=request.path_params["integration_id"],
        )
    return Response(status_code=204)


routes = [
    Route(COLLECTION, create, methods=["POST"]),
    Route(COLLECTION, list_all, methods=["GET"]),
    Route(ITEM, read, methods=["GET"]),
    Route(ITEM, patch, methods=["PATCH"]),
    Route(ITEM, delete, methods=["DELETE"]),
]
