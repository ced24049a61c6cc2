"""The audit log: one entry per change (in the change's transaction) and per refusal for a
missing scope (in a transaction of its own), chained by hashes per organisation.

`record_audit` is the one function a use case calls once it has changed something:

    await record_audit(tx, access, "assistant.update", "assistant", assistant.id,
                       version=assistant.version)

The entry's `hash` is SHA-256 (hex) of the previous entry's hash of the organisation (64 zeros
for its first entry) followed by this entry's canonical JSON: the entry as the API shows it,
without `hash`, keys sorted at every level, no spaces, UTF-8 (docs/audit-log.md shows how to
check it by hand). Entries are chained under the organisation's chain head (`audit_heads`),
locked while they are: their `id` order is the chain's, never forked.

The change's transaction writes its entry to `audit_pending` (one INSERT, no lock: changes of
one organisation never wait for each other's commit), and `seal_pending` chains what is
committed there, in order, in a short transaction of its own: before the log is read or
verified, and every second in `serve` (`keep_sealing`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from typing import Any, Final

import orjson
from sqlalchemy import Integer, bindparam, delete, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.domain.access import Access
from app.domain.audit_actions import denied_action
from app.domain.documents import rfc3339
from app.domain.errors import DomainError, InsufficientScope
from app.models import AuditEntry, AuditHead, AuditPending, utcnow
from app.store import Statement, Store, Tx, in_list
from app.store.records import AuditRecord, PendingRecord, as_dict
from app.store.statements import insert_statement

logger = logging.getLogger("app.audit")

OK, DENIED = "ok", "denied"
GENESIS: Final = "0" * 64  # the "previous hash" of an organisation's first entry
USER_AGENT_CHARS: Final = 200

# mypy ignore below: SQLModel's metaclass sets __table__
LOG = AuditEntry.__table__  # type: ignore[attr-defined]
HEADS = AuditHead.__table__  # type: ignore[attr-defined]
PENDING = AuditPending.__table__  # type: ignore[attr-defined]

_NEXT_ID_SQLITE: Any = literal_column(
    "coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'), 0) + 1"
)
_HEAD = Statement(
    # SQLite: the write transaction (BEGIN IMMEDIATE) already holds the database's write lock
    select(HEADS.c.last_hash, _NEXT_ID_SQLITE).where(HEADS.c.org_id == bindparam("org_id")),
    postgresql=select(HEADS.c.last_hash, func.nextval("audit_log_id_seq"))
    .where(HEADS.c.org_id == bindparam("org_id"))
    .with_for_update(),
)
_NEW_HEAD_VALUES = {"org_id": bindparam("org_id"), "last_id": 0, "last_hash": GENESIS}
_NEW_HEAD = Statement(
    sqlite_insert(HEADS).values(_NEW_HEAD_VALUES).on_conflict_do_nothing(),
    postgresql=postgresql_insert(HEADS).values(_NEW_HEAD_VALUES).on_conflict_do_nothing(),
)
_COLUMNS = ", ".join(c.key for c in PENDING.c if c.key != "seq")
# a batch of pending entries moved to the log in one statement, with the ids and hashes given
# as one JSON array of {seq, id, prev_hash, hash}
_CHAIN_SQLITE = text(
    f"INSERT INTO audit_log (id, prev_hash, hash, {_COLUMNS}) "
    "SELECT json_extract(c.value, '$.id'), json_extract(c.value, '$.prev_hash'), "
    f"json_extract(c.value, '$.hash'), {_COLUMNS} "
    "FROM json_each(:chain) AS c JOIN audit_pending ON seq = json_extract(c.value, '$.seq')"
)
_CHAIN_POSTGRESQL = text(
    f"INSERT INTO audit_log (id, prev_hash, hash, {_COLUMNS}) "
    f"SELECT c.id, c.prev_hash, c.hash, {_COLUMNS} "
    "FROM jsonb_to_recordset(CAST(CAST(:chain AS text) AS jsonb)) "
    "AS c(seq bigint, id bigint, prev_hash text, hash text) "
    "JOIN audit_pending ON audit_pending.seq = c.seq"
)
_CHAIN = Statement(_CHAIN_SQLITE, postgresql=_CHAIN_POSTGRESQL)
_MOVE = Statement(
    update(HEADS)
    .where(HEADS.c.org_id == bindparam("org_id"))
    .values(last_hash=bindparam("hash"), last_id=bindparam("id"))
)
_ENTRY_COLUMNS = tuple(c.key for c in PENDING.c if c.key != "seq")
_PENDING_INSERT = insert_statement(PENDING)
_ANY_PENDING = Statement(
    select(PENDING.c.seq).where(PENDING.c.org_id == bindparam("org_id")).limit(1)
)
_PENDING_OF_ORG = Statement(
    select(PENDING)
    .where(PENDING.c.org_id == bindparam("org_id"))
    .order_by(PENDING.c.seq)
    .limit(500)
)
_PENDING_ORGS = Statement(select(PENDING.c.org_id).distinct())
_DELETE_PENDING = Statement(delete(PENDING).where(in_list(PENDING.c.seq, "seqs")))
_IDS: Any = Statement(
    select(func.nextval("audit_log_id_seq")).select_from(
        func.generate_series(1, bindparam("n", type_=Integer))
    )
)


def canonical_json(document: dict[str, Any]) -> bytes:
    """The entry without `hash`: keys sorted, no spaces, UTF-8 (as Python's
    `json.dumps(…, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`)."""
    return orjson.dumps(
        {k: v for k, v in document.items() if k != "hash"}, option=orjson.OPT_SORT_KEYS
    )


def chain_hash(previous: str, document: dict[str, Any]) -> str:
    """SHA-256 (hex) of the previous entry's hash (its 64 characters) and this entry's
    canonical JSON."""
    return hashlib.sha256(previous.encode("ascii") + canonical_json(document)).hexdigest()


def document_of(columns: Mapping[str, Any]) -> dict[str, Any]:
    """The entry as the API shows it (and as its hash covers it, `hash` aside), from its
    columns."""
    return {
        "id": columns["id"],
        "at": rfc3339(columns["at"]),
        "org_id": columns["org_id"],
        "actor": {
            "type": columns["actor_type"],
            "key_id": columns["actor_key_id"],
            "key_name": columns["actor_key_name"],
            "key_prefix": columns["actor_key_prefix"],
        },
        "action": columns["action"],
        "resource": {"type": columns["resource_type"], "id": columns["resource_id"]},
        "outcome": columns["outcome"],
        "transport": columns["transport"],
        "request_id": columns["request_id"],
        "client_ip": columns["client_ip"],
        "user_agent": columns["user_agent"],
        "version": columns["version"],
        "hash": columns.get("hash"),
    }


def entry_document(entry: AuditRecord) -> dict[str, Any]:
    """A stored entry as the API shows it."""
    return document_of(as_dict(entry))


def _values(
    access: Access, action: str, resource: tuple[str, str | None], version: int | None, outcome: str
) -> dict[str, Any]:
    origin = access.origin
    agent = origin.user_agent
    return {
        "org_id": access.org_id,
        "at": utcnow(),
        "actor_type": "cli" if access.key_id is None else "api_key",
        "actor_key_id": access.key_id,
        "actor_key_name": access.key_name,
        "actor_key_prefix": access.key_prefix,
        "action": action,
        "resource_type": resource[0],
        "resource_id": resource[1],
        "outcome": outcome,
        "transport": origin.transport,
        "request_id": origin.request_id,
        "client_ip": origin.client_ip,
        "user_agent": None if agent is None else agent[:USER_AGENT_CHARS],
        "version": version,
    }


async def _head(tx: Tx, org_id: str) -> tuple[str, int]:
    """The organisation's last hash and the next entry's id, its head locked until commit."""
    parameters = {"org_id": org_id}
    row = await tx.first(_HEAD, parameters)
    if row is None:  # the organisation's first entry
        await tx.execute(_NEW_HEAD, parameters)
        row = await tx.first(_HEAD, parameters)
        assert row is not None
    return row[0], int(row[1])


async def record_audit(
    tx: Tx,
    access: Access,
    action: str,
    resource_type: str,
    resource_id: str | None,
    *,
    version: int | None = None,
    outcome: str = OK,
) -> None:
    """Writes one entry of the organisation's audit log in `tx` (so it commits or rolls back
    with the change it records): one INSERT, chained by `seal_pending`. Never give it a secret
    or a body: it takes ids."""
    if not access.audited:  # a use case run by a bundle apply, which writes the one entry
        return
    values = _values(access, action, (resource_type, resource_id), version, outcome)
    await tx.execute(_PENDING_INSERT, values)


async def _ids(tx: Tx, first: int, count: int) -> list[int]:
    """`count` new entry ids from `first` (drawn by `_head`): the sequence's on PostgreSQL; on
    SQLite the ones after it (its write lock is held)."""
    if tx.dialect_name != "postgresql":
        return list(range(first, first + count))
    more = [row[0] for row in await tx.all(_IDS, {"n": count - 1})] if count > 1 else []
    return sorted([first, *more])


async def seal_pending(tx: Tx, org_id: str) -> int:
    """Chains the organisation's committed pending entries, oldest first, in `tx` (a write
    transaction; the chain head is locked until it commits); how many."""
    if await tx.first(_ANY_PENDING, {"org_id": org_id}) is None:
        return 0
    sealed = 0
    while True:
        previous, first_id = await _head(tx, org_id)
        rows = await tx.all(_PENDING_OF_ORG, {"org_id": org_id}, PendingRecord)
        if not rows:
            return sealed
        chain = []
        for row, entry_id in zip(rows, await _ids(tx, first_id, len(rows)), strict=True):
            values = {c: getattr(row, c) for c in _ENTRY_COLUMNS}
            values["id"] = entry_id
            link = {"seq": row.seq, "id": entry_id, "prev_hash": previous}
            previous = link["hash"] = chain_hash(previous, document_of(values))
            chain.append(link)
        await tx.execute(_CHAIN, {"chain": orjson.dumps(chain).decode()})
        await tx.execute(_MOVE, {"org_id": org_id, "hash": previous, "id": chain[-1]["id"]})
        await tx.execute(_DELETE_PENDING, {"seqs": [row.seq for row in rows]})
        sealed += len(rows)


async def seal_everything(store: Store) -> int:
    """Chains every organisation's pending entries (each in a transaction of its own)."""
    async with store.read() as tx:
        org_ids = [row[0] for row in await tx.all(_PENDING_ORGS)]
    sealed = 0
    for org_id in org_ids:
        async with store.write() as tx:
            sealed += await seal_pending(tx, org_id)
    return sealed


SEAL_EVERY_SECONDS = 1.0


async def keep_sealing(store: Store, every: float = SEAL_EVERY_SECONDS) -> None:
    """`serve`: chains the pending entries every second (a failed round is logged and tried
    again)."""
    while True:
        try:
            await seal_everything(store)
        except DomainError as exc:
            logger.warning("could not chain the pending audit entries: %s", exc)
        await asyncio.sleep(every)


async def record_denial(store: Store, error: InsufficientScope, caller: Access | None) -> None:
    """The audit entry of a refusal for a missing scope, in a transaction of its own (the
    request's rolled back). A refusal whose entry cannot be written is logged, and stays 403."""
    access = error.access if isinstance(error.access, Access) else caller
    if access is None or error.audited:
        return
    error.audited = True
    action, resource_type, resource_id = denied_action(error.use_case, error.resource_ids)
    try:
        async with store.write() as tx:
            await record_audit(tx, access, action, resource_type, resource_id, outcome=DENIED)
    except DomainError as exc:
        logger.warning("could not record the refusal of %s in the audit log: %s", action, exc)
