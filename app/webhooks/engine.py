"""The delivery engine of one process (docs/webhooks.md).

A loop claims due deliveries (app/domain/webhook_deliveries.py) and starts their attempts,
at most WEBHOOK_CONCURRENCY at once in the process and WEBHOOK_CONCURRENCY_PER_WEBHOOK per
webhook; a webhook's claimed deliveries wait their turn in seq (commit) order. The attempts
that end while the outcomes of others are being written are written together, in one
transaction. A claim is leased for LEASE (see `lease_of`). It wakes:
- on PostgreSQL, at each commit that leaves deliveries behind (a change's or a redelivery: the
  LISTEN of `webhook_deliveries`); changes of organisations without webhooks wake nothing;
- on SQLite, every EVENTS_POLL_INTERVAL (a read: no write lock unless something is due);
- when an attempt ends (a slot is free), and at least every WEBHOOK_POLL_SECONDS (retries).
`stop()`: no new attempt starts; attempts in flight get the grace period, then are cancelled
(their lease expires and another process retries them).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import sqlite3
from collections import deque
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx

from app.domain.errors import DatabaseUnavailable
from app.domain.webhook_deliveries import (
    any_due,
    any_old,
    claim_due,
    finish_attempt,
    pending_count,
    prune_deliveries,
    release,
    webhook_failed,
    webhook_gone,
    webhook_succeeded,
    webhooks_by_id,
)
from app.domain.webhook_events import DELIVERED, FAILED, NOTIFY_CHANNEL, PENDING
from app.models import utcnow
from app.observability import metrics
from app.settings import Settings
from app.store import Store, open_store
from app.store.postgres import libpq_dsn
from app.store.records import WebhookDeliveryRecord, WebhookRecord
from app.webhooks.attempt import Outcome, next_step, send
from app.webhooks.transport import new_client

logger = logging.getLogger("app.webhooks")

LEASE_MARGIN_SECONDS = 10.0  # recording the outcome, clocks of other machines
NEAR_RETRY = timedelta(minutes=1)  # retries waited for by the clock (later ones: by the poll)
HOUSEKEEPING_SECONDS = 15.0  # the pending gauge; the log's cleanup every hour
PRUNE_SECONDS = 3600.0
RETRY_SECONDS = 1.0
DB_ERRORS = (OSError, TimeoutError, sqlite3.Error, asyncpg.PostgresError, DatabaseUnavailable)


def client_of(settings: Settings) -> httpx.AsyncClient:
    return new_client(
        timeout=settings.webhook_timeout_seconds,
        allow_private=settings.webhooks_allow_private,
        connections=max(settings.webhook_concurrency, 1),
    )


# an attempt's outcome waiting to be written, with the future its attempt waits on
Finished = tuple[WebhookRecord, WebhookDeliveryRecord, Outcome, "asyncio.Future[None]"]


def lease_of(settings: Settings) -> timedelta:
    """How long a claim is held: 2 x WEBHOOK_TIMEOUT_SECONDS + 10 s (30 s by default).

    A process holds at most WEBHOOK_CONCURRENCY_PER_WEBHOOK attempts of a webhook running and
    claims for a webhook only while fewer are in its hands, so a claimed delivery starts
    within one timeout (a running attempt ends) and ends within another; the margin covers
    writing its outcome and the clocks of other machines. A process that dies leaves its
    claims to be attempted again once this has passed (docs/webhooks.md, "Leases").
    """
    seconds = 2 * settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
    return timedelta(seconds=seconds)


def outcome_label(outcome: Outcome, status: str) -> str:
    """webhook_deliveries_total's outcome: delivered, retry, failed (the schedule is spent)
    or gone (410)."""
    if outcome.delivered:
        return DELIVERED
    if outcome.gone:
        return "gone"
    return "retry" if status == PENDING else FAILED


class Engine:
    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        # its own connections: the API's pool never waits for the engine (nor the reverse);
        # its commits are not waited for on disk: a crash of the database that loses the last
        # claims or outcomes only means those deliveries are attempted again (at least once)
        self.store: Store = open_store(settings, lazy_commits=True)
        self.settings = settings
        self.client = client or client_of(settings)
        self._own_client = client is None
        self.wake = asyncio.Event()
        self.outcomes: list[Finished] = []
        self.recorder: asyncio.Task[None] | None = None
        self.retries: list[datetime] = []  # a heap: the near retries this process scheduled
        self.stopping = False
        self.queues: dict[str, deque[WebhookDeliveryRecord]] = {}
        self.running: dict[str, int] = {}
        self.webhooks: dict[str, WebhookRecord] = {}
        self.leases: dict[int, Any] = {}  # seq -> the lease it was claimed with
        self.tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self.lease = lease_of(settings)

    # -- life -------------------------------------------------------------------------------

    def start(self) -> None:
        self._loops = [asyncio.create_task(self._run()), asyncio.create_task(self._housekeep())]
        if not self.settings.is_sqlite:
            self._loops.append(asyncio.create_task(self._listen()))

    def stop_claiming(self) -> None:
        """SIGTERM: no new attempt starts (those in flight go on)."""
        self.stopping = True
        self.wake.set()

    async def stop(self, grace: float) -> None:
        self.stop_claiming()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=max(grace, 0.0))
        left = [*self.tasks, *self._loops, *([self.recorder] if self.recorder else [])]
        for task in left:
            task.cancel()
        for task in left:
            with contextlib.suppress(BaseException):
                await task
        await self._release_queued()
        if self._own_client:
            await self.client.aclose()
        await self.store.close()

    async def _release_queued(self) -> None:
        by_lease: dict[Any, list[int]] = {}
        for queue in self.queues.values():
            for delivery in queue:
                if delivery.seq is not None:
                    by_lease.setdefault(self.leases.pop(delivery.seq), []).append(delivery.seq)
        self.queues.clear()
        if not by_lease:
            return
        try:
            async with self.store.write() as tx:
                for lease, seqs in by_lease.items():
                    await release(tx, seqs, lease=lease)
        except Exception as exc:  # noqa: BLE001  (their leases expire anyway)
            logger.warning("webhooks: cannot release claimed deliveries (%s)", exc)

    # -- claiming ---------------------------------------------------------------------------

    @property
    def in_hand(self) -> int:
        return len(self.tasks) + sum(len(q) for q in self.queues.values())

    def _busy(self) -> set[str]:
        cap = max(self.settings.webhook_concurrency_per_webhook, 1)
        return {w for w, n in self.running.items() if n + len(self.queues.get(w, ())) >= cap}

    async def _run(self) -> None:
        poll = self.settings.webhook_poll_seconds
        if self.settings.is_sqlite:
            poll = min(poll, self.settings.events_poll_interval)
        while not self.stopping:
            self.wake.clear()
            started = utcnow()
            try:
                await self.claim()
            except DB_ERRORS as exc:
                logger.warning("webhooks: cannot claim deliveries (%s); retrying", exc)
            except Exception:  # the loop must go on: this process's deliveries depend on it
                logger.exception("webhooks: claiming failed unexpectedly; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self._wait(poll, started))

    def _wait(self, poll: float, claimed_at: datetime) -> float:
        """Seconds until the next look: the poll, or sooner the next retry this process
        scheduled (a retry leaves on time, not up to a poll later)."""
        while self.retries and self.retries[0] <= claimed_at:
            heapq.heappop(self.retries)  # the claim just made has seen it due
        if not self.retries:
            return poll
        return min(poll, max((self.retries[0] - utcnow()).total_seconds(), 0.0) + 0.001)

    async def claim(self) -> int:
        free = max(self.settings.webhook_concurrency, 1) - self.in_hand
        if free <= 0 or self.stopping:
            return 0
        now = utcnow()
        if self.settings.is_sqlite:  # a read first: no write lock unless something is due
            async with self.store.read() as tx:
                if not await any_due(tx, now=now):
                    return 0
        until = now + self.lease
        async with self.store.write() as tx:
            claimed = await claim_due(
                tx,
                now=now,
                until=until,
                limit=free,
                busy=self._busy(),
                per_webhook=max(self.settings.webhook_concurrency_per_webhook, 1),
            )
            if claimed:
                ids = {d.webhook_id for d in claimed}
                self.webhooks.update(await webhooks_by_id(tx, ids))
        for delivery in claimed:
            assert delivery.seq is not None
            self.leases[delivery.seq] = until
            self.queues.setdefault(delivery.webhook_id, deque()).append(delivery)
        for webhook_id in {d.webhook_id for d in claimed}:
            self._pump(webhook_id)
        return len(claimed)

    def _pump(self, webhook_id: str) -> None:
        cap = max(self.settings.webhook_concurrency_per_webhook, 1)
        queue = self.queues.get(webhook_id)
        while queue and self.running.get(webhook_id, 0) < cap and not self.stopping:
            delivery = queue.popleft()
            self.running[webhook_id] = self.running.get(webhook_id, 0) + 1
            task = asyncio.create_task(self._attempt(delivery))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if queue is not None and not queue:
            del self.queues[webhook_id]

    # -- one attempt -------------------------------------------------------------------------

    async def _attempt(self, delivery: WebhookDeliveryRecord) -> None:
        webhook_id = delivery.webhook_id
        freed = False
        try:
            webhook = self.webhooks.get(webhook_id)
            if webhook is not None:
                timeout = self.settings.webhook_timeout_seconds
                outcome = await send(self.client, webhook, delivery, timeout=timeout)
                freed = True  # the webhook's next attempt starts while this outcome is written
                self._free(webhook_id)
                await self._record(webhook, delivery, outcome)
        except DB_ERRORS as exc:
            logger.warning("webhooks: cannot record an attempt (%s)", exc)
        except Exception:
            logger.exception("webhooks: an attempt failed unexpectedly")
        finally:
            self.leases.pop(delivery.seq or 0, None)
            if not freed:
                self._free(webhook_id)
            self.wake.set()

    def _free(self, webhook_id: str) -> None:
        """An attempt of the webhook has its answer: its slot goes to the next one waiting."""
        self.running[webhook_id] -= 1
        if not self.running[webhook_id]:
            del self.running[webhook_id]
        self._pump(webhook_id)

    async def _record(
        self, webhook: WebhookRecord, delivery: WebhookDeliveryRecord, outcome: Outcome
    ) -> None:
        """Hands the outcome to the recorder; returns once it is written (or could not be)."""
        done = asyncio.get_running_loop().create_future()
        self.outcomes.append((webhook, delivery, outcome, done))
        if self.recorder is None or self.recorder.done():
            self.recorder = asyncio.create_task(self._write_outcomes())
        await done

    async def _write_outcomes(self) -> None:
        """Writes every outcome waiting, in one transaction per round, until none waits."""
        while self.outcomes:
            batch, self.outcomes = self.outcomes, []
            try:
                disabled = await self._write(batch)
            except Exception as exc:  # noqa: BLE001  (each attempt logs it)
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            except BaseException:
                for *_, done in batch:
                    done.cancel()
                raise
            for *_, done in batch:
                if not done.done():
                    done.set_result(None)
            for webhook_id, label in disabled.items():
                logger.warning("webhooks: webhook %s disabled (%s)", webhook_id, label)
                await self._drop_queue(webhook_id)

    async def _write(self, batch: list[Finished]) -> dict[str, str]:
        """Writes a batch's outcomes in one transaction: the webhooks it disabled, and why."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self.settings.webhook_disable_after)
        disabled: dict[str, str] = {}
        succeeded: set[str] = set()
        counted: list[tuple[str, float | None]] = []
        async with self.store.write() as tx:
            for webhook, delivery, outcome, _ in batch:
                status, next_at = next_step(
                    outcome, delivery.attempt_count + 1, self.settings.retry_delays, now
                )
                if next_at is not None and next_at - now < NEAR_RETRY:
                    heapq.heappush(self.retries, next_at)
                mine = await finish_attempt(
                    tx,
                    delivery,
                    lease=self.leases.get(delivery.seq or 0),
                    attempt=outcome.attempt,
                    status=status,
                    next_attempt_at=next_at,
                    now=now,
                )
                if not mine or webhook.id in disabled:
                    continue
                if outcome.delivered:
                    if webhook.id not in succeeded:
                        succeeded.add(webhook.id)
                        await webhook_succeeded(tx, webhook.id)
                elif outcome.gone:
                    await webhook_gone(tx, webhook.id, now=now)
                    disabled[webhook.id] = outcome.label
                elif await webhook_failed(tx, webhook.id, now=now, cutoff=cutoff):
                    disabled[webhook.id] = outcome.label
                since = (now - delivery.created_at).total_seconds() if status == DELIVERED else None
                counted.append((outcome_label(outcome, status), since))
        if metrics.active is not None:
            for label, since in counted:
                metrics.active.webhook_attempt(label, since)
        return disabled

    async def _drop_queue(self, webhook_id: str) -> None:
        queue = self.queues.pop(webhook_id, deque())
        by_lease: dict[Any, list[int]] = {}
        for delivery in queue:
            if delivery.seq is not None:
                by_lease.setdefault(self.leases.pop(delivery.seq), []).append(delivery.seq)
        if by_lease:
            async with self.store.write() as tx:
                for lease, seqs in by_lease.items():
                    await release(tx, seqs, lease=lease)

    # -- wake-ups and housekeeping -----------------------------------------------------------

    async def _listen(self) -> None:
        dsn = libpq_dsn(self.settings.database_url)
        while not self.stopping:
            try:
                connection = await asyncpg.connect(dsn, timeout=5)
            except Exception as exc:  # noqa: BLE001  (polling still runs meanwhile)
                logger.warning("webhooks: cannot LISTEN (%s); retrying", exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                await connection.add_listener(NOTIFY_CHANNEL, lambda *_: self.wake.set())
                self.wake.set()  # what committed while nobody listened
                while not self.stopping:
                    await asyncio.sleep(5)
                    await connection.execute("SELECT 1", timeout=5)
            except Exception as exc:  # noqa: BLE001  (reconnect)
                logger.warning("webhooks: LISTEN connection lost (%s); reconnecting", exc)
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), 2)

    async def _housekeep(self) -> None:
        last_prune = -PRUNE_SECONDS
        loop = asyncio.get_running_loop()
        while not self.stopping:
            try:
                if loop.time() - last_prune >= PRUNE_SECONDS:
                    last_prune = loop.time()
                    before = utcnow() - timedelta(days=self.settings.webhook_log_days)
                    async with self.store.read() as tx:
                        old = await any_old(tx, before=before)
                    if old:  # else no write lock is taken
                        async with self.store.write() as tx:
                            await prune_deliveries(tx, before=before)
                if metrics.active is not None:
                    async with self.store.read() as tx:
                        metrics.active.webhook_pending.set(await pending_count(tx))
            except Exception as exc:  # noqa: BLE001  (next round)
                logger.warning("webhooks: housekeeping failed (%s)", exc)
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
