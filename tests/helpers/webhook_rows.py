"""Webhooks and deliveries written straight in the database (for tests that need one to act
on, without the URL rules or a receiver): a webhook to a blocked address never connects."""

from __future__ import annotations

from app.domain.webhook_events import (
    DELIVERED,
    DELIVERIES,
    DELIVERY_INSERT,
    WEBHOOKS,
    delivery_values,
    new_webhook_secret,
    payload_of,
)
from app.models import new_id, utcnow
from app.store import Store
from app.store.statements import insert_statement

WEBHOOK_INSERT = insert_statement(WEBHOOKS)
UNREACHABLE = "https://127.0.0.1:9/hook"  # refused by the checked transport: no connection


async def insert_webhook(db: Store, org_id: str, url: str = UNREACHABLE) -> str:
    now = utcnow()
    webhook_id = new_id()
    values = {
        "id": webhook_id,
        "org_id": org_id,
        "url": url,
        "description": "",
        "event_types": None,
        "assistant_ids": None,
        "enabled": True,
        "disabled_reason": None,
        "secret": new_webhook_secret(),
        "previous_secret": None,
        "previous_secret_until": None,
        "failing_since": None,
        "created_at": now,
        "updated_at": now,
    }
    async with db.write() as tx:
        await tx.execute(WEBHOOK_INSERT, values)
    return webhook_id


async def insert_delivery(db: Store, org_id: str, webhook_id: str) -> str:
    """A delivered delivery (the engine leaves it alone): its id."""
    now = utcnow()
    values = delivery_values(
        webhook_id=webhook_id,
        org_id=org_id,
        event_id="1",
        event_type="assistant.updated",
        payload=payload_of("assistant.updated", now, {"id": "1"}),
        now=now,
    )
    values |= {"status": DELIVERED, "next_attempt_at": None}
    async with db.write() as tx:
        await tx.execute(DELIVERY_INSERT, values)
    return str(values["id"])


__all__ = ["DELIVERIES", "insert_delivery", "insert_webhook"]
