"""The deliveries a change leaves behind, written in the change's transaction.

`record_revision` (app/domain/revisions.py) asks for the organisation's enabled webhooks in the
RETURNING of the revision's INSERT (ENABLED_WEBHOOKS: no statement more, whether it has some
or none), then writes one delivery row per webhook that wants this change (on PostgreSQL that
INSERT also notifies the engines at COMMIT). The delivery engine (app/webhooks/) reads them
once committed. See docs/webhooks.md.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, func, insert, select

from app.domain.documents import rfc3339
from app.models import Webhook, WebhookDelivery, new_id
from app.store import Statement, Tx
from app.store.statements import insert_statement

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
PING = "ping"
EVENT_TYPES = (
    "assistant.created",
    "assistant.updated",
    "assistant.secret_key_rotated",
    "assistant.restored",
    "assistant.deleted",
    "assistant.published",
)

# mypy ignore below: SQLModel's metaclass sets __table__
WEBHOOKS = Webhook.__table__  # type: ignore[attr-defined]
DELIVERIES = WebhookDelivery.__table__  # type: ignore[attr-defined]
DELIVERY_INSERT = insert_statement(DELIVERIES, returning=True)
# PostgreSQL: a commit that leaves deliveries behind (a change's, a redelivery) wakes the engines
NOTIFY_CHANNEL = "webhook_deliveries"
# the organisation's enabled webhooks (of the revision being inserted), as JSON
# [[id, event_types, assistant_ids], …] (NULL or [] when it has none): asked in the RETURNING of
# the revision's INSERT (app/domain/revisions.py), so no statement is added to find them
_OF_ORG = (WEBHOOKS.c.org_id == bindparam("hooks_org_id"), WEBHOOKS.c.enabled.is_(True))
ENABLED_WEBHOOKS = select(
    func.json_group_array(
        func.json_array(
            WEBHOOKS.c.id, func.json(WEBHOOKS.c.event_types), func.json(WEBHOOKS.c.assistant_ids)
        )
    )
).where(*_OF_ORG)
ENABLED_WEBHOOKS_POSTGRESQL = select(
    func.json_agg(
        func.json_build_array(WEBHOOKS.c.id, WEBHOOKS.c.event_types, WEBHOOKS.c.assistant_ids)
    )
).where(*_OF_ORG)


def _change_delivery_insert(notify: bool) -> Any:
    """One change's delivery; on PostgreSQL it also wakes the delivery engines at COMMIT (only
    a commit that leaves a delivery behind wakes them)."""
    values = {c.key: bindparam(c.key, type_=c.type) for c in DELIVERIES.c if c.key != "seq"}
    made = insert(DELIVERIES).values(values)
    if not notify:
        return made
    cte = made.returning(DELIVERIES.c.seq).cte("made")
    return select(func.pg_notify(NOTIFY_CHANNEL, "")).select_from(cte)


def new_webhook_secret() -> str:
    """`whsec_` and the base64 of 32 random bytes (the Standard Webhooks format)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def payload_of(event_type: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": event_type, "timestamp": rfc3339(at), "data": data}


def delivery_values(
    *,
    webhook_id: str,
    org_id: str,
    event_id: str | None,
    event_type: str,
    payload: dict[str, Any],
    now: datetime,
    locked_until: datetime | None = None,
) -> dict[str, Any]:
    return {
        "id": "msg_" + new_id(),
        "webhook_id": webhook_id,
        "org_id": org_id,
        "event_id": event_id,
        "type": event_type,
        "payload": payload,
        "status": PENDING,
        "attempts": [],
        "attempt_count": 0,
        "next_attempt_at": now,
        "locked_until": locked_until,
        "created_at": now,
        "updated_at": now,
    }


def webhooks_for_change(hooks: Any, *, assistant_id: str, event_type: str) -> list[str]:
    """The ids of the organisation's enabled webhooks (ENABLED_WEBHOOKS' answer) that want this
    change."""
    if isinstance(hooks, str | bytes):
        hooks = orjson.loads(hooks)
    return [
        webhook_id
        for webhook_id, types, assistants in hooks or ()
        if (types is None or event_type in types)
        and (assistants is None or assistant_id in assistants)
    ]


async def record_deliveries(
    tx: Tx, webhook_ids: list[str], *, event: dict[str, Any], changed_at: datetime
) -> None:
    """One pending delivery of this event (section 7's document) per webhook."""
    event_type = "assistant." + event["change_type"]
    payload = payload_of(event_type, changed_at, event)
    for webhook_id in webhook_ids:
        values = delivery_values(
            webhook_id=webhook_id,
            org_id=event["org_id"],
            event_id=event["id"],
            event_type=event_type,
            payload=payload,
            now=changed_at,
        )
        await tx.execute(_CHANGE_DELIVERY_INSERT, values)


_CHANGE_DELIVERY_INSERT = Statement(
    _change_delivery_insert(False), postgresql=_change_delivery_insert(True)
)
