"""Action use cases: create (last), read, list and reorder by position, update, delete.

An assistant holds at most MAX_ACTIONS; they are counted, with the highest position, while the
assistant's row is locked (as for integrations), so concurrent creates cannot pass the cap.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, select

from app.domain.access import Access, Scope, requires
from app.domain.assistants import find_assistant
from app.domain.audit import record_audit
from app.domain.child_input import ActionCreate, ActionPatch, ActionReorder, parse_body
from app.domain.children import (
    ACTIONS,
    apply_changes,
    delete_child,
    load_child,
    store_changes,
    too_many,
    update_child,
)
from app.domain.errors import FieldError, invalid_input
from app.domain.storage import action_bytes, charge
from app.models import Action, new_id, utcnow
from app.store import Statement, Tx
from app.store.records import ActionRecord
from app.store.statements import insert_statement

POSITION_STEP = 100
MAX_ACTIONS = 100  # per assistant

# mypy ignore below: SQLModel's metaclass sets __table__
TABLE = Action.__table__  # type: ignore[attr-defined]
_INSERT = insert_statement(TABLE, returning=True)
_OF_ASSISTANT = Statement(
    select(TABLE)
    .where(TABLE.c.assistant_id == bindparam("assistant_id"))
    .order_by(TABLE.c.position, TABLE.c.created_at, TABLE.c.id)
)
_HIGHEST_AND_COUNT = Statement(
    select(func.max(TABLE.c.position), func.count()).where(
        TABLE.c.assistant_id == bindparam("assistant_id")
    )
)


def _in_order(actions: Sequence[ActionRecord]) -> list[ActionRecord]:
    return sorted(actions, key=lambda a: (a.position, a.created_at, a.id))


async def _actions_of(tx: Tx, assistant_id: str) -> list[ActionRecord]:
    return await tx.all(_OF_ASSISTANT, {"assistant_id": assistant_id}, ActionRecord)


@requires(Scope.WRITE)
async def create_action(
    tx: Tx, *, access: Access, assistant_id: str, body: object, storage_quota: int
) -> ActionRecord:
    """A new action goes last: (highest position of the assistant's actions, or 0) + 100. Its
    bytes count against ORG_STORAGE_QUOTA (app/domain/storage.py)."""
    assistant = await find_assistant(tx, access, assistant_id, for_update=True)
    data = parse_body(ActionCreate, body)
    row = await tx.first(_HIGHEST_AND_COUNT, {"assistant_id": assistant.id})
    highest, count = row if row is not None else (None, 0)
    if count >= MAX_ACTIONS:
        raise too_many("actions", MAX_ACTIONS)
    now = utcnow()
    values = {
        "id": new_id(),
        "org_id": access.org_id,
        "assistant_id": assistant.id,
        "position": (highest or 0) + POSITION_STEP,
        "created_at": now,
        "updated_at": now,
        **data.model_dump(),
    }
    created = await tx.first(_INSERT, values, ActionRecord)
    assert created is not None
    await charge(tx, access.org_id, action_bytes(created), storage_quota)
    await record_audit(tx, access, "action.create", "action", created.id)
    return created


@requires(Scope.READ)
async def list_actions(tx: Tx, *, access: Access, assistant_id: str) -> list[ActionRecord]:
    assistant = await find_assistant(tx, access, assistant_id)
    return await _actions_of(tx, assistant.id)


@requires(Scope.READ)
async def get_action(tx: Tx, *, access: Access, assistant_id: str, action_id: str) -> ActionRecord:
    row: ActionRecord = await load_child(
        tx, ACTIONS, access=access, child_id=action_id, assistant_id=assistant_id
    )
    return row


@requires(Scope.WRITE)
async def update_action(
    tx: Tx,
    *,
    access: Access,
    action_id: str,
    patch: object,
    storage_quota: int,
    assistant_id: str | None = None,
) -> ActionRecord:
    """Changes what was sent (`config` replaced whole; `position` only by reorder).

    Without `assistant_id` (GraphQL) the action is found by organisation alone.
    """
    row: ActionRecord = await load_child(
        tx,
        ACTIONS,
        access=access,
        child_id=action_id,
        assistant_id=assistant_id,
        for_update=True,
    )
    data = parse_body(ActionPatch, patch)
    values = data.set_fields()
    if data.config is not None:
        values["config"] = data.config.model_dump()  # whole, defaults included
    await update_child(tx, ACTIONS, row, values, storage_quota=storage_quota)
    await record_audit(tx, access, "action.update", "action", row.id)
    return row


@requires(Scope.WRITE)
async def delete_action(
    tx: Tx, *, access: Access, action_id: str, assistant_id: str | None = None
) -> ActionRecord:
    row: ActionRecord = await load_child(
        tx,
        ACTIONS,
        access=access,
        child_id=action_id,
        assistant_id=assistant_id,
        for_update=True,
    )
    await delete_child(tx, ACTIONS, row)
    await record_audit(tx, access, "action.delete", "action", row.id)
    return row


@requires(Scope.WRITE)
async def reorder_actions(
    tx: Tx, *, access: Access, assistant_id: str, body: object
) -> list[ActionRecord]:
    """Moves the named actions to the given positions; answers every action, in order.

    An id that is not an action of this assistant (or appears twice) is VALIDATION_FAILED
    naming `positions.N.id`, and nothing moves.
    """
    assistant = await find_assistant(tx, access, assistant_id, for_update=True)
    data = parse_body(ActionReorder, body)
    rows = {row.id: row for row in await _actions_of(tx, assistant.id)}
    foreign = [
        FieldError(("positions", index, "id"), "no such action of this assistant")
        for index, pair in enumerate(data.positions)
        if pair.id not in rows
    ]
    errors = sorted(data.duplicate_ids() + foreign, key=lambda e: e.path)
    if errors:
        raise invalid_input(errors)
    for pair in data.positions:
        row = rows[pair.id]
        await store_changes(tx, ACTIONS, row, apply_changes(row, {"position": pair.position}))
    await record_audit(tx, access, "action.reorder", "assistant", assistant.id)
    return _in_order(list(rows.values()))
