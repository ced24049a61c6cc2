"""Integration use cases: create, read, list, update, delete (under a live assistant)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.assistants import get_assistant
from app.domain.child_input import IntegrationCreate, IntegrationPatch, parse_body
from app.domain.children import apply_changes, load_child
from app.models import Integration, new_id, utcnow


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


async def create_integration(
    session: AsyncSession, *, org_id: str, assistant_id: str, body: Any
) -> Integration:
    assistant = await get_assistant(
        session, org_id=org_id, assistant_id=assistant_id, for_update=True
    )
    data = parse_body(IntegrationCreate, body)
    now = utcnow()
    row = Integration(
        id=new_id(),
        org_id=org_id,
        assistant_id=assistant.id,
        created_at=now,
        updated_at=now,
        **data.model_dump(),
    )
    session.add(row)
    await session.flush()
    return row


async def list_integrations(
    session: AsyncSession, *, org_id: str, assistant_id: str
) -> list[Integration]:
    assistant = await get_assistant(session, org_id=org_id, assistant_id=assistant_id)
    grouped = await integrations_by_assistant(session, [assistant.id])
    return grouped.get(assistant.id, [])


async def get_integration(
    session: AsyncSession, *, org_id: str, assistant_id: str, integration_id: str
) -> Integration:
    return await load_child(
        session, Integration, org_id=org_id, child_id=integration_id, assistant_id=assistant_id
    )


async def update_integration(
    session: AsyncSession,
    *,
    org_id: str,
    integration_id: str,
    patch: Any,
    assistant_id: str | None = None,
) -> Integration:
    """Changes what was sent (`config` replaced whole); `updated_at` moves on a real change.

    Without `assistant_id` (GraphQL) the integration is found by organisation alone.
    """
    row = await load_child(
        session,
        Integration,
        org_id=org_id,
        child_id=integration_id,
        assistant_id=assistant_id,
        for_update=True,
    )
    data = parse_body(IntegrationPatch, patch)
    if apply_changes(row, data.set_fields()):
        await session.flush()
    return row


async def delete_integration(
    session: AsyncSession, *, org_id: str, integration_id: str, assistant_id: str | None = None
) -> Integration:
    row = await load_child(
        session,
        Integration,
        org_id=org_id,
        child_id=integration_id,
        assistant_id=assistant_id,
        for_update=True,
    )
    await session.delete(row)
    await session.flush()
    return row
