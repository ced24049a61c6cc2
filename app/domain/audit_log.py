"""Reading the audit log: the list (filters, newest first), the export, the chain's check and
retention (docs/audit-log.md). Nothing here changes an entry; retention removes whole old ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, select

from app.domain.access import Access, Scope, requires
from app.domain.audit import HEADS, LOG, chain_hash, entry_document, seal_pending
from app.domain.errors import DomainError, FieldError, ValidationFailed
from app.models import utcnow
from app.store import Statement, Store, Tx
from app.store.records import AuditRecord

logger = logging.getLogger("app.audit")

MAX_ID = 2**63 - 1
BATCH = 1000


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What the list keeps: each given criterion must hold (`since` inclusive, `until`
    exclusive)."""

    actor_key_id: str | None = None
    action: str | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def given(self) -> tuple[str, ...]:
        return tuple(name for name in self.__slots__ if getattr(self, name) is not None)


def parse_instant(value: str, name: str) -> datetime:
    """An RFC 3339 instant with its offset (`2026-12-07T10:00:00Z`), or 400 naming `name`."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        message = "must be an RFC 3339 date-time with an offset, like 2026-12-07T10:00:00Z"
        raise ValidationFailed(f"invalid '{name}'", [FieldError((name,), message)])
    return moment


_CONDITIONS: dict[str, Any] = {
    "actor_key_id": LOG.c.actor_key_id == bindparam("actor_key_id"),
    "action": LOG.c.action == bindparam("action"),
    "resource_id": LOG.c.resource_id == bindparam("resource_id"),
    "since": LOG.c.at >= bindparam("since", type_=LOG.c.at.type),
    "until": LOG.c.at < bindparam("until", type_=LOG.c.at.type),
}


@lru_cache(maxsize=64)
def _statements(given: tuple[str, ...]) -> tuple[Statement[Select[Any]], Statement[Select[Any]]]:
    """(page, count) for one set of criteria: built once per set."""
    where = [LOG.c.org_id == bindparam("org_id"), *(_CONDITIONS[name] for name in given)]
    page = (
        select(LOG)
        .where(*where, LOG.c.id < bindparam("before_id"))
        .order_by(LOG.c.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    count = select(func.count()).select_from(LOG).where(*where)
    return Statement(page), Statement(count)


def _parameters(access: Access, criteria: AuditFilter) -> dict[str, Any]:
    return {"org_id": access.org_id, **{name: getattr(criteria, name) for name in criteria.given()}}


@requires(Scope.AUDIT)
async def list_audit_log(
    tx: Tx,
    *,
    access: Access,
    criteria: AuditFilter,
    limit: int,
    offset: int = 0,
    before_id: int | None = None,
) -> list[AuditRecord]:
    """The organisation's entries that meet `criteria`, newest first: a window at an `offset`
    (pages) or below an id (cursors). `tx` is a write transaction: what is pending is chained
    first (PostgreSQL; app/domain/audit.py)."""
    await seal_pending(tx, access.org_id)
    page, _ = _statements(criteria.given())
    parameters = {
        **_parameters(access, criteria),
        "before_id": MAX_ID if before_id is None else before_id,
        "limit": limit,
        "offset": offset,
    }
    return await tx.all(page, parameters, AuditRecord)


@requires(Scope.AUDIT)
async def count_audit_log(tx: Tx, *, access: Access, criteria: AuditFilter) -> int:
    """How many entries meet `criteria` (in a write transaction, as `list_audit_log`)."""
    await seal_pending(tx, access.org_id)
    _, count = _statements(criteria.given())
    return int(await tx.scalar(count, _parameters(access, criteria)) or 0)


# -- the command line: export, verify, retention ----------------------------------------------

_FORWARD = Statement(
    select(LOG)
    .where(
        LOG.c.org_id == bindparam("org_id"),
        LOG.c.id > bindparam("after_id"),
        LOG.c.at >= bindparam("since", type_=LOG.c.at.type),
    )
    .order_by(LOG.c.id)
    .limit(BATCH)
)
_LAST_HASH = Statement(select(HEADS.c.last_hash).where(HEADS.c.org_id == bindparam("org_id")))
_PRUNE = Statement(delete(LOG).where(LOG.c.at < bindparam("cutoff", type_=LOG.c.at.type)))
_EPOCH = datetime.fromisoformat("0001-01-01T00:00:00+00:00")


async def entries_in_order(
    store: Store, org_id: str, since: datetime | None = None
) -> AsyncIterator[AuditRecord]:
    """Every entry of the organisation (from `since`), oldest first, read in batches (what is
    pending chained first)."""
    async with store.write() as tx:
        await seal_pending(tx, org_id)
    after_id = 0
    while True:
        async with store.read() as tx:
            parameters = {"org_id": org_id, "after_id": after_id, "since": since or _EPOCH}
            rows = await tx.all(_FORWARD, parameters, AuditRecord)
        for row in rows:
            yield row
        if len(rows) < BATCH:
            return
        after_id = int(rows[-1].id or 0)


@dataclass(frozen=True, slots=True)
class Verdict:
    entries: int
    broken_at: int | None = None  # the id of the first entry whose hash does not follow
    reason: str | None = None

    def document(self) -> dict[str, Any]:
        found: dict[str, Any] = {"entries": self.entries, "ok": self.broken_at is None}
        if self.broken_at is not None:
            found |= {"first_bad_id": self.broken_at, "reason": self.reason}
        return found


async def verify_chain(store: Store, org_id: str) -> Verdict:
    """Checks the organisation's chain from its oldest kept entry: each entry's hash follows
    from the one before it (the oldest from the previous hash it recorded), and the last one
    is the chain's head."""
    previous: str | None = None
    count = 0
    last: AuditRecord | None = None
    async for entry in entries_in_order(store, org_id):
        count += 1
        expected_previous = entry.prev_hash if previous is None else previous
        if entry.prev_hash != expected_previous:
            return Verdict(count, entry.id, "does not follow the entry before it")
        if chain_hash(expected_previous, entry_document(entry)) != entry.hash:
            return Verdict(count, entry.id, "its hash does not match its content")
        previous, last = entry.hash, entry
    async with store.read() as tx:
        head = await tx.scalar(_LAST_HASH, {"org_id": org_id})
    if last is not None and head != last.hash:
        return Verdict(count, last.id, "entries after it are missing")
    return Verdict(count)


async def remove_older_than(tx: Tx, cutoff: datetime) -> int:
    """AUDIT_KEEP_DAYS: removes the entries written before `cutoff` (every organisation); each
    chain stays verifiable from its oldest kept entry."""
    return await tx.execute(_PRUNE, {"cutoff": cutoff})


PRUNE_EVERY_SECONDS = 3600.0


async def prune(store: Store, keep_days: float) -> int:
    """Removes the entries older than `keep_days` days; how many."""
    async with store.write() as tx:
        return await remove_older_than(tx, utcnow() - timedelta(days=keep_days))


async def keep_pruning(store: Store, keep_days: float, every: float = PRUNE_EVERY_SECONDS) -> None:
    """`serve`'s retention task: prunes at start, then every hour (a failed round is logged
    and tried again at the next)."""
    while True:
        try:
            removed = await prune(store, keep_days)
            if removed:
                logger.info("removed %d audit entries older than %s days", removed, keep_days)
        except DomainError as exc:
            logger.warning("could not remove old audit entries: %s", exc)
        await asyncio.sleep(every)
