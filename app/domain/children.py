"""What integrations and actions share: finding one under a live assistant, storing changes."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.assistants import get_assistant, next_instant
from app.domain.errors import NotFound
from app.models import Action, Assistant, Integration

C = TypeVar("C", Integration, Action)


async def _live_parent_id(
    session: AsyncSession, model: type[C], org_id: str, child_id: str
) -> str | None:
    """The assistant of a child of this organisation, unless that assistant is deleted."""
    parent: str | None = await session.scalar(
        select(model.assistant_id)
        .join(Assistant, Assistant.id == model.assistant_id)  # type: ignore[arg-type]
        .where(
            model.org_id == org_id,  # type: ignore[arg-type]
            model.id == child_id,  # type: ignore[arg-type]
            Assistant.deleted.is_(False),  # type: ignore[attr-defined]
        )
    )
    return parent


async def load_child(
    session: AsyncSession,
    model: type[C],
    *,
    org_id: str,
    child_id: str,
    assistant_id: str | None,
    for_update: bool = False,
) -> C:
    """One child of a live assistant of this organisation (of `assistant_id` when given).

    The parent is loaded first (and locked for writes), so writes to one assistant's
    children run one after another; anything else is NOT_FOUND.
    """
    noun = model.__tablename__[:-1]  # type: ignore[index]
    missing = NotFound(f"no {noun} '{child_id}' in this organisation")
    if assistant_id is None:
        assistant_id = await _live_parent_id(session, model, org_id, child_id)
        if assistant_id is None:
            raise missing
    await get_assistant(session, org_id=org_id, assistant_id=assistant_id, for_update=for_update)
    stmt = select(model).where(
        model.org_id == org_id,  # type: ignore[arg-type]
        model.assistant_id == assistant_id,  # type: ignore[arg-type]
        model.id == child_id,  # type: ignore[arg-type]
    )
    row = await session.scalar(stmt.with_for_update() if for_update else stmt)
    if row is None:
        raise missing
    return row


def _same(old: Any, new: Any) -> bool:
    """Equal as JSON: `true` is not `1`, key order does not matter."""
    if isinstance(old, dict | list) or isinstance(new, dict | list):
        options = orjson.OPT_SORT_KEYS
        return orjson.dumps(old, option=options) == orjson.dumps(new, option=options)
    return type(old) is type(new) and old == new


def apply_changes(row: Integration | Action, values: dict[str, Any]) -> bool:
    """Sets the values that really differ; `updated_at` moves only when one did."""
    changed = {key: value for key, value in values.items() if not _same(getattr(row, key), value)}
    for key, value in changed.items():
        setattr(row, key, value)
    if changed:
        row.updated_at = next_instant(row.updated_at)
    return bool(changed)
