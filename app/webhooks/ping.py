"""`POST …/webhooks/{id}/test` and `testWebhook`: a `ping`, attempted by the request itself,
once (no retry, and it changes nothing of the webhook)."""

from __future__ import annotations

import httpx

from app.domain.webhook_deliveries import finish_attempt
from app.domain.webhook_events import DELIVERED, FAILED
from app.models import utcnow
from app.settings import Settings
from app.store import Store
from app.store.records import WebhookDeliveryRecord, WebhookRecord
from app.webhooks.attempt import send


async def attempt_ping(
    store: Store,
    settings: Settings,
    client: httpx.AsyncClient,
    webhook: WebhookRecord,
    delivery: WebhookDeliveryRecord,
) -> WebhookDeliveryRecord:
    """Sends the ping, records its attempt, answers the delivery as recorded."""
    outcome = await send(client, webhook, delivery, timeout=settings.webhook_timeout_seconds)
    status = DELIVERED if outcome.delivered else FAILED
    now = utcnow()
    async with store.write() as tx:
        await finish_attempt(
            tx,
            delivery,
            lease=delivery.locked_until,
            attempt=outcome.attempt,
            status=status,
            next_attempt_at=None,
            now=now,
        )
    delivery.status = status
    delivery.attempts = [*delivery.attempts, outcome.attempt]
    delivery.attempt_count += 1
    delivery.locked_until = None
    delivery.next_attempt_at = None
    return delivery
