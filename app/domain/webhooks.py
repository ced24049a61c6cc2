"""Webhook use cases: make, list, read, change, delete, rotate the secret; the delivery log,
redelivery and the test ping (docs/webhooks.md).

A webhook's secret is shown only in the answer that made or rotated it. After a rotation the
previous secret keeps signing until `previous_secret_until` (WEBHOOK_SECRET_OVERLAP).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError
from sqlalchemy import bindparam, delete, func, select, update

from app.domain.access import Access, Scope, requires
from app.domain.audit import record_audit
from app.domain.documents import rfc3339
from app.domain.errors import BadRequest, FieldError, NotFound, invalid_input, validation_failed
from app.domain.fields import NO_NUL, UNSET, Identifier, Input, NotNull, limits
from app.domain.webhook_events import (
    DELIVERIES,
    DELIVERY_INSERT,
    EVENT_TYPES,
    FAILED,
    NOTIFY_CHANNEL,
    PENDING,
    PING,
    WEBHOOKS,
    delivery_values,
    new_webhook_secret,
    payload_of,
)
from app.domain.webhook_urls import UrlPolicy, check_url
from app.models import Assistant, Organisation, new_id, utcnow
from app.store import Statement, Tx, in_list
from app.store.records import WebhookDeliveryRecord, WebhookRecord
from app.store.statements import insert_statement, update_parameters, update_statement

MAX_WEBHOOKS = 20  # per organisation
MAX_WEBHOOK_ASSISTANTS = 100
DELIVERY_STATUSES = ("pending", "delivered", "failed")
PING_LEASE = timedelta(minutes=5)  # the test ping is attempted by the request itself

EventType = Literal[
    "assistant.created",
    "assistant.updated",
    "assistant.secret_key_rotated",
    "assistant.restored",
    "assistant.deleted",
    "assistant.published",
]
Description = Annotated[str, limits(0, 500), NO_NUL]
Url = Annotated[str, limits(1, 2048), NO_NUL]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))]
AssistantIds = Annotated[list[Identifier], Field(min_length=1, max_length=MAX_WEBHOOK_ASSISTANTS)]


class WebhookCreate(Input):
    """Body of `POST /orgs/{org_id}/webhooks` and of `CreateWebhookInput`."""

    url: Annotated[Url, NotNull]
    description: Annotated[Description, NotNull] = ""
    event_types: EventTypes | None = None
    assistant_ids: AssistantIds | None = None
    enabled: Annotated[bool, NotNull] = True


class WebhookPatch(Input):
    """Body of `PATCH …/webhooks/{id}` and of `UpdateWebhookInput`: absent keys stay."""

    url: Annotated[Url, NotNull] = UNSET
    description: Annotated[Description, NotNull] = UNSET
    event_types: EventTypes | None = UNSET
    assistant_ids: AssistantIds | None = UNSET
    enabled: Annotated[bool, NotNull] = UNSET


def _parse(model: type[Input], body: Any) -> Any:
    if not isinstance(body, Mapping):
        raise BadRequest("the body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from None


# -- statements -------------------------------------------------------------------------------

# mypy ignore below: SQLModel's metaclass sets __table__
_ORGS = Organisation.__table__  # type: ignore[attr-defined]
_ASSISTANTS = Assistant.__table__  # type: ignore[attr-defined]
_INSERT = insert_statement(WEBHOOKS, returning=True)
_ORG_FOR_UPDATE = Statement(
    select(_ORGS.c.id).where(_ORGS.c.id == bindparam("org_id")).with_for_update()
)
_OF_ORG = WEBHOOKS.c.org_id == bindparam("org_id")
_COUNT = Statement(select(func.count()).select_from(WEBHOOKS).where(_OF_ORG))
_PAGE = Statement(
    select(WEBHOOKS)
    .where(_OF_ORG)
    .order_by(WEBHOOKS.c.created_at, WEBHOOKS.c.id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_ONE = Statement(select(WEBHOOKS).where(_OF_ORG, WEBHOOKS.c.id == bindparam("webhook_id")))
_ONE_FOR_UPDATE = Statement(_ONE.clause.with_for_update())
_DELETE_DELIVERIES = Statement(
    delete(DELIVERIES).where(DELIVERIES.c.webhook_id == bindparam("webhook_id"))
)
_DELETE = Statement(delete(WEBHOOKS).where(WEBHOOKS.c.id == bindparam("webhook_id")))
_LIVE_ASSISTANTS = Statement(
    select(_ASSISTANTS.c.id).where(
        _ASSISTANTS.c.org_id == bindparam("org_id"),
        _ASSISTANTS.c.deleted.is_(False),
        in_list(_ASSISTANTS.c.id, "ids"),
    )
)
_OF_WEBHOOK = DELIVERIES.c.webhook_id == bindparam("webhook_id")
_ANY_STATUS = bindparam("status", type_=DELIVERIES.c.status.type)
_STATUS = (_ANY_STATUS.is_(None)) | (DELIVERIES.c.status == _ANY_STATUS)
_DELIVERY_COUNT = Statement(
    select(func.count()).select_from(DELIVERIES).where(_OF_WEBHOOK, _STATUS)
)
_DELIVERY_PAGE = Statement(
    select(DELIVERIES)
    .where(_OF_WEBHOOK, _STATUS)
    .order_by(DELIVERIES.c.seq.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_DELIVERY = Statement(
    select(DELIVERIES).where(_OF_WEBHOOK, DELIVERIES.c.id == bindparam("delivery_id"))
)
_REDELIVER = Statement(
    update(DELIVERIES)
    .where(DELIVERIES.c.id == bindparam("delivery_id"))
    .values(
        status=PENDING,
        next_attempt_at=bindparam("now"),
        locked_until=None,
        updated_at=bindparam("now"),
    )
)

_NOTIFY = Statement(select(func.pg_notify(NOTIFY_CHANNEL, "")))


# -- the webhook ------------------------------------------------------------------------------


async def _unknown_assistants(tx: Tx, org_id: str, ids: list[str]) -> list[FieldError]:
    found = {row[0] for row in await tx.all(_LIVE_ASSISTANTS, {"org_id": org_id, "ids": ids})}
    return [
        FieldError(("assistant_ids", index), "no such assistant in this organisation")
        for index, assistant_id in enumerate(ids)
        if assistant_id not in found
    ]


def _unique(values: Sequence[str] | None) -> list[str] | None:
    return None if values is None else list(dict.fromkeys(values))


async def _checked_assistants(tx: Tx, org_id: str, ids: list[str] | None) -> list[str] | None:
    ids = _unique(ids)
    if ids is not None and (errors := await _unknown_assistants(tx, org_id, ids)):
        raise invalid_input(errors)
    return ids


@requires(Scope.WEBHOOKS)
async def create_webhook(
    tx: Tx, *, access: Access, body: Any, policy: UrlPolicy
) -> tuple[WebhookRecord, str]:
    """A new webhook of the caller's organisation: (its record, its secret, shown this once)."""
    data: WebhookCreate = _parse(WebhookCreate, body)
    url = await check_url(data.url, policy)
    assistant_ids = await _checked_assistants(tx, access.org_id, data.assistant_ids)
    await tx.first(_ORG_FOR_UPDATE, {"org_id": access.org_id})  # two at once: one last place
    if int(await tx.scalar(_COUNT, {"org_id": access.org_id}) or 0) >= MAX_WEBHOOKS:
        message = f"an organisation holds at most {MAX_WEBHOOKS} webhooks: delete one first"
        raise invalid_input([FieldError(("webhooks",), message)])
    secret = new_webhook_secret()
    now = utcnow()
    values = {
        "id": new_id(),
        "org_id": access.org_id,
        "url": url,
        "description": data.description,
        "event_types": _unique(data.event_types),
        "assistant_ids": assistant_ids,
        "enabled": data.enabled,
        "disabled_reason": None,
        "secret": secret,
        "previous_secret": None,
        "previous_secret_until": None,
        "failing_since": None,
        "created_at": now,
        "updated_at": now,
    }
    webhook = await tx.first(_INSERT, values, WebhookRecord)
    assert webhook is not None
    await record_audit(tx, access, "webhook.create", "webhook", webhook.id)
    return webhook, secret


