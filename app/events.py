"""Live change events: one broker per process fans revisions out to its open streams.

Where the revisions come from (only while at least one stream is open):

- PostgreSQL: every inserted revision sends `pg_notify('assistant_changes', '<org_id>:<seq>')`
  in its own transaction (the revision's INSERT does, app/domain/revisions.py); PostgreSQL
  delivers notifications after COMMIT, in commit order, to every listening process on every
  machine. Each process keeps one asyncpg LISTEN connection and reads the rows by seq.
- SQLite: each process polls `assistant_revisions WHERE seq > last_seen ORDER BY seq` every
  `events_poll_interval` seconds. Writers are serialised (BEGIN IMMEDIATE), so seqs commit in
  order and a reader never sees a later seq before an earlier one.

Each stream has a bounded queue: a subscriber that falls `events_queue_size` events behind is
dropped (SLOW_CONSUMER), never buffered without bound. Every `events_key_check_seconds` one
query re-checks the API keys of all open streams; a revoked or expired key's streams close.
A stream carries the changes of one organisation, or of some of its assistants (one asked for,
or those an assistant-bound key is restricted to).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Collection
from typing import Any

import asyncpg

from app.domain.errors import DatabaseUnavailable, DomainError, Unauthenticated
from app.domain.events import dead_keys, last_revision_seq, revisions_after, revisions_by_seq
from app.domain.revisions import CHANNEL
from app.http.errors import RateLimited
from app.observability import metrics
from app.settings import Settings
from app.store import Store
from app.store.postgres import libpq_dsn
from app.store.records import RevisionRecord

logger = logging.getLogger("app.events")

READY_TIMEOUT = 10.0
RETRY_SECONDS = 1.0
LISTEN_HEALTH_SECONDS = 5.0
RECENT_SEQS = 10_000
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


class SlowConsumer(DomainError):
    code = "SLOW_CONSUMER"


class ShuttingDown(DomainError):
    """The process is shutting down (app/shutdown.py): its streams end, and an SSE client is
    told to reconnect after `retry_ms` (to another process behind the load balancer)."""

    code = "SHUTTING_DOWN"
    retry_ms = 1000
    retry_after = 1  # a new stream refused meanwhile: 503 with `Retry-After: 1`


class TooManyStreams(RateLimited):
    code = "TOO_MANY_STREAMS"


class TooManyStreamsForKey(TooManyStreams):
    """EVENTS_MAX_STREAMS_PER_KEY: one API key's fair share of the process's streams."""

    code = "TOO_MANY_STREAMS"


class EventsUnavailable(DomainError):
    code = "EVENTS_UNAVAILABLE"


class Stream:
    """One subscriber: the revisions of one organisation (or of some of its assistants), in
    order."""

    def __init__(
        self, *, org_id: str, assistant_ids: Collection[str] | None, key_id: str, size: int
    ) -> None:
        self.org_id = org_id
        self.assistant_ids = None if assistant_ids is None else frozenset(assistant_ids)
        self.key_id = key_id
        self._size = size
        self._queue: deque[RevisionRecord] = deque()
        self._wake = asyncio.Event()
        self.closed: DomainError | None = None
        self.gauge: Any = None  # its event_streams_open child while counted there

    def push(self, revision: RevisionRecord) -> None:
        if self.closed is not None:
            return
        if self.assistant_ids is not None and revision.assistant_id not in self.assistant_ids:
            return
        if len(self._queue) >= self._size:
            self.close(SlowConsumer(f"more than {self._size} events waited: the stream is closed"))
            return
        self._queue.append(revision)
        self._wake.set()

    def close(self, reason: DomainError) -> None:
        if self.closed is None:
            self.closed = reason
            self._queue.clear()
            self._wake.set()

    async def next(self, wait: float | None = None) -> RevisionRecord | None:
        """The next revision; None after `wait` seconds without one; raises the close reason."""
        while True:
            if self.closed is not None:
                raise self.closed
            if self._queue:
                return self._queue.popleft()
            self._wake.clear()
            try:
                async with asyncio.timeout(wait):  # not wait_for: see Broker._ready
                    await self._wake.wait()
            except TimeoutError:
                return None


class _Source:
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


class Broker:
    """The open streams of this process and the one task that feeds them."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._streams: dict[str, set[Stream]] = defaultdict(set)
        self._count = 0
        self._per_key: dict[str, int] = defaultdict(int)  # open streams of each API key
        self._source: _Source | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self._recent: deque[int] = deque(maxlen=RECENT_SEQS)
        self._recent_set: set[int] = set()
        self._stopping = False

    @property
    def open_streams(self) -> int:
        return self._count

    async def open(
        self,
        *,
        org_id: str,
        assistant_ids: Collection[str] | None,
        key_id: str,
        transport: str = "sse",
    ) -> Stream:
        """A new stream, once the source listens (so nothing committed after this is missed);
        `transport` (sse, websocket) labels it in event_streams_open."""
        if self._stopping:
            raise ShuttingDown("the server is shutting down")
        if self._count >= self.settings.events_max_streams:
            raise TooManyStreams("too many open event streams on this server", retry_after=5)
        if self._per_key.get(key_id, 0) >= self.settings.events_max_streams_per_key:
            limit = self.settings.events_max_streams_per_key
            message = f"this API key has {limit} open event streams on this server already"
            raise TooManyStreamsForKey(message, retry_after=5)
        source = await self._source_for_a_new_stream()
        stream = Stream(
            org_id=org_id,
            assistant_ids=assistant_ids,
            key_id=key_id,
            size=self.settings.events_queue_size,
        )
        self._streams[org_id].add(stream)
        self._count += 1
        self._per_key[key_id] += 1
        stream.gauge = None if metrics.active is None else metrics.active.stream_opened(transport)
        try:
            await self._ready(source)
        except BaseException:
            self.release(stream)
            raise
        return stream

    def release(self, stream: Stream) -> None:
        """Forgets a stream (idempotent); the source stops with the last one."""
        streams = self._streams.get(stream.org_id)
        if streams is None or stream not in streams:
            return
        streams.discard(stream)
        self._count -= 1
        if self._per_key[stream.key_id] <= 1:
            del self._per_key[stream.key_id]
        else:
            self._per_key[stream.key_id] -= 1
        if stream.gauge is not None:
            stream.gauge.dec()
        if not streams:
            del self._streams[stream.org_id]
        if self._count == 0:
            self._retire()

    @contextlib.asynccontextmanager
    async def stream(
        self,
        *,
        org_id: str,
        assistant_ids: Collection[str] | None,
        key_id: str,
        transport: str = "sse",
    ) -> AsyncIterator[Stream]:
        stream = await self.open(
            org_id=org_id, assistant_ids=assistant_ids, key_id=key_id, transport=transport
        )
        try:
            yield stream
        finally:
            self.release(stream)

    def close_all(self, reason: DomainError) -> None:
        for streams in list(self._streams.values()):
            for stream in list(streams):
                stream.close(reason)

    def shutting_down(self) -> None:
        """Refuses new streams and closes the open ones (their clients resume elsewhere)."""
        self._stopping = True
        self.close_all(ShuttingDown("the server is shutting down"))

    async def stop(self) -> None:
        self.shutting_down()
        self._retire()
        if self._retired:
            _done, pending = await asyncio.wait(self._retired, timeout=READY_TIMEOUT)
            for task in pending:
                task.cancel()

    def _retire(self) -> None:
        source, self._source = self._source, None
        if source is not None and source.task is not None:
            source.retire()
            self._retired.add(source.task)
            source.task.add_done_callback(self._retired.discard)

    def _live_source(self) -> _Source | None:
        source = self._source
        if source is None or source.task is None or source.task.done():
            return None
        return source

    async def _source_for_a_new_stream(self) -> _Source:
        """The running source, or a new one whose starting point was read before the new stream
        is registered: whatever commits once the stream is open reaches it, even while the new
        source is still connecting (its catch-up sends what came after that point)."""
        source = self._live_source()
        if source is not None:
            return source
        try:
            async with asyncio.timeout(READY_TIMEOUT), self.store.read() as tx:
                floor = await last_revision_seq(tx)
        except (TimeoutError, OSError, sqlite3.Error, asyncpg.PostgresError) as exc:
            logger.warning("events: cannot read where the stream starts (%s)", exc)
            raise EventsUnavailable("live changes are unavailable: try again later") from None
        source = self._live_source()  # another stream may have started one meanwhile
        if source is None:
            source = self._source = _Source()
            source.floor = source.last_seq = floor
            source.task = asyncio.create_task(self._run(source), name="events")
        return source

    async def _ready(self, source: _Source) -> None:
        ready = source.ready
        if ready.is_set():
            return
        # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a cancellation that
        # arrives as the awaited event is set, and the stream's task (a websocket closed while
        # the subscription started) then waits for events forever
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await ready.wait()
        except TimeoutError:
            raise EventsUnavailable("live changes are unavailable: try again later") from None

    async def _run(self, source: _Source) -> None:
        feed = self._listen if not self.settings.is_sqlite else self._poll
        while not source.stop.is_set():
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(feed(source))
                    group.create_task(self._check_keys(source))
            except Exception:  # a bug, not a lost connection: log it and start again
                logger.exception("events: the broker failed; restarting")
                await source.pause(RETRY_SECONDS)

    async def _catch_up(self, source: _Source) -> None:
        """The first time, where the stream starts; afterwards, what was not yet sent."""
        async with self.store.read() as tx:
            if source.last_seq is None:
                source.floor = source.last_seq = await last_revision_seq(tx)
                return
            window = 0 if self.settings.is_sqlite else CATCH_UP_WINDOW
            after = max(source.floor, source.last_seq - window)
            while rows := await revisions_after(tx, after_seq=after):
                self._dispatch(source, rows)
                after = rows[-1].seq or after

    def _dispatch(self, source: _Source, revisions: list[RevisionRecord]) -> None:
        if source.stop.is_set():  # a newer source may be running: never both
            return
        for revision in revisions:
            seq = revision.seq or 0
            source.last_seq = max(source.last_seq or 0, seq)
            if seq in self._recent_set:
                continue
            if len(self._recent) == self._recent.maxlen:
                self._recent_set.discard(self._recent[0])
            self._recent.append(seq)
            self._recent_set.add(seq)
            for stream in list(self._streams.get(revision.org_id, ())):
                stream.push(revision)

    async def _poll(self, source: _Source) -> None:
        """SQLite: read what was committed since the last poll, in seq (= commit) order."""
        while not source.stop.is_set():
            try:
                await self._catch_up(source)
                source.ready.set()
            except (sqlite3.Error, OSError, DatabaseUnavailable) as exc:
                logger.warning("events: cannot read revisions (%s); retrying", exc)
            await source.pause(self.settings.events_poll_interval)

    async def _listen(self, source: _Source) -> None:
        """PostgreSQL: one LISTEN connection; after a reconnect, what committed meanwhile."""
        dsn = libpq_dsn(self.settings.database_url)
        while not source.stop.is_set():
            try:
                connection = await asyncpg.connect(dsn, timeout=LISTEN_CONNECT_SECONDS)
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                logger.warning("events: cannot LISTEN (%s); retrying", exc)
                await source.pause(RETRY_SECONDS)
                continue
            try:
                await self._listen_on(connection, source)
            except LISTEN_LOST as exc:
                logger.warning("events: LISTEN connection lost (%s); reconnecting", exc)
                await source.pause(RETRY_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), 2)

    async def _listen_on(self, connection: asyncpg.Connection[Any], source: _Source) -> None:
        await connection.add_listener(CHANNEL, lambda *args: source.payloads.put_nowait(args[-1]))
        await self._catch_up(source)  # after a reconnect: what committed while nobody listened
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
                async with self.store.read() as tx:
                    rows = await revisions_by_seq(tx, seqs)
                self._dispatch(source, rows)

    async def _check_keys(self, source: _Source) -> None:
        """Closes, within `events_key_check_seconds`, the streams whose API key was revoked or
        has expired."""
        while not await source.pause(self.settings.events_key_check_seconds):
            streams = [s for group in list(self._streams.values()) for s in group]
            keys = {stream.key_id for stream in streams}
            try:
                async with self.store.read() as tx:
                    dead = await dead_keys(tx, keys)
            except (*LISTEN_LOST, sqlite3.Error) as exc:
                logger.warning("events: cannot check API keys (%s)", exc)
                continue
            for stream in streams:
                if (reason := dead.get(stream.key_id)) is not None:
                    stream.close(Unauthenticated(reason))
