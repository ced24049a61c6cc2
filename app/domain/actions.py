"""Action use cases: create (last), read, list and reorder by position, update, delete."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.assistants import get_assistant
from app.domain.child_input import ActionCreate, ActionPatch, ActionReorder, parse_body
from app.domain.children import apply_changes, load_child
from app.domain.errors import FieldError, invalid_input
from app.models import Action, Assistant, new_id, utcnow

POSITION_STEP = 100


def _in_order(actions: Sequence[Action]) -> list[Action]:
    return sorted(actions, key=lambda a: (a.position, a.created_at, a.id))


async def actions_by_assistant(
    session: AsyncSession, assistant_ids: Sequence[str]
) -> dict[str, list[Action]]:
    """The actions of many assistants in one statement, in position order."""
    grouped: dict[str, list[Action]] = defaultdict(list)
    if not assistant_ids:
        return grouped
    rows = await session.scalars(
        select(Action)
        .where(Action.assistant_id.in_(assistant_ids))  # type: ignore[attr-defined]
        .order_by(Action.position, Action.created_at, Action.id)
    )
    for row in rows:
        grouped[row.assistant_id].append(row)
    return grouped


async def _actions_of(session: AsyncSession, assistant: Assistant) -> list[Action]:
    grouped = await actions_by_assistant(session, [assistant.id])
    return grouped.get(assistant.id, [])


async def create_action(
    session: AsyncSession, *, org_id: str, assistant_id: str, body: Any
) -> Action:
    """A new action goes last: (highest position of the assistant's actions, or 0) + 100."""
    assistant = await get_assistant(
        session, org_id=org_id, assistant_id=assistant_id, for_update=True
    )
    data = parse_body(ActionCreate, body)
    highest = await session.scalar(
        select(func.max(Action.position)).where(Action.assistant_id == assistant.id)
    )
    now = utcnow()
    row = Action(
        id=new_id(),
        org_id=org_id,
        assistant_id=assistant.id,
        position=(highest or 0) + POSITION_STEP,
        created_at=now,
        updated_at=now,
        **data.model_dump(),
    )
    session.add(row)
    await session.flush()
    return row


async def list_actions(session: AsyncSession, *, org_id: str, assistant_id: str) -> list[Action]:
    assistant = await get_assistant(session, org_id=org_id, assistant_id=assistant_id)
    return await _actions_of(session, assistant)


async def get_action(
    session: AsyncSession, *, org_id: str, assistant_id: str, action_id: str
) -> Action:
    return await load_child(
        session, Action, org_id=org_id, child_id=action_id, assistant_id=assistant_id
    )


async def update_action(
    session: AsyncSession,
    *,
    org_id: str,
    action_id: str,
    patch: Any,
    assistant_id: str | None = None,
) -> Action:
    """Changes what was sent (`config` replaced whole; `position` only by reorder).

    Without `assistant_id` (GraphQL) the action is found by organisation alone.
    """
    row = await load_child(
        session,
        Action,
        org_id=org_id,
        child_id=action_id,
        assistant_id=assistant_id,
        for_update=True,
    )
    data = parse_body(ActionPatch, patch)
    values = data.set_fields()
    if data.config is not None:
        values["config"] = data.config.model_dump()  # whole, defaults included
    if apply_changes(row, values):
        await session.flush()
    return row


async def delete_action(
    session: AsyncSession, *, org_id: str, action_id: str, assistant_id: str | None = None
) -> Action:
    row = await load_child(
        session,
        Action,
        org_id=org_id,
        child_id=action_id,
        assistant_id=assistant_id,
        for_update=True,
    )
    await session.delete(row)
    await session.flush()
    return row


async def reorder_actions(
    session: AsyncSession, *, org_id: str, assistant_id: str, body: Any
) -> list[Action]:
    """Moves the named actions to the given positions; answers every action, in order.

    An id that is not an action of this assistant (or appears twice) is VALIDATION_FAILED
    naming `positions.N.id`, and nothing moves.
    """
    assistant = await get_assistant(
        session, org_id=org_id, assistant_id=assistant_id, for_update=True
    )
    data = parse_body(ActionReorder, body)
    rows = {row.id: row for row in await _actions_of(session, assistant)}
    foreign = [
        FieldError(("positions", index, "id"), "no such action of this assistant")
        for index, pair in enumerate(data.positions)
        if pair.id not in rows
    ]
    errors = sorted(data.duplicate_ids() + foreign, key=lambda e: e.path)
    if errors:
        raise invalid_input(errors)
    changed = [apply_changes(rows[pair.id], {"position": pair.position}) for pair in data.positions]
    if any(changed):
        await session.flush()
    return _in_order(list(rows.values()))