@requires(Scope.WEBHOOKS)
async def count_webhooks(tx: Tx, *, access: Access) -> int:
    return int(await tx.scalar(_COUNT, {"org_id": access.org_id}) or 0)


@requires(Scope.WEBHOOKS)
async def list_webhooks(
    tx: Tx, *, access: Access, limit: int, offset: int = 0
) -> list[WebhookRecord]:
    """The organisation's webhooks, oldest first."""
    parameters = {"org_id": access.org_id, "limit": limit, "offset": offset}
    return await tx.all(_PAGE, parameters, WebhookRecord)


async def _webhook_of_org(
    tx: Tx, org_id: str, webhook_id: str, *, for_update: bool = False
) -> WebhookRecord:
    statement = _ONE_FOR_UPDATE if for_update else _ONE
    parameters = {"org_id": org_id, "webhook_id": webhook_id}
    webhook = await tx.first(statement, parameters, WebhookRecord)
    if webhook is None:
        raise NotFound(f"no webhook '{webhook_id}' in this organisation")
    return webhook


@requires(Scope.WEBHOOKS)
async def get_webhook(tx: Tx, *, access: Access, webhook_id: str) -> WebhookRecord:
    return await _webhook_of_org(tx, access.org_id, webhook_id)


async def _store(tx: Tx, webhook: WebhookRecord, values: dict[str, Any]) -> None:
    changed = {k: v for k, v in values.items() if getattr(webhook, k) != v}
    if not changed:
        return
    changed["updated_at"] = utcnow()
    statement = update_statement(WEBHOOKS, "id", tuple(sorted(changed)))
    await tx.execute(statement, update_parameters("id", webhook.id, changed))
    for column, value in changed.items():
        setattr(webhook, column, value)


