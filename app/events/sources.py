"""Where the broker's revisions come from (only while at least one stream is open).

- PostgreSQL (`listen`): a trigger on `assistant_revisions` (migration 0005) sends
  `pg_notify('assistant_changes', '<org_id>:<seq>')` for every inserted revision; PostgreSQL
  delivers notifications after COMMIT, in commit order, to every listening process on every
  machine. Each process keeps one asyncpg LISTEN connection and reads the rows by seq; after a
  lost connection it reconnects and reads what committed meanwhile (the catch-up).
- SQLite (`poll`): each process polls `assistant_revisions WHERE seq > last_seen ORDER BY seq`
  every `events_poll_interval` seconds. Writers are serialised (BEGIN IMMEDIATE), so seqs commit
  in order and a reader never sees a later seq before an earlier one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

from app.domain.change_events import last_revision_seq, revisions_after, revisions_by_seq
from app.domain.errors import DatabaseUnavailable
from app.domain.revisions import CHANNEL
from app.settings import Settings
from app.store import Store, Tx
from app.store.postgres import libpq_dsn
from app.store.records import RevisionRecord

logger = logging.getLogger("app.events")

RETRY_SECONDS = 1.0
LISTEN_HEALTH_SECONDS = 5.0
CATCH_UP_WINDOW = 1_000  # PostgreSQL seqs may commit out of order: look back this far
LISTEN_CONNECT_SECONDS = 5.0
# The LISTEN connection (or the store, reading what it announced) was lost: reconnect, then
# read what committed meanwhile (the catch-up), so live subscribers miss nothing.
LISTEN_LOST = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    DatabaseUnavailable,
)


class Source:
    """One run of the task that feeds the streams: from the first open stream to the last."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.payloads: asyncio.Queue[str] = asyncio.Queue()  # PostgreSQL notifications
        self.task: asyncio.Task[None] | None = None
        self.floor = 0  # the newest seq when it started: nothing older is sent
        self.last_seq: int | None = None

    def retire(self) -> None:
        """Stops at the next wait (never in the middle of a query)."""
        self.stop.set()
        self.payloads.put_nowait("")

    async def pause(self, seconds: float) -> bool:
        """Waits `seconds`; True when told to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        return self.stop.is_set()


# what a source hands its revisions to (Broker.dispatch), with the transaction that read them
Dispatch = Callable[[Source, list[RevisionRecord], Tx], Coroutine[Any, Any, None]]
Feed = Callable[[Store, Settings, Source, Dispatch], Coroutine[Any, Any, None]]


def feed_of(settings: Settings) -> Feed:
    """The source of this database: `poll` on SQLite, `listen` on PostgreSQL."""
    return poll if settings.is_sqlite else listen


async def catch_up(store: Store, settings: Settings, source: Source, dispatch: Dispatch) -> None:
    """The first time, where the stream starts; afterwards, what was not yet sent."""
    async with store.read() as tx:
        if source.last_seq is None:
            source.floor = source.last_seq = await last_revision_seq(tx)
            return
        window = 0 if settings.is_sqlite else CATCH_UP_WINDOW
        after = max(source.floor, source.last_seq - window)
        while rows := await revisions_after(tx, after_seq=after):
            await dispatch(source, rows, tx)
            after = rows[-1].seq or after


async def poll(store: Store, settings: Settings, source: Source, dispatch: Dispatch) -> None:
    """SQLite: read what was committed since the last poll, in seq (= commit) order."""
    while not source.stop.is_set():
        try:
            await catch_up(store, settings, source, dispatch)
            source.ready.set()
        except (sqlite3.Error, OSError, DatabaseUnavailable) as exc:
            logger.warning("events: cannot read revisions (%s); retrying", exc)
        await source.pause(settings.events_poll_interval)


async def listen(store: Store, settings: Settings, source: Source, dispatch: Dispatch) -> None:
    """PostgreSQL: one LISTEN connection; after a reconnect, what committed meanwhile."""
    dsn = libpq_dsn(settings.database_url)
    while not source.stop.is_set():
        try:
            connection = await asyncpg.connect(dsn, timeout=LISTEN_CONNECT_SECONDS)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            logger.warning("events: cannot LISTEN (%s); retrying", exc)
            await source.pause(RETRY_SECONDS)
            continue
        try:
            await _listen_on(connection, store, settings, source, dispatch)
        except LISTEN_LOST as exc:
            logger.warning("events: LISTEN connection lost (%s); reconnecting", exc)
            await source.pause(RETRY_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)


async def _listen_on(
    connection: asyncpg.Connection[Any],
    store: Store,
    settings: Settings,
    source: Source,
    dispatch: Dispatch,
) -> None:
    await connection.add_listener(CHANNEL, lambda *args: source.payloads.put_nowait(args[-1]))
    # after a reconnect: what committed while nobody listened
    await catch_up(store, settings, source, dispatch)
    source.ready.set()
    while not source.stop.is_set():
        try:
            batch = [await asyncio.wait_for(source.payloads.get(), LISTEN_HEALTH_SECONDS)]
        except TimeoutError:
            await connection.execute("SELECT 1", timeout=LISTEN_HEALTH_SECONDS)  # dead: raises
            continue
        while not source.payloads.empty():
            batch.append(source.payloads.get_nowait())
        seqs = [int(p.rpartition(":")[2]) for p in batch if p]
        if seqs:
            async with store.read() as tx:
                rows = await revisions_by_seq(tx, seqs)
                await dispatch(source, rows, tx)
