"""`/orgs/{org_id}/assistants/{assistant_id}/releases` and `…/environments` (docs/releases.md).

A release's document is stored as JSON text when it is made and answered as it is stored; an
environment's read answers the pinned release's stored text with the release number as ETag,
and 304 to an `If-None-Match` that names it, without reading anything else.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth import access_of, authorize, hash_key, required_token
from app.domain.documents import rfc3339
from app.domain.environment_reads import NOT_KNOWN, pinned_release, runtime_read
from app.domain.releases import (
    MAX_RELEASE,
    diff_release,
    get_release,
    list_environments,
    list_releases,
    pin_body,
    pin_environment,
    publish_body,
    publish_release,
    remove_environment,
)
from app.http.content import NO_STORE_HEADERS, no_store
from app.http.middleware import request_state
from app.http.origin import origin_of
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
JSON_BYTES = JSON.encode()


def _raw(
    text: str | bytes, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = text.encode() if isinstance(text, str) else text
    return no_store(Response(body, status_code=status_code, headers=headers, media_type=JSON))


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
        return no_store(Response(status_code=304, headers={"ETag": tag}))
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


async def environment(scope: Scope, receive: Receive, send: Send) -> None:
    """The runtime's read, a bare ASGI endpoint (no Request, no Response object: what a
    runtime polling many times a second costs is the stack every request pays, and this): the
    key and the pinned release in one statement, run as a lookup (no transaction), its document
    only when the client does not hold its number already. Refusals are raised as domain errors
    and rendered as in every route."""
    authorization = header = None
    for key, value in scope["headers"]:
        if key == b"authorization":
            authorization = value.decode("latin-1")
        elif key == b"if-none-match":
            header = value.decode("latin-1")
    token = required_token(authorization)
    params = scope["path_params"]
    assistant_id, name = params["assistant_id"], params["name"]
    state = scope["app"].state
    async with state.db.lookup() as tx:
        row = await runtime_read(
            tx, key_hash=hash_key(token), assistant_id=assistant_id, name=name, known=_known(header)
        )
    origin = origin_of(HTTPConnection(scope), "rest")  # for a refusal's audit entry
    access = access_of(row, state.key_usage, origin)  # 401 without a row
    assert row is not None
    request_state(scope)["principal"] = access  # for the access log and the rate limiter
    number, document = pinned_release(
        access=authorize(access, params["org_id"]), row=row, assistant_id=assistant_id, name=name
    )
    tag = _tag(number).encode()
    if document is None or _matches(header, _tag(number)):
        headers = [(b"etag", tag), *NO_STORE_HEADERS]
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    body = document.encode()
    length = str(len(body)).encode()
    headers = [(b"content-length", length), (b"content-type", JSON_BYTES), (b"etag", tag)]
    headers += NO_STORE_HEADERS
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _known(header: str | None) -> int:
    """The one release number an `If-None-Match` names (`"3"` or `W/"3"`), else NOT_KNOWN (the
    document is read, and the header compared with the tag as usual)."""
    if header is None or "," in header:
        return NOT_KNOWN
    tag = header.strip().removeprefix("W/")
    number = tag[1:-1]
    if len(tag) > 2 and tag[0] == tag[-1] == '"' and number.isascii() and number.isdigit():
        return int(number) if len(number) <= 10 and int(number) <= MAX_RELEASE else NOT_KNOWN
    return NOT_KNOWN


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


class _Endpoint:
    """An ASGI function as a route's endpoint as it is (Starlette wraps plain functions in a
    Request and a Response); `__wrapped__` as functools' wrappers say it."""

    __slots__ = ("__wrapped__",)

    def __init__(self, app: ASGIApp) -> None:
        self.__wrapped__ = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.__wrapped__(scope, receive, send)


ASSISTANT = "/orgs/{org_id}/assistants/{assistant_id}"
RELEASES = ASSISTANT + "/releases"
ENVIRONMENTS = ASSISTANT + "/environments"
# the runtime's read, first of all routes (app/main.py): it is matched before the others are tried
runtime_routes = [Route(ENVIRONMENTS + "/{name}", _Endpoint(environment), methods=["GET"])]
routes = [
    Route(RELEASES, publish, methods=["POST"]),
    Route(RELEASES, list_, methods=["GET"]),
    Route(RELEASES + "/{number:int}", read, methods=["GET"]),
    Route(RELEASES + "/{number:int}/diff", diff, methods=["GET"]),
    Route(ENVIRONMENTS, environments, methods=["GET"]),
    Route(ENVIRONMENTS + "/{name}", pin, methods=["PUT"]),
    Route(ENVIRONMENTS + "/{name}", remove, methods=["DELETE"]),
]