@requires(Scope.WEBHOOKS)
async def update_webhook(
    tx: Tx, *, access: Access, webhook_id: str, patch: Any, policy: UrlPolicy
) -> WebhookRecord:
    """Changes what was sent; `enabled: true` clears `disabled_reason` and resumes the
    webhook's pending deliveries; `enabled: false` pauses them."""
    data: WebhookPatch = _parse(WebhookPatch, patch)
    webhook = await _webhook_of_org(tx, access.org_id, webhook_id, for_update=True)
    sent = data.model_fields_set
    values: dict[str, Any] = {}
    if "url" in sent:
        values["url"] = await check_url(data.url, policy)
    if "description" in sent:
        values["description"] = data.description
    if "event_types" in sent:
        values["event_types"] = _unique(data.event_types)
    if "assistant_ids" in sent:
        values["assistant_ids"] = await _checked_assistants(tx, access.org_id, data.assistant_ids)
    if "enabled" in sent:
        values["enabled"] = data.enabled
        if data.enabled != webhook.enabled:
            values["disabled_reason"] = None
            values["failing_since"] = None
    await _store(tx, webhook, values)
    await record_audit(tx, access, "webhook.update", "webhook", webhook.id)
    return webhook


@requires(Scope.WEBHOOKS)
async def delete_webhook(tx: Tx, *, access: Access, webhook_id: str) -> WebhookRecord:
    """Deletes the webhook and its delivery log; nothing more is sent to it."""
    webhook = await _webhook_of_org(tx, access.org_id, webhook_id, for_update=True)
    await tx.execute(_DELETE_DELIVERIES, {"webhook_id": webhook.id})
    await tx.execute(_DELETE, {"webhook_id": webhook.id})
    await record_audit(tx, access, "webhook.delete", "webhook", webhook.id)
    return webhook


@requires(Scope.WEBHOOKS)
async def rotate_webhook_secret(
    tx: Tx, *, access: Access, webhook_id: str, overlap: timedelta
) -> tuple[WebhookRecord, str]:
    """A new secret; the one it replaces keeps signing for `overlap` (both signatures)."""
    webhook = await _webhook_of_org(tx, access.org_id, webhook_id, for_update=True)
    secret = new_webhook_secret()
    now = utcnow()
    values: dict[str, Any] = {"secret": secret}
    if overlap.total_seconds() > 0:
        values |= {"previous_secret": webhook.secret, "previous_secret_until": now + overlap}
    else:
        values |= {"previous_secret": None, "previous_secret_until": None}
    await _store(tx, webhook, values)
    await record_audit(tx, access, "webhook.rotate_secret", "webhook", webhook.id)
    return webhook, secret


def webhook_document(webhook: WebhookRecord) -> dict[str, Any]:
    """The documented JSON of a webhook (never its secret)."""
    return {
        "id": webhook.id,
        "url": webhook.url,
        "description": webhook.description,
        "event_types": None if webhook.event_types is None else list(webhook.event_types),
        "assistant_ids": None if webhook.assistant_ids is None else list(webhook.assistant_ids),
        "enabled": webhook.enabled,
        "disabled_reason": webhook.disabled_reason,
        "created_at": rfc3339(webhook.created_at),
        "updated_at": rfc3339(webhook.updated_at),
    }


# -- the delivery log -------------------------------------------------------------------------


def delivery_status(status: str | None, name: str = "status") -> str | None:
    if status is None or status in DELIVERY_STATUSES:
        return status
    message = "must be one of " + ", ".join(DELIVERY_STATUSES)
    raise invalid_input([FieldError((name,), message)])


