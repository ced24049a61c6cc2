"""Change events: the revisions read back as events (live fan-out and `Last-Event-ID` resumes).

An event is a revision without its snapshot and author: `{"id", "org_id", "assistant_id",
"version", "change_type", "changes"}`, where `id` is the revision's `seq` (a decimal string);
a `published` event (docs/releases.md) also carries its `release` and `environment`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, select

from app.domain.access import Access, Scope, requires
from app.domain.errors import FieldError, NotFound, ValidationFailed
from app.domain.revisions import DUPLICATED_FROM, PUBLISHED
from app.models import ApiKey, AssistantRevision, utcnow
from app.store import Statement, Tx, in_list
from app.store.records import RevisionRecord

REPLAY_PAGE = 500
MAX_SEQ = 2**63 - 1
STORED_SEQ_MAX = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL


def event_document(revision: RevisionRecord) -> dict[str, Any]:
    document = {
        "id": str(revision.seq),
        "org_id": revision.org_id,
        "assistant_id": revision.assistant_id,
        "version": revision.version,
        "change_type": revision.change_type,
        "changes": revision.changes,
    }
    if revision.change_type == PUBLISHED:  # its release and environment (docs/releases.md)
        document["release"] = revision.snapshot.get("release")
        document["environment"] = revision.snapshot.get("environment")
    if DUPLICATED_FROM in revision.snapshot:  # a duplicate's source (docs/duplicate.md)
        document[DUPLICATED_FROM] = revision.snapshot[DUPLICATED_FROM]
    return document


def parse_event_id(raw: str | None, name: str = "last_event_id") -> int | None:
    """A `Last-Event-ID` (a revision's seq); None when absent, 400 naming `name` when not one."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if value.isascii() and value.isdigit() and len(value) <= 19 and int(value) <= MAX_SEQ:
        return int(value)
    raise ValidationFailed(
        f"'{name}' must be the id of an event", [FieldError((name,), "must be an event id")]
    )


# mypy ignore below: SQLModel's metaclass sets __table__
REVISIONS = AssistantRevision.__table__  # type: ignore[attr-defined]
KEYS = ApiKey.__table__  # type: ignore[attr-defined]
_LAST_SEQ = Statement(select(func.max(REVISIONS.c.seq)))


def _after(of_org: bool, of_assistants: bool) -> Statement[Select[Any]]:
    clause = select(REVISIONS).where(REVISIONS.c.seq > bindparam("after_seq"))
    if of_org:
        clause = clause.where(REVISIONS.c.org_id == bindparam("org_id"))
    if of_assistants:
        clause = clause.where(in_list(REVISIONS.c.assistant_id, "assistant_ids"))
    return Statement(clause.order_by(REVISIONS.c.seq).limit(bindparam("limit")))


# one statement per filter (of an organisation? of some assistants?), each built once
_AFTER = {(org, some): _after(org, some) for org in (False, True) for some in (False, True)}
_SEQS_OF_ORG = Statement(
    select(REVISIONS.c.seq).where(
        REVISIONS.c.org_id == bindparam("org_id"), REVISIONS.c.seq > bindparam("after_seq")
    )
)
_BY_SEQ = Statement(select(REVISIONS).where(in_list(REVISIONS.c.seq, "seqs")))
_UNREVOKED_KEYS = Statement(
    select(KEYS.c.id, KEYS.c.expires_at).where(
        in_list(KEYS.c.id, "key_ids"), KEYS.c.revoked_at.is_(None)
    )
)


@requires(Scope.READ)
async def watch_changes(
    tx: Tx, *, access: Access, assistant_id: str | None
) -> frozenset[str] | None:
    """The assistants whose changes a new stream carries (None: every assistant of the
    organisation): the one asked for, or else every one the caller sees. An assistant the
    caller does not see is NOT_FOUND."""
    if assistant_id is None:
        return access.assistant_ids
    if not access.sees(assistant_id):
        raise NotFound(f"no assistant '{assistant_id}' in this organisation")
    return frozenset({assistant_id})


async def last_revision_seq(tx: Tx) -> int:
    """The newest revision's seq (0 when there is none): where a live stream starts."""
    return int(await tx.scalar(_LAST_SEQ) or 0)


async def starting_point(tx: Tx, *, org_id: str, window: int) -> tuple[int, frozenset[int]]:
    """Where a new live stream of `org_id` starts: the newest committed seq, and the seqs of
    the organisation among the `window` below it that are committed (on PostgreSQL a lower seq
    may still commit later: it is news, those already committed are not)."""
    floor = await last_revision_seq(tx)
    if window <= 0:
        return floor, frozenset()
    after = max(0, floor - window)
    rows = await tx.all(_SEQS_OF_ORG, {"org_id": org_id, "after_seq": min(after, STORED_SEQ_MAX)})
    return floor, frozenset(int(row[0]) for row in rows)


async def revisions_after(
    tx: Tx,
    *,
    after_seq: int,
    org_id: str | None = None,
    assistant_ids: Collection[str] | None = None,
    limit: int = REPLAY_PAGE,
) -> list[RevisionRecord]:
    """Revisions with a seq above `after_seq`, oldest first (of one organisation, and of some
    of its assistants, when given)."""
    statement = _AFTER[org_id is not None, assistant_ids is not None]
    parameters = {
        "after_seq": min(after_seq, STORED_SEQ_MAX),
        "org_id": org_id,
        "assistant_ids": None if assistant_ids is None else sorted(assistant_ids),
        "limit": limit,
    }
    return await tx.all(statement, parameters, RevisionRecord)


async def revisions_by_seq(tx: Tx, seqs: Collection[int]) -> list[RevisionRecord]:
    """The revisions of these seqs that still exist, in the order the seqs were given."""
    if not seqs:
        return []
    rows = await tx.all(_BY_SEQ, {"seqs": list(seqs)}, RevisionRecord)
    by_seq = {row.seq: row for row in rows}
    return [by_seq[seq] for seq in seqs if seq in by_seq]


async def dead_keys(tx: Tx, key_ids: Collection[str]) -> dict[str, str]:
    """Those of these API keys that no longer open their organisation, each with the reason
    ("the API key was revoked" or "the API key has expired")."""
    if not key_ids:
        return {}
    rows = await tx.all(_UNREVOKED_KEYS, {"key_ids": list(key_ids)})
    now = utcnow()
    expiry: dict[str, datetime | None] = {row[0]: row[1] for row in rows}
    dead = {}
    for key_id in key_ids:
        if key_id not in expiry:
            dead[key_id] = "the API key was revoked"
        elif (expires_at := expiry[key_id]) is not None and expires_at <= now:
            dead[key_id] = "the API key has expired"
    return dead
