"""What every REST route shares: the JSON body, the caller's organisation, the JSON answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import wraps
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from app.auth import KeyUsage, authenticate, authorize
from app.domain.access import Access
from app.domain.assistants import MAX_PAGE_SIZE
from app.domain.children_of_many import children_by_assistant
from app.domain.documents import assistant_document
from app.domain.errors import FieldError, ValidationFailed
from app.domain.revisions import Writer
from app.http.content import media_type, no_store
from app.http.errors import UnsupportedMediaType
from app.http.fairshare import FairShares
from app.http.json_body import parse_json_body
from app.http.origin import origin_of
from app.settings import Settings
from app.store import Store, Tx
from app.store.joined import store_for
from app.store.records import AssistantRecord

JSON_TYPES = ("application/json",)
MAX_PAGE = 1_000_000_000


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def store_of(request: Request) -> Store:
    """The app's store, or the request's own transaction (docs/idempotency.md)."""
    return store_for(request.scope, request.app.state.db)


async def read_json(request: Request, accepted: Sequence[str] = JSON_TYPES) -> Any:
    """The body as JSON; 415 for another content type, 400 when it does not parse."""
    sent = media_type(request.headers)
    if sent not in accepted:
        raise UnsupportedMediaType(
            f"send the body as {' or '.join(accepted)}, not '{sent or 'nothing'}'"
        )
    return parse_json_body(await request.body())


Endpoint = Callable[[Request], Awaitable[Response]]


def in_turn(endpoint: Endpoint) -> Endpoint:
    """A route whose work may be expensive (a list): it runs in its tenant's turn of the
    process's lane (app/http/fairshare.py, docs/protection.md#fair-shares-of-the-cpu)."""

    @wraps(endpoint)
    async def taking_turns(request: Request) -> Response:
        fair: FairShares = request.app.state.fair
        async with fair.turn(request.scope):
            return await endpoint(request)

    return taking_turns


def key_usage_of(request: Request) -> KeyUsage:
    usage: KeyUsage = request.app.state.key_usage
    return usage


@asynccontextmanager
async def org_transaction(request: Request, *, write: bool) -> AsyncIterator[tuple[Tx, Access]]:
    """One transaction for the request, and the caller's access to the organisation it names
    (the use cases check the scope each needs, and which assistants the key sees)."""
    store = store_of(request)
    if write:
        await request.body()  # read before the write lock is taken; cached for read_json
    async with store.write() if write else store.read() as tx:
        access = await authenticate(
            tx,
            request.headers.get("authorization"),
            key_usage_of(request),
            origin_of(request, "rest"),
        )
        request.state.principal = access  # for the access log and the rate limiter
        yield tx, authorize(access, request.path_params["org_id"])


def bool_param(request: Request, name: str) -> bool:
    """A boolean query parameter (`true`/`false`/`1`/`0`, absent is false); 400 otherwise."""
    value = request.query_params.get(name)
    if value is None or value.lower() in ("false", "0"):
        return False
    if value.lower() in ("true", "1", ""):
        return True
    raise ValidationFailed(
        f"'{name}' must be true or false", [FieldError((name,), "must be true or false")]
    )


def writer_of(request: Request) -> Writer:
    """Who writes, for the revisions (inside `org_transaction`, once the key is known)."""
    access: Access = request.state.principal
    settings = settings_of(request)
    return Writer(access.key_id, "rest", settings.revisions_keep, settings.org_storage_quota)


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer, never cached and never sniffed as another type (`no_store`)."""
    return no_store(
        Response(
            orjson.dumps(content),
            status_code=status_code,
            headers=headers,
            media_type="application/json",
        )
    )


def created_response(
    request: Request, document: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    """201 with `Location`: the new resource, under the collection the request was sent to."""
    location = f"{request.url.path.rstrip('/')}/{document['id']}"
    return json_response(document, 201, {"Location": location, **(headers or {})})


async def assistant_documents(
    tx: Tx, assistants: Sequence[AssistantRecord], base_url: str
) -> list[dict[str, Any]]:
    """The documented JSON of many assistants; their children cost one statement in all."""
    children = await children_by_assistant(tx, [a.id for a in assistants])
    integrations, actions = children.integrations, children.actions
    return [
        assistant_document(
            a,
            base_url=base_url,
            integrations=integrations.get(a.id, []),
            actions=actions.get(a.id, []),
        )
        for a in assistants
    ]


def etag(assistant: AssistantRecord) -> str:
    return f'"{assistant.version}"'


def if_match_versions(request: Request) -> list[int] | None:
    """The versions an `If-Match` header accepts; None when absent or `*`."""
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    versions = []
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith('"') and tag.endswith('"') and tag[1:-1].isdigit():
            versions.append(int(tag[1:-1]))
    return versions


def _int_param(
    request: Request, name: str, default: int, high: int
) -> tuple[int, list[FieldError]]:
    raw = request.query_params.get(name)
    if raw is None:
        return default, []
    if raw.isascii() and raw.isdigit() and len(raw) <= 10 and 1 <= int(raw) <= high:
        return int(raw), []
    return default, [FieldError((name,), f"must be an integer from 1 to {high}")]


def page_params(request: Request, default_take: int = MAX_PAGE_SIZE) -> tuple[int, int]:
    """`?page=` (from 1) and `?take=` (1-100): 400 naming each offending parameter otherwise."""
    page, page_errors = _int_param(request, "page", 1, MAX_PAGE)
    take, take_errors = _int_param(request, "take", default_take, MAX_PAGE_SIZE)
    if errors := page_errors + take_errors:
        names = ", ".join(str(e.path[0]) for e in errors)
        raise ValidationFailed(f"invalid query parameters: {names}", errors)
    return page, take


def pagination_headers(count: int, page: int, take: int) -> dict[str, str]:
    return {
        "pagination-count": str(count),
        "pagination-page": str(page),
        "pagination-take": str(take),
    }
