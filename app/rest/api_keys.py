"""`/orgs/{org_id}/api-keys`: make, list, read and revoke keys; `…/current`, the caller's own."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain.keys import (
    count_api_keys,
    create_api_key,
    current_api_key,
    get_api_key,
    key_document,
    list_api_keys,
    revoke_api_key,
)
from app.rest.common import (
    created_response,
    json_response,
    org_transaction,
    page_params,
    pagination_headers,
    read_json,
)

COLLECTION = "/orgs/{org_id}/api-keys"
CURRENT = COLLECTION + "/current"
ITEM = COLLECTION + "/{key_id}"


async def create(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        body = await read_json(request)
        key, secret = await create_api_key(tx, access=access, body=body)
        document = {**key_document(key), "api_key": secret}  # the secret, this once
    return created_response(request, document)


async def list_(request: Request) -> Response:
    page, take = page_params(request)
    async with org_transaction(request, write=False) as (tx, access):
        total = await count_api_keys(tx, access=access)
        keys = await list_api_keys(tx, access=access, offset=(page - 1) * take, limit=take)
    return json_response(
        [key_document(key) for key in keys], headers=pagination_headers(total, page, take)
    )


async def read(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        key = await get_api_key(tx, access=access, key_id=request.path_params["key_id"])
    return json_response(key_document(key))


async def current(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        key = await current_api_key(tx, access=access)
    return json_response(key_document(key))


async def revoke(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        await revoke_api_key(tx, access=access, key_id=request.path_params["key_id"])
    return Response(status_code=204)


routes = [
    Route(COLLECTION, create, methods=["POST"]),
    Route(COLLECTION, list_, methods=["GET"]),
    Route(CURRENT, current, methods=["GET"]),  # before ITEM, which would match "current"
    Route(ITEM, read, methods=["GET"]),
    Route(ITEM, revoke, methods=["DELETE"]),
]
