"""What the delivery engine (app/webhooks/) reads and writes: claiming due deliveries, recording
an attempt, disabling a webhook, the log's cleanup (docs/webhooks.md). No use case here: no
request calls these.

Claiming: one UPDATE of the due deliveries' lease (`locked_until`) that answers the rows; on
PostgreSQL the rows are chosen with `FOR UPDATE SKIP LOCKED`, so processes on every machine
claim disjoint sets; on SQLite the write transaction holds the database. A process that dies
leaves its claims to expire with their lease.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, true, union_all, update

from app.domain.webhook_events import DELIVERIES, PENDING, WEBHOOKS
from app.store import Statement, Tx, in_list
from app.store.records import WebhookDeliveryRecord, WebhookRecord

GONE, FAILING = "gone", "failing"

_D = DELIVERIES
_NOW: Any = bindparam("now")


def _unlocked(table: Any) -> Any:
    return or_(table.c.locked_until.is_(None), table.c.locked_until < _NOW)


# the enabled webhooks not at their concurrency cap in this process
_OPEN_WEBHOOKS = (
    select(WEBHOOKS.c.id)
    .where(WEBHOOKS.c.enabled.is_(True), ~in_list(WEBHOOKS.c.id, "busy"))
    .subquery("open_webhooks")
)
_ENABLED_WEBHOOKS = select(WEBHOOKS.c.id).where(WEBHOOKS.c.enabled.is_(True))
_DUE = and_(
    _D.c.status == PENDING,
    _D.c.next_attempt_at <= _NOW,
    _unlocked(_D),
    _D.c.webhook_id.in_(_ENABLED_WEBHOOKS.scalar_subquery()),
)

# First attempts are claimed in commit (seq) order per webhook, across every process: of a
# webhook's deliveries still waiting, unclaimed, for their first attempt, only the `per_webhook`
# earliest may be claimed (so no claim skips one). Both forms read the index (webhook_id,
# attempt_count, seq) of those deliveries from its start: the work is the claim's size (and
# the attempts in flight), not the backlog's.
_FIRST = _D.alias("first")
_WAITING_FIRST = and_(_FIRST.c.attempt_count == 0, _FIRST.c.status == PENDING, _unlocked(_FIRST))


def _first_attempts_lateral() -> Any:
    """PostgreSQL: for each open webhook, its earliest waiting first attempts (LATERAL)."""
    earliest = (
        select(_FIRST.c.seq, _FIRST.c.next_attempt_at)
        .where(_FIRST.c.webhook_id == _OPEN_WEBHOOKS.c.id, _WAITING_FIRST)
        .order_by(_FIRST.c.seq)
        .limit(bindparam("per_webhook"))
        .lateral("earliest")
    )
    return (
        select(earliest.c.seq)
        .select_from(_OPEN_WEBHOOKS.join(earliest, true()))
        .where(earliest.c.next_attempt_at <= _NOW)
    )


def _first_attempts_ranked() -> Any:
    """SQLite (no LATERAL): the same rows, numbered per webhook (one pass over the index of
    the waiting first attempts)."""
    ranked = (
        select(
            _FIRST.c.seq,
            _FIRST.c.next_attempt_at,
            func.row_number()
            .over(partition_by=_FIRST.c.webhook_id, order_by=_FIRST.c.seq)
            .label("turn"),
        )
        .where(_FIRST.c.webhook_id.in_(select(_OPEN_WEBHOOKS.c.id)), _WAITING_FIRST)
        .subquery("ranked")
    )
    return select(ranked.c.seq).where(
        ranked.c.turn <= bindparam("per_webhook"), ranked.c.next_attempt_at <= _NOW
    )


# retries (and redeliveries) keep no order: every due one of an open webhook
_RETRIES = select(_D.c.seq).where(
    _D.c.status == PENDING,
    _D.c.attempt_count > 0,
    _D.c.next_attempt_at <= _NOW,
    _unlocked(_D),
    _D.c.webhook_id.in_(select(_OPEN_WEBHOOKS.c.id)),
)


def _claim(postgresql: bool) -> Any:
    firsts = _first_attempts_lateral() if postgresql else _first_attempts_ranked()
    candidates = union_all(firsts, _RETRIES).subquery("candidates")
    chosen = (
        select(_D.c.seq)
        .where(_D.c.seq.in_(select(candidates.c.seq)))
        .order_by(_D.c.seq)
        .limit(bindparam("limit"))
    )
    if postgresql:  # processes on every machine claim disjoint sets
        chosen = chosen.with_for_update(skip_locked=True)
    return (
        update(_D)
        .where(_D.c.seq.in_(chosen.scalar_subquery()))
        .values(locked_until=bindparam("until"))
        .returning(*_D.c)
    )


_CLAIM = Statement(_claim(False), postgresql=_claim(True))
_ANY_DUE = Statement(select(_D.c.seq).where(_DUE).limit(1))
_WEBHOOKS = Statement(select(WEBHOOKS).where(in_list(WEBHOOKS.c.id, "ids")))
_FINISH = Statement(
    update(_D)
    .where(_D.c.seq == bindparam("seq"), _D.c.locked_until == bindparam("lease"))
    .values(
        status=bindparam("status"),
        attempts=bindparam("attempts", type_=_D.c.attempts.type),
        attempt_count=bindparam("attempt_count"),
        next_attempt_at=bindparam("next_attempt_at", type_=_D.c.next_attempt_at.type),
        locked_until=None,
        updated_at=bindparam("now"),
    )
)
_RELEASE = Statement(
    update(_D)
    .where(in_list(_D.c.seq, "seqs"), _D.c.locked_until == bindparam("lease"))
    .values(locked_until=None)
)
_SUCCEEDED = Statement(
    update(WEBHOOKS)
    .where(WEBHOOKS.c.id == bindparam("webhook_id"), WEBHOOKS.c.failing_since.is_not(None))
    .values(failing_since=None)
)
_FAILED = Statement(
    update(WEBHOOKS)
    .where(WEBHOOKS.c.id == bindparam("webhook_id"), WEBHOOKS.c.failing_since.is_(None))
    .values(failing_since=bindparam("now"))
)
_DISABLE_FAILING = Statement(
    update(WEBHOOKS)
    .where(
        WEBHOOKS.c.id == bindparam("webhook_id"),
        WEBHOOKS.c.enabled.is_(True),
        WEBHOOKS.c.failing_since <= bindparam("cutoff"),
    )
    .values(enabled=False, disabled_reason=FAILING, updated_at=bindparam("now"))
)
_DISABLE_GONE = Statement(
    update(WEBHOOKS)
    .where(WEBHOOKS.c.id == bindparam("webhook_id"))
    .values(enabled=False, disabled_reason=GONE, updated_at=bindparam("now"))
)
_PRUNE = Statement(delete(_D).where(_D.c.created_at < bindparam("before"), _D.c.status != PENDING))
_ANY_OLD = Statement(
    select(_D.c.seq).where(_D.c.created_at < bindparam("before"), _D.c.status != PENDING).limit(1)
)
_PENDING_COUNT = Statement(select(func.count()).select_from(_D).where(_D.c.status == PENDING))


async def any_due(tx: Tx, *, now: datetime) -> bool:
    """Whether a delivery waits for an attempt (a read: cheap, and no lock on SQLite)."""
    return await tx.first(_ANY_DUE, {"now": now}) is not None


async def claim_due(
    tx: Tx,
    *,
    now: datetime,
    until: datetime,
    limit: int,
    busy: Collection[str],
    per_webhook: int,
) -> list[WebhookDeliveryRecord]:
    """Up to `limit` due deliveries of enabled webhooks (none of the `busy` ones), oldest
    first, leased to the caller until `until`; at most `per_webhook` first attempts of one
    webhook, the earliest ones."""
    parameters = {
        "now": now,
        "until": until,
        "limit": limit,
        "busy": sorted(busy),
        "per_webhook": per_webhook,
    }
    rows = await tx.all(_CLAIM, parameters, WebhookDeliveryRecord)
    return sorted(rows, key=lambda row: row.seq or 0)


async def webhooks_by_id(tx: Tx, ids: Collection[str]) -> dict[str, WebhookRecord]:
    rows = await tx.all(_WEBHOOKS, {"ids": sorted(ids)}, WebhookRecord)
    return {row.id: row for row in rows}


async def finish_attempt(
    tx: Tx,
    delivery: WebhookDeliveryRecord,
    *,
    lease: datetime | None,
    attempt: dict[str, Any],
    status: str,
    next_attempt_at: datetime | None,
    now: datetime,
) -> bool:
    """Records an attempt of a delivery this process holds (False: its lease was lost)."""
    parameters = {
        "seq": delivery.seq,
        "lease": lease,
        "status": status,
        "attempts": [*delivery.attempts, attempt],
        "attempt_count": delivery.attempt_count + 1,
        "next_attempt_at": next_attempt_at,
        "now": now,
    }
    return await tx.execute(_FINISH, parameters) == 1


async def release(tx: Tx, seqs: list[int], *, lease: datetime) -> None:
    """Gives back claimed deliveries not attempted (shutdown, a webhook disabled)."""
    if seqs:
        await tx.execute(_RELEASE, {"seqs": seqs, "lease": lease})


async def webhook_succeeded(tx: Tx, webhook_id: str) -> None:
    await tx.execute(_SUCCEEDED, {"webhook_id": webhook_id})


async def webhook_failed(tx: Tx, webhook_id: str, *, now: datetime, cutoff: datetime) -> bool:
    """Notes a failed attempt; disables the webhook (`failing`) when none succeeded since
    `cutoff` (True then)."""
    await tx.execute(_FAILED, {"webhook_id": webhook_id, "now": now})
    parameters = {"webhook_id": webhook_id, "cutoff": cutoff, "now": now}
    return await tx.execute(_DISABLE_FAILING, parameters) == 1


async def webhook_gone(tx: Tx, webhook_id: str, *, now: datetime) -> None:
    await tx.execute(_DISABLE_GONE, {"webhook_id": webhook_id, "now": now})


async def prune_deliveries(tx: Tx, *, before: datetime) -> int:
    """Removes the finished deliveries made before `before` (WEBHOOK_LOG_DAYS)."""
    return await tx.execute(_PRUNE, {"before": before})


async def any_old(tx: Tx, *, before: datetime) -> bool:
    """Whether a finished delivery made before `before` is left (a read: no write lock)."""
    return await tx.first(_ANY_OLD, {"before": before}) is not None


async def pending_count(tx: Tx) -> int:
    return int(await tx.scalar(_PENDING_COUNT) or 0)
