"""What integrations and actions share: finding one under a live assistant, storing changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, select

from app.domain.access import Access
from app.domain.assistants import find_assistant, next_instant
from app.domain.errors import NotFound, ValidationFailed
from app.domain.storage import (
    ACTION_CONTENT,
    INTEGRATION_CONTENT,
    action_bytes,
    charge,
    give_back,
    integration_bytes,
)
from app.models import Action, Assistant, Integration
from app.store import Statement, Tx
from app.store.records import ActionRecord, IntegrationRecord
from app.store.statements import update_parameters, update_statement

# mypy ignore below: SQLModel's metaclass sets __table__
_ASSISTANTS = Assistant.__table__  # type: ignore[attr-defined]


class Kind:
    """The statements of one kind of child (integrations or actions), built once."""

    def __init__(
        self,
        model: type[Integration] | type[Action],
        record: type[Any],
        content: tuple[str, ...],
        size: Callable[[Any], int],
    ) -> None:
        table = model.__table__  # type: ignore[union-attr]  # set by SQLModel's metaclass
        self.table = table
        self.record = record
        self.content = frozenset(content)  # the columns its size counts (app/domain/storage.py)
        self.size = size
        self.noun = table.name[:-1]
        self.live_parent = Statement(
            select(table.c.assistant_id)
            .join(_ASSISTANTS, _ASSISTANTS.c.id == table.c.assistant_id)
            .where(
                table.c.org_id == bindparam("org_id"),
                table.c.id == bindparam("child_id"),
                _ASSISTANTS.c.deleted.is_(False),
            )
        )
        one = select(table).where(
            table.c.org_id == bindparam("org_id"),
            table.c.assistant_id == bindparam("assistant_id"),
            table.c.id == bindparam("child_id"),
        )
        self.one = Statement(one)
        self.one_for_update = Statement(one.with_for_update())
        self.delete = Statement(delete(table).where(table.c.id == bindparam("child_id")))


INTEGRATIONS = Kind(Integration, IntegrationRecord, INTEGRATION_CONTENT, integration_bytes)
ACTIONS = Kind(Action, ActionRecord, ACTION_CONTENT, action_bytes)


async def load_child(
    tx: Tx,
    kind: Kind,
    *,
    access: Access,
    child_id: str,
    assistant_id: str | None,
    for_update: bool = False,
) -> Any:
    """One child of a live assistant the caller sees (of `assistant_id` when given).

    The parent is loaded first (and locked for writes), so writes to one assistant's
    children run one after another; anything else is NOT_FOUND.
    """
    missing = NotFound(f"no {kind.noun} '{child_id}' in this organisation")
    org_id = access.org_id
    if assistant_id is None:
        assistant_id = await tx.scalar(kind.live_parent, {"org_id": org_id, "child_id": child_id})
        if assistant_id is None or not access.sees(assistant_id):
            raise missing
    await find_assistant(tx, access, assistant_id, for_update=for_update)
    parameters = {"org_id": org_id, "assistant_id": assistant_id, "child_id": child_id}
    row = await tx.first(kind.one_for_update if for_update else kind.one, parameters, kind.record)
    if row is None:
        raise missing
    return row


def too_many(noun: str, limit: int) -> ValidationFailed:
    """The refusal of a create beyond an assistant's limit of one kind (nothing is stored)."""
    return ValidationFailed(
        f"an assistant holds at most {limit} {noun}: delete one before adding another"
    )


def _same(old: Any, new: Any) -> bool:
    """Equal as JSON: `true` is not `1`, key order does not matter."""
    if isinstance(old, dict | list) or isinstance(new, dict | list):
        options = orjson.OPT_SORT_KEYS
        return orjson.dumps(old, option=options) == orjson.dumps(new, option=options)
    return type(old) is type(new) and old == new


def apply_changes(row: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Sets the values that really differ, and a later `updated_at` when one did: the columns
    to store ({} when nothing changed)."""
    changed = {key: value for key, value in values.items() if not _same(getattr(row, key), value)}
    if changed:
        changed["updated_at"] = next_instant(row.updated_at)
        for key, value in changed.items():
            setattr(row, key, value)
    return changed


async def store_changes(tx: Tx, kind: Kind, row: Any, changed: dict[str, Any]) -> None:
    """One UPDATE of the changed columns of a child (built once per set of columns)."""
    if changed:
        statement = update_statement(kind.table, "id", tuple(sorted(changed)))
        await tx.execute(statement, update_parameters("id", row.id, changed))


async def update_child(
    tx: Tx, kind: Kind, row: Any, values: dict[str, Any], *, storage_quota: int
) -> None:
    """Stores the values that really differ; a change of the row's size is charged to its
    organisation first (QUOTA_EXCEEDED beyond ORG_STORAGE_QUOTA, and nothing is stored)."""
    before = kind.size(row) if not kind.content.isdisjoint(values) else None
    changed = apply_changes(row, values)
    if before is not None and changed:
        await charge(tx, row.org_id, kind.size(row) - before, storage_quota)
    await store_changes(tx, kind, row, changed)


async def delete_child(tx: Tx, kind: Kind, row: Any) -> None:
    """Removes the row and gives its bytes back to its organisation."""
    await tx.execute(kind.delete, {"child_id": row.id})
    await give_back(tx, row.org_id, kind.size(row))
