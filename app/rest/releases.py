"""`/orgs/{org_id}/assistants/{assistant_id}/releases` and `…/environments` (docs/releases.md).

A release's document is stored as JSON text when it is made and answered as it is stored; an
environment's read answers the pinned release's stored text with the release number as ETag,
and 304 to an `If-None-Match` that names it, without reading anything else.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain.documents import rfc3339
from app.domain.releases import (
    diff_release,
    get_release,
    list_environments,
    list_releases,
    pin_body,
    pin_environment,
    publish_body,
    publish_release,
    read_environment,
    remove_environment,
)
from app.rest.common import (
    if_match_versions,
    json_response,
    org_transaction,
    page_params,
    pagination_headers,
    read_json,
    settings_of,
    writer_of,
)
from app.store.records import EnvironmentRecord

JSON = "application/json"


def _raw(
    text: str | bytes, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = text.encode() if isinstance(text, str) else text
    return Response(body, status_code=status_code, headers=headers, media_type=JSON)


def _tag(number: int) -> str:
    return f'"{number}"'


def _environment_json(environment: EnvironmentRecord, document: str) -> bytes:
    """`{"name", "release", "updated_at", …the release's document}`."""
    head = orjson.dumps(
        {
            "name": environment.name,
            "release": environment.release,
            "updated_at": rfc3339(environment.updated_at),
        }
    )
    return head[:-1] + b"," + document.encode()[1:]


async def publish(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        body: Any = await read_json(request) if await request.body() else None
        environment, note = publish_body(body)
        release = await publish_release(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            writer=writer_of(request),
            base_url=settings_of(request).base_url,
            environment=environment,
            note=note,
            expected_versions=if_match_versions(request),
        )
    location = f"{request.url.path.rstrip('/')}/{release.number}"
    return _raw(release.document, 201, {"Location": location, "ETag": _tag(release.number)})


async def list_(request: Request) -> Response:
    page, take = page_params(request)
    async with org_transaction(request, write=False) as (tx, access):
        rows, total = await list_releases(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            offset=(page - 1) * take,
            limit=take,
        )
    body = "[" + ",".join(row.document for row in rows) + "]"
    return _raw(body, headers=pagination_headers(total, page, take))


async def read(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        row = await get_release(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            number=request.path_params["number"],
        )
    tag = _tag(row.number)  # a release never changes: its number is its ETag
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers={"ETag": tag})
    return _raw(row.document, headers={"ETag": tag})


async def diff(request: Request) -> Response:
    against = request.query_params.get("against") or "draft"
    async with org_transaction(request, write=False) as (tx, access):
        changes = await diff_release(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            number=request.path_params["number"],
            against=against,
            base_url=settings_of(request).base_url,
        )
    return json_response(
        {"release": request.path_params["number"], "against": against, "changes": changes}
    )


async def pin(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        number = pin_body(await read_json(request))
        environment, release = await pin_environment(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            name=request.path_params["name"],
            release=number,
            writer=writer_of(request),
            expected_releases=if_match_versions(request),
        )
    return _raw(
        _environment_json(environment, release.document),
        headers={"ETag": _tag(environment.release)},
    )


async def environments(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        listed = await list_environments(
            tx, access=access, assistant_id=request.path_params["assistant_id"]
        )
    return _raw(b"[" + b",".join(_environment_json(e, d) for e, d in listed) + b"]")


async def environment(request: Request) -> Response:
    async with org_transaction(request, write=False) as (tx, access):
        number, document = await read_environment(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            name=request.path_params["name"],
        )
    tag = _tag(number)
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers={"ETag": tag})
    return _raw(document, headers={"ETag": tag})


def _matches(header: str | None, tag: str) -> bool:
    """Whether an `If-None-Match` names this (strong) tag, weakly compared, or is `*`."""
    if header is None:
        return False
    for item in header.split(","):
        item = item.strip()
        if item == "*" or item.removeprefix("W/") == tag:
            return True
    return False


async def remove(request: Request) -> Response:
    async with org_transaction(request, write=True) as (tx, access):
        await remove_environment(
            tx,
            access=access,
            assistant_id=request.path_params["assistant_id"],
            name=request.path_params["name"],
            expected_releases=if_match_versions(request),
        )
    return Response(status_code=204)


ASSISTANT = "/orgs/{org_id}/assistants/{assistant_id}"
RELEASES = ASSISTANT + "/releases"
ENVIRONMENTS = ASSISTANT + "/environments"
routes = [
    Route(RELEASES, publish, methods=["POST"]),
    Route(RELEASES, list_, methods=["GET"]),
    Route(RELEASES + "/{number:int}", read, methods=["GET"]),
    Route(RELEASES + "/{number:int}/diff", diff, methods=["GET"]),
    Route(ENVIRONMENTS, environments, methods=["GET"]),
    Route(ENVIRONMENTS + "/{name}", environment, methods=["GET"]),
    Route(ENVIRONMENTS + "/{name}", pin, methods=["PUT"]),
    Route(ENVIRONMENTS + "/{name}", remove, methods=["DELETE"]),
]
