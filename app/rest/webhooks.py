"""`/orgs/{org_id}/webhooks`: the organisation's webhooks, their delivery log, redelivery and
the test ping (docs/webhooks.md)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain.webhook_urls import UrlPolicy
from app.domain.webhooks import (
    count_deliveries,
    count_webhooks,
    create_test_ping,
    create_webhook,
    delete_webhook,
    delivery_document,
    get_delivery,
    get_webhook,
    list_deliveries,
    list_webhooks,
    redeliver,
    rotate_webhook_secret,
    update_webhook,
    webhook_document,
)
from app.http.content import PATCH_TYPES
from app.rest.common import (
    created_response,
    json_response,
    org_transaction,
    page_params,
    pagination_headers,
    read_json,
    settings_of,
    store_of,
)
from app.webhooks.ping import attempt_ping

COLLECTION = "/orgs/{org_id}/webhooks"
ITEM = COLLECTION + "/{webhook_id}"
ROTATE = ITEM + "/rotate-secret"
TEST = ITEM + "/test"
DELIVERIES = ITEM + "/deliveries"
DELIVERY = DELIVERIES + "/{delivery_id}"
REDELIVER = DELIVERY + "/redeliver"


def url_policy(request: Request) -> UrlPolicy:
    settings = settings_of(request)
    return UrlPolicy(settings.webhooks_allow_http, settings.webhooks_allow_private)


async def create(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        body = await read_json(request)
        webhook, secret = await create_webhook(
            tx, access=access, body=body, policy=url_policy(request)
        )
        document = {**webhook_document(webhook), "secret": secret}  # the secret, this once
    return created_response(request, document)


async def list_(request: Request) -> Response:
    page, take = page_params(request)
    async with org_transaction(request, write=False) as (tx, access):
        total = await count_webhooks(tx, access=access)
        rows = await list_webhooks(tx, access=access, offset=(page - 1) * take, limit=take)
    return json_response(
        [webhook_document(row) for row in rows], headers=pagination_headers(total, page, take)
    )


async def read(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        row = await get_webhook(tx, access=access, webhook_id=request.path_params["webhook_id"])
    return json_response(webhook_document(row))


async def patch(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        body = await read_json(request, PATCH_TYPES)
        row = await update_webhook(
            tx,
            access=access,
            webhook_id=request.path_params["webhook_id"],
            patch=body,
            policy=url_policy(request),
        )
    return json_response(webhook_document(row))


async def delete(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        await delete_webhook(tx, access=access, webhook_id=request.path_params["webhook_id"])
    return Response(status_code=204)


async def rotate(request: Request) -> Response:
    overlap = timedelta(seconds=settings_of(request).webhook_secret_overlap)
    async with org_transaction(request, write=True) as (tx, access):
        row, secret = await rotate_webhook_secret(
            tx, access=access, webhook_id=request.path_params["webhook_id"], overlap=overlap
        )
    return json_response({**webhook_document(row), "secret": secret})


async def test(request: Request) -> Response:
    """Sends a `ping` now (after the transaction that records it) and answers its attempt."""
    async with org_transaction(request, write=True) as (tx, access):
        webhook, delivery = await create_test_ping(
            tx, access=access, webhook_id=request.path_params["webhook_id"]
        )
    client: httpx.AsyncClient = request.app.state.webhook_client
    delivery = await attempt_ping(
        store_of(request), settings_of(request), client, webhook, delivery
    )
    document = delivery_document(delivery)
    return json_response({**document, "attempt": document["attempts"][-1]})


async def deliveries(request: Request) -> Response:
    page, take = page_params(request)
    status = request.query_params.get("status")
    webhook_id = request.path_params["webhook_id"]
    async with org_transaction(request, write=False) as (tx, access):
        total = await count_deliveries(tx, access=access, webhook_id=webhook_id, status=status)
        rows = await list_deliveries(
            tx,
            access=access,
            webhook_id=webhook_id,
            status=status,
            offset=(page - 1) * take,
            limit=take,
        )
    return json_response(
        [delivery_document(row) for row in rows], headers=pagination_headers(total, page, take)
    )


async def delivery(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        row = await get_delivery(
            tx,
            access=access,
            webhook_id=request.path_params["webhook_id"],
            delivery_id=request.path_params["delivery_id"],
        )
    return json_response(delivery_document(row))


async def redeliver_(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        row = await redeliver(
            tx,
            access=access,
            webhook_id=request.path_params["webhook_id"],
            delivery_id=request.path_params["delivery_id"],
        )
    return json_response(delivery_document(row), 202)


routes = [
    Route(COLLECTION, create, methods=["POST"]),
    Route(COLLECTION, list_, methods=["GET"]),
    Route(ITEM, read, methods=["GET"]),
    Route(ITEM, patch, methods=["PATCH"]),
    Route(ITEM, delete, methods=["DELETE"]),
    Route(ROTATE, rotate, methods=["POST"]),
    Route(TEST, test, methods=["POST"]),
    Route(DELIVERIES, deliveries, methods=["GET"]),
    Route(DELIVERY, delivery, methods=["GET"]),
    Route(REDELIVER, redeliver_, methods=["POST"]),
]
