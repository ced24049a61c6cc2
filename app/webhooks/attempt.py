"""One attempt of one delivery: sign, send, judge the answer, and what comes next
(docs/webhooks.md: the retry table, Retry-After, 410)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
import orjson

from app.domain.documents import rfc3339
from app.domain.webhook_events import DELIVERED, FAILED, PENDING
from app.models import utcnow
from app.store.records import WebhookDeliveryRecord, WebhookRecord
from app.webhooks import signing
from app.webhooks.transport import BODY_KEPT, BlockedAddress

MAX_RETRY_AFTER = 24 * 3600.0
JITTER = 0.2
BLOCKED, TIMEOUT, CONNECTION = "blocked_address", "timeout", "connection_failed"


@dataclass(slots=True)
class Outcome:
    """What an attempt gave: the attempt's record, and its answer's status and Retry-After."""

    attempt: dict[str, object]
    status_code: int | None
    retry_after: float | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410

    @property
    def label(self) -> str:
        if self.delivered:
            return "delivered"
        if self.gone:
            return "gone"
        return "blocked" if self.attempt.get("error") == BLOCKED else "failed"


def secrets_of(webhook: WebhookRecord, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during the overlap."""
    found = [webhook.secret]
    until = webhook.previous_secret_until
    if webhook.previous_secret and until is not None and until > now:
        found.append(webhook.previous_secret)
    return found


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return (parsedate_to_datetime(value) - now).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


async def send(
    client: httpx.AsyncClient,
    webhook: WebhookRecord,
    delivery: WebhookDeliveryRecord,
    *,
    timeout: float,  # noqa: ASYNC109  (the whole attempt's bound, WEBHOOK_TIMEOUT_SECONDS)
) -> Outcome:
    """Sends the delivery once, signed; never raises for what the receiver or network does."""
    started_at = utcnow()
    body = orjson.dumps(delivery.payload)
    headers = signing.headers(secrets_of(webhook, started_at), delivery.id, int(time.time()), body)
    status_code: int | None = None
    error: str | None = None
    text: str | None = None
    retry_after: float | None = None
    clock = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            response = await client.post(webhook.url, content=body, headers=headers)
        status_code = response.status_code
        text = response.content[:BODY_KEPT].decode("utf-8", "replace")
        retry_after = _retry_after(response.headers.get("retry-after"), started_at)
    except BlockedAddress:
        error = BLOCKED
    except (TimeoutError, httpx.TimeoutException):
        error = TIMEOUT
    except (httpx.TransportError, OSError) as exc:
        error = f"{CONNECTION}: {str(exc)[:200] or type(exc).__name__}"
    except httpx.HTTPError as exc:  # an invalid URL, …
        error = f"request_failed: {str(exc)[:200] or type(exc).__name__}"
    attempt: dict[str, object] = {
        "at": rfc3339(started_at),
        "duration_ms": round((time.perf_counter() - clock) * 1000),
        "status_code": status_code,
        "error": error,
        "response_body": text,
    }
    return Outcome(attempt, status_code, retry_after)


def next_step(
    outcome: Outcome, attempts_made: int, delays: list[float], now: datetime
) -> tuple[str, datetime | None]:
    """(status, next attempt) after `attempts_made` attempts, this one included: delivered;
    failed (410, or the schedule is spent); else pending, after the schedule's delay with up
    to 20 % jitter, or after Retry-After when it asks for longer (at most 24 h)."""
    if outcome.delivered:
        return DELIVERED, None
    if outcome.gone or attempts_made > len(delays):
        return FAILED, None
    delay = delays[attempts_made - 1] * (1 + random.uniform(0, JITTER))
    if outcome.retry_after is not None and outcome.retry_after > delay:
        delay = min(outcome.retry_after, MAX_RETRY_AFTER)
    return PENDING, now + timedelta(seconds=delay)
