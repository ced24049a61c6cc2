"""Idempotency keys (docs/idempotency.md): the answers of requests sent with an
`Idempotency-Key`, stored per API key in the transaction of the request's effect.

The database is the arbiter, on every process and machine:
- PostgreSQL: the lookup takes a transaction-scoped advisory lock on (API key, key) without
  waiting (`pg_try_advisory_xact_lock`); a request that cannot take it is 409
  IDEMPOTENCY_KEY_IN_USE. The lock ends with the transaction: a process that dies mid-request
  leaves neither a lock nor a row behind, so nothing waits for a lease to expire.
- SQLite: write transactions hold the database, so a repeat from another process waits for the
  first to commit and then finds its answer; within a process the transport answers 409 for a
  key whose first request is still running (`InFlight`).
- Either way the primary key (API key, key) is the backstop: an answer is stored by an upsert
  that only replaces an expired row; if it stores nothing, the transaction rolls back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, and_, bindparam, delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.domain.errors import DomainError, FieldError, ValidationFailed
from app.models import IdempotentAnswer
from app.store import Statement, Tx

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# the answer headers stored with its status and body (lower-case, as ASGI sends them)
STORED_HEADERS = ("content-type", "etag", "location")


class IdempotencyKeyReused(DomainError):
    """The key was sent before with another request (method, path, query or body)."""

    code = "IDEMPOTENCY_KEY_REUSED"


class IdempotencyKeyInUse(DomainError):
    """The first request with this key has not finished: try again in a second."""

    code = "IDEMPOTENCY_KEY_IN_USE"
    retry_after = 1


def checked_key(value: str) -> str:
    """The header's value: 1-255 printable ASCII characters, or 400 naming the header."""
    if 1 <= len(value) <= MAX_KEY_LENGTH and value.isascii() and value.isprintable():
        return value
    message = f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
    raise ValidationFailed(f"invalid {HEADER} header: {message}", [FieldError((HEADER,), message)])


def fingerprint(*parts: bytes) -> str:
    """The SHA-256 (hex) of what makes two requests the same one (each part length-prefixed)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class IdempotentRequest:
    """A request sent with an `Idempotency-Key`: whose (`key_hash`, the SHA-256 of the API
    key's secret), which key, and the fingerprint of the request. `row_id`: 64 bits of the
    SHA-256 of (API key, key), the stored answer's id and the PostgreSQL advisory lock of the
    key."""

    __slots__ = ("fingerprint", "key", "key_hash", "row_id")

    def __init__(self, key_hash: str, key: str, fingerprint: str) -> None:
        self.key_hash = key_hash
        self.key = key
        self.fingerprint = fingerprint
        digest = hashlib.sha256(f"{key_hash}\n{key}".encode()).digest()
        self.row_id = int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


TABLE: Any = IdempotentAnswer.__table__  # type: ignore[attr-defined]  # SQLModel declares it untyped
_COLUMNS = (TABLE.c.fingerprint, TABLE.c.status, TABLE.c.headers, TABLE.c.body, TABLE.c.expires_at)
# the row of the key (a collision of 64 bits would find another key's row: it is not this one)
_ID = bindparam("id", type_=BigInteger)
_THIS_KEY = and_(
    TABLE.c.id == _ID,
    TABLE.c.key_hash == bindparam("key_hash"),
    TABLE.c.key == bindparam("key"),
)
# (free, fingerprint, status, headers, body, expires_at): on SQLite no row when there is none;
# on PostgreSQL always one row, `free` being whether this transaction holds the key's lock
_LOOKUP = Statement(
    select(literal(True).label("free"), *_COLUMNS).where(_THIS_KEY),
    postgresql=select(
        func.pg_try_advisory_xact_lock(_ID).label("free"),
        *_COLUMNS,
    ).select_from(select(literal(1).label("one")).subquery().outerjoin(TABLE, _THIS_KEY)),
)
_NOW = bindparam("now", type_=TABLE.c.expires_at.type)
_VALUES: dict[str, Any] = {
    "id": _ID,
    "key_hash": bindparam("key_hash"),
    "key": bindparam("key"),
    "fingerprint": bindparam("fingerprint"),
    "status": bindparam("status"),
    "headers": bindparam("headers", type_=TABLE.c.headers.type),
    "body": bindparam("body", type_=TABLE.c.body.type),
    "expires_at": bindparam("expires_at", type_=TABLE.c.expires_at.type),
}


def _upsert(insert: Any) -> Any:
    """Stores an answer; over an existing row only once that row has expired."""
    statement = insert(TABLE).values(_VALUES)
    replaced = [name for name in _VALUES if name != "id"]
    return statement.on_conflict_do_update(
        index_elements=[TABLE.c.id],
        set_={name: statement.excluded[name] for name in replaced},
        where=TABLE.c.expires_at <= _NOW,
    )


_STORE = Statement(_upsert(sqlite_insert), postgresql=_upsert(postgresql_insert))
# The sweep: the expired rows of one slice of the ids (a range of the primary key), the slice of
# the minute: every row is looked at once a day, at a cost of one 1,440th of the table a minute,
# and storing an answer writes no index but its row's.
SLICES = 1440
_SLICE = 2**64 // SLICES
_SWEEP = Statement(
    delete(TABLE).where(
        TABLE.c.id >= bindparam("first", type_=BigInteger),
        TABLE.c.id <= bindparam("last", type_=BigInteger),
        TABLE.c.expires_at <= _NOW,
    )
)


def sweep_slice(now: datetime) -> tuple[int, int]:
    """The first and last id the sweep looks at during the minute of `now`."""
    minute = int(now.timestamp() // 60) % SLICES
    first = -(2**63) + minute * _SLICE
    return first, 2**63 - 1 if minute == SLICES - 1 else first + _SLICE - 1


async def stored_answer(tx: Tx, request: IdempotentRequest, now: datetime) -> StoredAnswer | None:
    """The answer stored for the request's key (None: run the request); 409 while another
    transaction runs the key (PostgreSQL), 422 when the key came with another request."""
    row = await tx.first(
        _LOOKUP, {"id": request.row_id, "key_hash": request.key_hash, "key": request.key}
    )
    if row is None:
        return None
    free, found, status, headers, body, expires_at = row
    if not free:
        raise IdempotencyKeyInUse(f"a request with this {HEADER} is still running; retry soon")
    if found is None or expires_at <= now:
        return None  # none, or expired: the request runs, its answer replaces the row
    if found != request.fingerprint:
        raise IdempotencyKeyReused(
            f"this {HEADER} was sent with another request (method, path, query or body); "
            "use a new key for a new request"
        )
    return StoredAnswer(status, dict(headers), bytes(body))


async def store_answer(
    tx: Tx, request: IdempotentRequest, answer: StoredAnswer, now: datetime, ttl: timedelta
) -> bool:
    """Stores the answer (False: a live answer of the key was stored meanwhile)."""
    stored = await tx.execute(
        _STORE,
        {
            "id": request.row_id,
            "key_hash": request.key_hash,
            "key": request.key,
            "fingerprint": request.fingerprint,
            "status": answer.status,
            "headers": answer.headers,
            "body": answer.body,
            "now": now,
            "expires_at": now + ttl,
        },
    )
    return stored > 0


async def remove_expired(tx: Tx, now: datetime) -> int:
    """Removes the expired answers of this minute's slice (the transport calls it once a
    minute at most)."""
    first, last = sweep_slice(now)
    return await tx.execute(_SWEEP, {"first": first, "last": last, "now": now})
