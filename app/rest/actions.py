"""`/orgs/{org_id}/assistants/{assistant_id}/actions`: the actions of one assistant, in order."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain.actions import (
    create_action,
    delete_action,
    get_action,
    list_actions,
    reorder_actions,
    update_action,
)
from app.domain.documents import action_document
from app.http.content import PATCH_TYPES
from app.rest.common import (
    created_response,
    in_turn,
    json_response,
    org_transaction,
    read_json,
    settings_of,
)

COLLECTION = "/orgs/{org_id}/assistants/{assistant_id}/actions"
REORDER = COLLECTION + "/reorder"
ITEM = COLLECTION + "/{action_id}"


async def create(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        body = await read_json(request)
        row = await create_action(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            body=body,
            storage_quota=settings_of(request).org_storage_quota,
        )
        document = action_document(row)
    return created_response(request, document)


@in_turn
async def list_all(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        rows = await list_actions(
            tx, access=access, assistant_id=request.path_params["assistant_id"]
        )
        documents = [action_document(row) for row in rows]
    return json_response(documents)


async def read(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        row = await get_action(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            action_id=request.path_params["action_id"],
        )
        document = action_document(row)
    return json_response(document)


async def patch(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        body = await read_json(request, PATCH_TYPES)
        row = await update_action(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            action_id=request.path_params["action_id"],
            patch=body,
            storage_quota=settings_of(request).org_storage_quota,
        )
        document = action_document(row)
    return json_response(document)


async def delete(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        await delete_action(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            action_id=request.path_params["action_id"],
        )
    return Response(status_code=204)


async def reorder(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        body = await read_json(request, PATCH_TYPES)
        rows = await reorder_actions(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            body=body,
        )
        documents = [action_document(row) for row in rows]
    return json_response(documents)


routes = [
    Route(COLLECTION, create, methods=["POST"]),
    Route(COLLECTION, list_all, methods=["GET"]),
    Route(REORDER, reorder, methods=["PATCH"]),  # before ITEM, which would match "reorder"
    Route(ITEM, read, methods=["GET"]),
    Route(ITEM, patch, methods=["PATCH"]),
    Route(ITEM, delete, methods=["DELETE"]),
]
