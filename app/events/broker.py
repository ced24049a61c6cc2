"""The open streams of one process and the one task that feeds them (app/events/sources.py).

Each stream has a bounded queue: a subscriber that falls `events_queue_size` events behind is
dropped (SLOW_CONSUMER), never buffered without bound. A process holds at most
`events_max_streams` streams, one API key at most `events_max_streams_per_key` and one
organisation (all its keys) at most `events_max_streams_per_org`. A stream carries the changes
of one organisation, or of some of its assistants (one asked for, or those an assistant-bound
key is restricted to).

Two orderings hold with the commits (docs/websocket-and-streams.md):
- a stream opened without an event id to resume from carries only what committed after it
  opened: once registered, it reads where the history stands (`starting_point`), and drops
  what was committed by then, even when the source hands it over later (a poll or a
  notification already on its way when the stream registered);
- a stream gets nothing committed after its key's revocation (or expiry): each batch a source
  read is handed over only after the keys of the streams it goes to were read again, after the
  batch (so a key still valid then was valid when each of its revisions committed); the
  streams of a dead key close at once. `check_keys` closes idle ones within seconds.
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

from app.domain.change_events import dead_keys, last_revision_seq, starting_point
from app.domain.errors import DomainError, Unauthenticated
from app.events.keys import check_keys
from app.events.sources import CATCH_UP_WINDOW, RETRY_SECONDS, Source, feed_of
from app.http.errors import RateLimited
from app.observability import metrics
from app.settings import Settings
from app.store import Store, Tx
from app.store.records import RevisionRecord

logger = logging.getLogger("app.events")

READY_TIMEOUT = 10.0
RECENT_SEQS = 10_000


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


class TooManyStreamsForOrg(TooManyStreams):
    """EVENTS_MAX_STREAMS_PER_ORG: one organisation's fair share (its keys share it)."""

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
        # where it starts (`start_after`): nothing committed by then is carried
        self._floor = 0
        self._window = 0
        self._committed: frozenset[int] = frozenset()

    def start_after(self, floor: int, committed: frozenset[int], window: int) -> None:
        """Carries only what was not committed when the stream started: seqs above `floor`
        (the newest committed then), and of the `window` seqs below it those not in
        `committed` (PostgreSQL commits seqs out of order); what arrived meanwhile is sifted."""
        self._floor, self._committed, self._window = floor, committed, window
        kept = [row for row in self._queue if not self._committed_before(row.seq or 0)]
        self._queue = deque(kept)

    def _committed_before(self, seq: int) -> bool:
        return seq <= self._floor and (seq <= self._floor - self._window or seq in self._committed)

    def push(self, revision: RevisionRecord) -> None:
        if self.closed is not None:
            return
        if self.assistant_ids is not None and revision.assistant_id not in self.assistant_ids:
            return
        if revision.seq is not None and self._committed_before(revision.seq):
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


class Broker:
    """The open streams of this process and the one task that feeds them."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._streams: dict[str, set[Stream]] = defaultdict(set)
        self._count = 0
        self._per_key: dict[str, int] = defaultdict(int)  # open streams of each API key
        self._source: Source | None = None
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
        from_now: bool = True,
    ) -> Stream:
        """A new stream, once the source listens (so nothing committed after this is missed);
        `transport` (sse, websocket) labels it in event_streams_open. `from_now`: it carries
        only what commits from now on (False: the caller replays from an event id first, and
        skips what it replayed, app/events/resume.py)."""
        if self._stopping:
            raise ShuttingDown("the server is shutting down")
        settings = self.settings
        if self._count >= settings.events_max_streams:
            raise TooManyStreams("too many open event streams on this server", retry_after=5)
        if self._per_key.get(key_id, 0) >= settings.events_max_streams_per_key:
            limit = settings.events_max_streams_per_key
            message = f"this API key has {limit} open event streams on this server already"
            raise TooManyStreamsForKey(message, retry_after=5)
        if len(self._streams.get(org_id, ())) >= settings.events_max_streams_per_org:
            limit = settings.events_max_streams_per_org
            message = f"this organisation has {limit} open event streams on this server already"
            raise TooManyStreamsForOrg(message, retry_after=5)
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
            if from_now:
                await self._start_from_now(stream)
            await self._ready(source)
        except BaseException:
            self.release(stream)
            raise
        return stream

    async def _start_from_now(self, stream: Stream) -> None:
        """Once `stream` is registered: where the history stands, so that what was committed
        before is never carried (even when the source hands it over after this)."""
        window = 0 if self.settings.is_sqlite else CATCH_UP_WINDOW  # SQLite commits in seq order
        try:
            async with asyncio.timeout(READY_TIMEOUT), self.store.read() as tx:
                floor, committed = await starting_point(tx, org_id=stream.org_id, window=window)
        except (TimeoutError, OSError, sqlite3.Error, asyncpg.PostgresError) as exc:
            logger.warning("events: cannot read where the stream starts (%s)", exc)
            raise EventsUnavailable("live changes are unavailable: try again later") from None
        stream.start_after(floor, committed, window)

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
        from_now: bool = True,
    ) -> AsyncIterator[Stream]:
        stream = await self.open(
            org_id=org_id,
            assistant_ids=assistant_ids,
            key_id=key_id,
            transport=transport,
            from_now=from_now,
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

    def _live_source(self) -> Source | None:
        source = self._source
        if source is None or source.task is None or source.task.done():
            return None
        return source

    async def _source_for_a_new_stream(self) -> Source:
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
            source = self._source = Source()
            source.floor = source.last_seq = floor
            source.task = asyncio.create_task(self._run(source), name="events")
        return source

    async def _ready(self, source: Source) -> None:
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

    async def _run(self, source: Source) -> None:
        feed = feed_of(self.settings)
        while not source.stop.is_set():
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(feed(self.store, self.settings, source, self.dispatch))
                    group.create_task(
                        check_keys(self.store, self.settings, source, self._open_streams)
                    )
            except Exception:  # a bug, not a lost connection: log it and start again
                logger.exception("events: the broker failed; restarting")
                await source.pause(RETRY_SECONDS)

    def _open_streams(self) -> list[Stream]:
        return [stream for group in list(self._streams.values()) for stream in group]

    async def dispatch(self, source: Source, revisions: list[RevisionRecord], tx: Tx) -> None:
        """Fans a source's revisions out to the streams of their organisation (each seq once),
        `tx` being the transaction that read them: the keys of those streams are read again
        first, and the streams of a key revoked or expired by then close instead (see above).
        A stream registered meanwhile gets none of them: they committed before it opened."""
        if source.stop.is_set():  # a newer source may be running: never both
            return
        recent = self._recent_set
        orgs = {row.org_id for row in revisions if row.seq not in recent}
        targets = {org_id: list(self._streams.get(org_id, ())) for org_id in orgs}
        keys = {stream.key_id for streams in targets.values() for stream in streams}
        dead = await dead_keys(tx, keys) if keys else {}  # raises: nothing is marked sent
        if source.stop.is_set():
            return
        for streams in targets.values():
            for stream in streams:
                if (reason := dead.get(stream.key_id)) is not None:
                    stream.close(Unauthenticated(reason))
        for revision in revisions:
            seq = revision.seq or 0
            source.last_seq = max(source.last_seq or 0, seq)
            if seq in recent:
                continue
            if len(self._recent) == self._recent.maxlen:
                recent.discard(self._recent[0])
            self._recent.append(seq)
            recent.add(seq)
            for stream in targets.get(revision.org_id, ()):
                stream.push(revision)