@requires(Scope.WEBHOOKS)
async def count_deliveries(
    tx: Tx, *, access: Access, webhook_id: str, status: str | None = None
) -> int:
    await _webhook_of_org(tx, access.org_id, webhook_id)
    parameters = {"webhook_id": webhook_id, "status": delivery_status(status)}
    return int(await tx.scalar(_DELIVERY_COUNT, parameters) or 0)


@requires(Scope.WEBHOOKS)
async def list_deliveries(
    tx: Tx,
    *,
    access: Access,
    webhook_id: str,
    limit: int,
    offset: int = 0,
    status: str | None = None,
) -> list[WebhookDeliveryRecord]:
    """The webhook's deliveries, newest first (of one status, when given)."""
    await _webhook_of_org(tx, access.org_id, webhook_id)
    parameters = {
        "webhook_id": webhook_id,
        "status": delivery_status(status),
        "limit": limit,
        "offset": offset,
    }
    return await tx.all(_DELIVERY_PAGE, parameters, WebhookDeliveryRecord)


async def _delivery(
    tx: Tx, access: Access, webhook_id: str, delivery_id: str
) -> WebhookDeliveryRecord:
    await _webhook_of_org(tx, access.org_id, webhook_id)
    parameters = {"webhook_id": webhook_id, "delivery_id": delivery_id}
    delivery = await tx.first(_DELIVERY, parameters, WebhookDeliveryRecord)
    if delivery is None:
        raise NotFound(f"no delivery '{delivery_id}' of this webhook")
    return delivery


@requires(Scope.WEBHOOKS)
async def get_delivery(
    tx: Tx, *, access: Access, webhook_id: str, delivery_id: str
) -> WebhookDeliveryRecord:
    return await _delivery(tx, access, webhook_id, delivery_id)


@requires(Scope.WEBHOOKS)
async def redeliver(
    tx: Tx, *, access: Access, webhook_id: str, delivery_id: str
) -> WebhookDeliveryRecord:
    """Sends the delivery again, as soon as possible (same id, its attempts kept)."""
    delivery = await _delivery(tx, access, webhook_id, delivery_id)
    now = utcnow()
    await tx.execute(_REDELIVER, {"delivery_id": delivery.id, "now": now})
    if tx.dialect_name == "postgresql":  # wakes the delivery engines at COMMIT
        await tx.execute(_NOTIFY)
    delivery.status, delivery.next_attempt_at, delivery.locked_until = PENDING, now, None
    delivery.updated_at = now
    await record_audit(tx, access, "webhook_delivery.redeliver", "webhook_delivery", delivery.id)
    return delivery


@requires(Scope.WEBHOOKS)
async def create_test_ping(
    tx: Tx, *, access: Access, webhook_id: str
) -> tuple[WebhookRecord, WebhookDeliveryRecord]:
    """A `ping` delivery for the request to attempt at once (held from the engine meanwhile);
    it is attempted once, never retried."""
    webhook = await _webhook_of_org(tx, access.org_id, webhook_id)
    now = utcnow()
    data = {"webhook_id": webhook.id, "org_id": webhook.org_id}
    values = delivery_values(
        webhook_id=webhook.id,
        org_id=webhook.org_id,
        event_id=None,
        event_type=PING,
        payload=payload_of(PING, now, data),
        now=now,
        locked_until=now + PING_LEASE,
    )
    values["status"] = FAILED  # until the attempt answers: never picked up by the engine
    values["next_attempt_at"] = None
    delivery = await tx.first(DELIVERY_INSERT, values, WebhookDeliveryRecord)
    assert delivery is not None
    await record_audit(tx, access, "webhook.ping", "webhook", webhook.id)
    return webhook, delivery


def attempt_document(attempt: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "at": attempt["at"],
        "duration_ms": attempt["duration_ms"],
        "status_code": attempt.get("status_code"),
        "error": attempt.get("error"),
        "response_body": attempt.get("response_body"),
    }


def delivery_document(delivery: WebhookDeliveryRecord) -> dict[str, Any]:
    next_at = delivery.next_attempt_at if delivery.status == PENDING else None
    return {
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "event_id": delivery.event_id,
        "type": delivery.type,
        "status": delivery.status,
        "attempts": [attempt_document(a) for a in delivery.attempts],
        "next_attempt_at": None if next_at is None else rfc3339(next_at),
        "created_at": rfc3339(delivery.created_at),
        "payload": delivery.payload,
    }
