"""The deliveries a change leaves behind, written in the change's transaction.

`record_revision` (app/domain/revisions.py) calls `deliveries_for_change` with every revision
it writes: one indexed SELECT of the organisation's enabled webhooks (nothing more when it has
none), and one delivery row per webhook that wants this change. The delivery engine
(app/webhooks/) reads them once committed. See docs/webhooks.md.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, select

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
# whether the organisation (of the revision being inserted) has an enabled webhook: asked in the
# RETURNING of the revision's INSERT (app/domain/revisions.py), so no statement is added
ANY_ENABLED_WEBHOOK = exists(
    select(WEBHOOKS.c.id).where(
        WEBHOOKS.c.org_id == bindparam("hooks_org_id"), WEBHOOKS.c.enabled.is_(True)
    )
)
_ENABLED_OF_ORG = Statement(
    select(WEBHOOKS.c.id, WEBHOOKS.c.event_types, WEBHOOKS.c.assistant_ids).where(
        WEBHOOKS.c.org_id == bindparam("org_id"), WEBHOOKS.c.enabled.is_(True)
    )
)


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


async def webhooks_for_change(
    tx: Tx, *, org_id: str, assistant_id: str, event_type: str
) -> list[str]:
    """The ids of the organisation's enabled webhooks that want this change."""
    rows = await tx.all(_ENABLED_OF_ORG, {"org_id": org_id})
    return [
        webhook_id
        for webhook_id, types, assistants in rows
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
        await tx.execute(DELIVERY_INSERT, values)


# PostgreSQL: a redelivery wakes the delivery engines (revisions wake them by their trigger)
NOTIFY_CHANNEL = "webhook_deliveries"
