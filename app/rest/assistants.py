"""`/orgs/{org_id}/assistants`: create, list, read, PATCH, delete, rotate-secret-key."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain.assistant_find import count_found, find_assistants
from app.domain.assistants import (
    count_assistants,
    create_assistant,
    delete_assistant,
    get_assistant,
    list_assistants,
    rotate_secret_key,
    update_assistant,
)
from app.http.content import PATCH_TYPES
from app.rest.assistant_find import asks_to_find, find_params
from app.rest.common import (
    assistant_documents,
    bool_param,
    created_response,
    etag,
    if_match_versions,
    in_turn,
    json_response,
    org_transaction,
    page_params,
    pagination_headers,
    read_json,
    settings_of,
    writer_of,
)


async def create(request: Request) -> Response:
    settings = settings_of(request)
    async with org_transaction(request, write=True) as (tx, access):
        body = await read_json(request)
        row = await create_assistant(
            tx,
            access=access,
            body=body,
            default_model=settings.default_model,
            writer=writer_of(request),
            quota=request.app.state.creation_quota,
        )
        [document] = await assistant_documents(tx, [row], settings.base_url)
    return created_response(request, document, {"ETag": etag(row)})


async def read(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        row = await get_assistant(
            tx, access=access, assistant_id=request.path_params["assistant_id"]
        )
        [document] = await assistant_documents(tx, [row], settings_of(request).base_url)
    return json_response(document, headers={"ETag": etag(row)})


async def patch(request: Request) -> Response:
    dry_run = bool_param(request, "dry_run")
    async with org_transaction(request, write=True) as (tx, access):
        body = await read_json(request, PATCH_TYPES)
        row = await update_assistant(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            patch=body,
            writer=writer_of(request),
            expected_versions=if_match_versions(request),
            dry_run=dry_run,
        )
        [document] = await assistant_documents(tx, [row], settings_of(request).base_url)
    return json_response(document, headers={"ETag": etag(row)})


@in_turn
async def list_(request: Request) -> Response:
    page, take = page_params(request)
    if asks_to_find(request.query_params):
        return await _found(request, page, take)
    async with org_transaction(request, write=False) as (tx, access):
        total = await count_assistants(tx, access=access)
        rows = await list_assistants(tx, access=access, offset=(page - 1) * take, limit=take)
        documents = await assistant_documents(tx, rows, settings_of(request).base_url)
    return json_response(documents, headers=pagination_headers(total, page, take))


async def _found(request: Request, page: int, take: int) -> Response:
    """The list with a filter or a sort (docs/finding-assistants.md)."""
    found, order = find_params(request.query_params)
    async with org_transaction(request, write=False) as (tx, access):
        total = await count_found(tx, access=access, found=found)
        rows = await find_assistants(
            tx, access=access, found=found, order=order, offset=(page - 1) * take, limit=take
        )
        documents = await assistant_documents(tx, rows, settings_of(request).base_url)
    return json_response(documents, headers=pagination_headers(total, page, take))


async def delete(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        await delete_assistant(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            writer=writer_of(request),
            expected_versions=if_match_versions(request),
        )
    return Response(status_code=204)


async def rotate(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        row = await rotate_secret_key(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            writer=writer_of(request),
            expected_versions=if_match_versions(request),
        )
        [document] = await assistant_documents(tx, [row], settings_of(request).base_url)
    return json_response(document, headers={"ETag": etag(row)})


routes = [
    Route("/orgs/{org_id}/assistants", create, methods=["POST"]),
    Route("/orgs/{org_id}/assistants", list_, methods=["GET"]),
    Route("/orgs/{org_id}/assistants/{assistant_id}", read, methods=["GET"]),
    Route("/orgs/{org_id}/assistants/{assistant_id}", patch, methods=["PATCH"]),
    Route("/orgs/{org_id}/assistants/{assistant_id}", delete, methods=["DELETE"]),
    Route("/orgs/{org_id}/assistants/{assistant_id}/rotate-secret-key", rotate, methods=["POST"]),
]
