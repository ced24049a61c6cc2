"""`GET /orgs/{org_id}/audit-log`: the organisation's audit log, newest first (docs/audit-log.md).
Nothing in the API changes or deletes an entry."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain.audit import entry_document
from app.domain.audit_log import AuditFilter, count_audit_log, list_audit_log, parse_instant
from app.domain.errors import FieldError, ValidationFailed
from app.rest.common import json_response, org_transaction, page_params, pagination_headers

TEXT_FILTERS = ("actor_key_id", "action", "resource_id")


def query_of(request: Request) -> tuple[int, int, AuditFilter]:
    """(page, take, criteria) of the query; 400 naming each parameter that is not valid."""
    errors: list[FieldError] = []
    try:
        page, take = page_params(request)
    except ValidationFailed as exc:
        page, take, errors = 1, 1, list(exc.fields)
    criteria = _criteria(request, errors)
    if errors:
        names = ", ".join(str(e.path[0]) for e in errors)
        raise ValidationFailed(f"invalid query parameters: {names}", errors)
    return page, take, criteria


def _criteria(request: Request, errors: list[FieldError]) -> AuditFilter:
    params = request.query_params
    values: dict[str, Any] = {}
    for name in TEXT_FILTERS:
        value = params.get(name)
        if value is not None and not 1 <= len(value) <= 200:
            errors.append(FieldError((name,), "must be 1-200 characters"))
        values[name] = value
    for name in ("since", "until"):
        value = params.get(name)
        try:
            values[name] = None if value is None else parse_instant(value, name)
        except ValidationFailed as exc:
            errors += exc.fields
    return AuditFilter(**values)


async def list_(request: Request) -> Response:
    page, take, criteria = query_of(request)
    # a write transaction: entries still pending are chained first (docs/audit-log.md)
    async with org_transaction(request, write=True) as (tx, access):
        total = await count_audit_log(tx, access=access, criteria=criteria)
        rows = await list_audit_log(
            tx, access=access, criteria=criteria, offset=(page - 1) * take, limit=take
        )
    return json_response(
        [entry_document(row) for row in rows], headers=pagination_headers(total, page, take)
    )


routes = [Route("/orgs/{org_id}/audit-log", list_, methods=["GET"])]
