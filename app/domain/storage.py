"""What an organisation stores, counted as rows are written (docs/storage.md).

`organisations.storage_used` holds the bytes of the organisation's stored data: each write
adds the difference its row makes (computed from the row before and after, which the use case
already holds), in the write's own transaction, by one conditional UPDATE that refuses to pass
ORG_STORAGE_QUOTA. Nothing is ever scanned on a request; migration 0006 counted the rows that
existed before.

The size of a row: ROW_BYTES, plus the bytes of its user-supplied content: a text counts its
UTF-8 bytes, a list or object its compact JSON (orjson) bytes, and a flag, a number or a null
nothing; an avatar counts its file's bytes.

- an assistant (not deleted): its name and every config leaf (`ASSISTANT_CONTENT`);
- an integration: `integration_id`, `connection_id`, `config`;
- an action: `action_id`, `name`, `instructions`, `connection_id`, `config`.

A deleted assistant (and its children, which are removed) gives its bytes back. Revisions
(bounded by REVISIONS_KEEP) and API keys (at most 100 per organisation) are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import bindparam, select, update

from app.domain.errors import QuotaExceeded
from app.domain.shape import COLUMN_PATHS
from app.models import Action, Assistant, Avatar, Integration, Organisation
from app.store import Statement, Tx

ROW_BYTES = 64  # what every row counts besides its content (ids, times, flags)
DEFAULT_QUOTA = 256 * 1024 * 1024  # ORG_STORAGE_QUOTA's default

# mypy ignore below: SQLModel's metaclass sets __table__
_ASSISTANTS = Assistant.__table__  # type: ignore[attr-defined]
# the name and the config leaves that hold text or JSON (a flag counts nothing)
ASSISTANT_CONTENT = tuple(
    column
    for column in COLUMN_PATHS
    if column != "avatar_id" and _ASSISTANTS.c[column].type.python_type is not bool
)
INTEGRATION_CONTENT = ("integration_id", "connection_id", "config")
ACTION_CONTENT = ("action_id", "name", "instructions", "connection_id", "config")


def value_bytes(value: Any) -> int:
    """The bytes a stored value counts: a text's UTF-8, a list's or object's compact JSON."""
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode())
    if isinstance(value, dict | list):
        return len(orjson.dumps(value))
    return 0


def row_bytes(row: Any, content: Iterable[str]) -> int:
    """The size of a row (a record, a model or a driver row: read by attribute)."""
    return ROW_BYTES + sum(value_bytes(getattr(row, column)) for column in content)


def assistant_bytes(row: Any) -> int:
    return row_bytes(row, ASSISTANT_CONTENT)


def integration_bytes(row: Any) -> int:
    return row_bytes(row, INTEGRATION_CONTENT)


def action_bytes(row: Any) -> int:
    return row_bytes(row, ACTION_CONTENT)


def avatar_bytes(size: int) -> int:
    return ROW_BYTES + size


_SIZED = frozenset(ASSISTANT_CONTENT)


def assistant_delta(before: Any, changed: dict[str, Any]) -> int:
    """What an update of an assistant adds (negative: gives back): only the changed columns
    are measured, so an update costs in proportion to what it changes."""
    delta = 0
    for column, value in changed.items():
        if column in _SIZED:
            delta += value_bytes(value) - value_bytes(getattr(before, column))
    return delta


# mypy ignore below: SQLModel's metaclass sets __table__
_ORGS = Organisation.__table__  # type: ignore[attr-defined]
_USED = _ORGS.c.storage_used
# Grows the usage unless it would pass the quota: with the row's lock on PostgreSQL, a
# concurrent write waits and then sees the new usage (SQLite has one writer at a time).
_CHARGE = Statement(
    update(_ORGS)
    .where(
        _ORGS.c.id == bindparam("org_id"),
        _USED + bindparam("delta") <= bindparam("quota"),
    )
    .values(storage_used=_USED + bindparam("delta"))
)
_GIVE_BACK = Statement(
    update(_ORGS)
    .where(_ORGS.c.id == bindparam("org_id"))
    .values(storage_used=_USED + bindparam("delta"))
)


