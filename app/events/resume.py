"""Resuming after an event id, for every transport (SSE `Last-Event-ID`, the GraphQL
subscription's `afterEventId`): the stream is opened first, then the revisions it missed are
read from the table (`replay`), then its live revisions follow, those already replayed skipped
(`fresh`): no gap, no duplicate. Each page replayed is sent only when the stream's key still
opens its organisation after it was read (else the stream closes, UNAUTHENTICATED), so nothing
committed after a revocation is replayed either."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.domain.change_events import dead_keys, revisions_after
from app.domain.errors import Unauthenticated
from app.events.broker import Stream
from app.store import Store
from app.store.records import RevisionRecord


class Resume:
    """One stream's resumption after `after_seq` (None: nothing to replay)."""

    __slots__ = ("_replayed", "after_seq", "store", "stream")

    def __init__(self, store: Store, stream: Stream, after_seq: int | None) -> None:
        self.store = store
        self.stream = stream
        self.after_seq = after_seq
        self._replayed: set[int] = set()

    async def replay(self) -> AsyncIterator[RevisionRecord]:
        """The stream's revisions with a seq above `after_seq`, from the table, oldest first."""
        if self.after_seq is None:
            return
        after_seq, stream = self.after_seq, self.stream
        while True:
            async with self.store.read() as tx:
                rows = await revisions_after(
                    tx,
                    after_seq=after_seq,
                    org_id=stream.org_id,
                    assistant_ids=stream.assistant_ids,
                )
                dead = await dead_keys(tx, (stream.key_id,)) if rows else {}
            if (reason := dead.get(stream.key_id)) is not None:
                stream.close(Unauthenticated(reason))  # its next() raises it
                return
            for row in rows:
                self._replayed.add(row.seq or 0)
                yield row
            if not rows:
                return
            after_seq = rows[-1].seq or after_seq

    def fresh(self, live: RevisionRecord) -> bool:
        """False for a live revision that `replay` sent already."""
        return not self._replayed or live.seq not in self._replayed
