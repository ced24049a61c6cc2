"""Integration use cases."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Integration


async def integrations_by_assistant(
    session: AsyncSession, assistant_ids: Sequence[str]
) -> dict[str, list[Integration]]:
    """The integrations of many assistants in one statement, oldest first."""
    grouped: dict[str, list[Integration]] = defaultdict(list)
    if not assistant_ids:
        return grouped
    rows = await session.scalars(
        select(Integration)
        .where(Integration.assistant_id.in_(assistant_ids))  # type: ignore[attr-defined]
        .order_by(Integration.created_at, Integration.id)
    )
    for row in rows:
        grouped[row.assistant_id].append(row)
    return grouped