async def charge(tx: Tx, org_id: str, delta: int, quota: int) -> None:
    """Adds `delta` bytes to the organisation's usage (one UPDATE; none when it is 0).
    Growing past `quota` is QUOTA_EXCEEDED, and the caller's transaction stores nothing;
    giving back (a negative delta) always succeeds."""
    if delta > 0:
        parameters = {"org_id": org_id, "delta": delta, "quota": quota}
        if await tx.execute(_CHARGE, parameters) == 0:
            raise QuotaExceeded(
                f"this organisation may store at most {quota} bytes (ORG_STORAGE_QUOTA): "
                "delete something before adding more",
                quota,
            )
    elif delta < 0:
        await give_back(tx, org_id, -delta)


async def give_back(tx: Tx, org_id: str, size: int) -> None:
    """Takes `size` bytes off the organisation's usage (a delete); never refused."""
    if size:
        await tx.execute(_GIVE_BACK, {"org_id": org_id, "delta": -size})


# -- recounting from the rows (the tests) ---------------------------------------

# mypy ignore below: SQLModel's metaclass sets __table__
_INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]
_ACTIONS = Action.__table__  # type: ignore[attr-defined]
_AVATARS = Avatar.__table__  # type: ignore[attr-defined]


def _of(table: Any, content: Iterable[str], *where: Any) -> Any:
    columns = [table.c.org_id, *(table.c[c] for c in content)]
    return select(*columns).where(*where)


ASSISTANT_ROWS = _of(_ASSISTANTS, ASSISTANT_CONTENT, _ASSISTANTS.c.deleted.is_(False))
INTEGRATION_ROWS = _of(_INTEGRATIONS, INTEGRATION_CONTENT)
ACTION_ROWS = _of(_ACTIONS, ACTION_CONTENT)
AVATAR_ROWS = select(_AVATARS.c.org_id, _AVATARS.c.size)
USAGE = select(_ORGS.c.id, _USED)

# the children of one assistant, to give their bytes back when it is deleted
_INTEGRATIONS_OF = Statement(
    select(*(_INTEGRATIONS.c[c] for c in INTEGRATION_CONTENT)).where(
        _INTEGRATIONS.c.assistant_id == bindparam("assistant_id")
    )
)
_ACTIONS_OF = Statement(
    select(*(_ACTIONS.c[c] for c in ACTION_CONTENT)).where(
        _ACTIONS.c.assistant_id == bindparam("assistant_id")
    )
)


async def children_bytes(tx: Tx, assistant_id: str) -> int:
    """The bytes of an assistant's integrations and actions (read before they are removed)."""
    parameters = {"assistant_id": assistant_id}
    total = 0
    for row in await tx.all(_INTEGRATIONS_OF, parameters):
        total += ROW_BYTES + sum(map(value_bytes, row))
    for row in await tx.all(_ACTIONS_OF, parameters):
        total += ROW_BYTES + sum(map(value_bytes, row))
    return total


async def recount(tx: Tx) -> dict[str, int]:
    """Every organisation's usage recounted from all its rows: the scan that requests never
    make (for checks; migration 0006 made it once)."""
    used: dict[str, int] = {}
    for statement in (ASSISTANT_ROWS, INTEGRATION_ROWS, ACTION_ROWS):
        for org_id, *values in await tx.all(statement):
            used[org_id] = used.get(org_id, 0) + ROW_BYTES + sum(map(value_bytes, values))
    for org_id, size in await tx.all(AVATAR_ROWS):
        used[org_id] = used.get(org_id, 0) + avatar_bytes(size)
    return used


async def usage(tx: Tx) -> dict[str, int]:
    """Every organisation's counter, as stored."""
    return {org_id: int(used) for org_id, used in await tx.all(USAGE)}
