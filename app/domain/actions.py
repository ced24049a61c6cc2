"""Action use cases."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Action


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
        .order_by(Action.position, Action.id)
    )
    for row in rows:
        grouped[row.assistant_id].append(row)
    return grouped
