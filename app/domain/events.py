"""Change events: the revisions read back as events (live fan-out and `Last-Event-ID` resumes).

An event is a revision without its snapshot and author: `{"id", "org_id", "assistant_id",
"version", "change_type", "changes"}`, where `id` is the revision's `seq` (a decimal string).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.errors import FieldError, ValidationFailed
from app.models import ApiKey, AssistantRevision

REPLAY_PAGE = 500
MAX_SEQ = 2**63 - 1


def event_document(revision: AssistantRevision) -> dict[str, Any]:
    return {
        "id": str(revision.seq),
        "org_id": revision.org_id,
        "assistant_id": revision.assistant_id,
        "version": revision.version,
        "change_type": revision.change_type,
        "changes": revision.changes,
    }


def parse_event_id(raw: str | None, name: str = "last_event_id") -> int | None:
    """A `Last-Event-ID` (a revision's seq); None when absent, 400 naming `name` when not one."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if value.isascii() and value.isdigit() and len(value) <= 19 and int(value) <= MAX_SEQ:
        return int(value)
    raise ValidationFailed(
        f"'{name}' must be the id of an event", [FieldError((name,), "must be an event id")]
    )


async def last_revision_seq(session: AsyncSession) -> int:
    """The newest revision's seq (0 when there is none): where a live stream starts."""
    seq = await session.scalar(select(func.max(AssistantRevision.seq)))
    return int(seq or 0)


async def revisions_after(
    session: AsyncSession,
    *,
    after_seq: int,
    org_id: str | None = None,
    assistant_id: str | None = None,
    limit: int = REPLAY_PAGE,
) -> list[AssistantRevision]:
    """Revisions with a seq above `after_seq`, oldest first (of one organisation, when given)."""
    stmt = select(AssistantRevision).where(AssistantRevision.seq > after_seq)  # type: ignore[operator]
    if org_id is not None:
        stmt = stmt.where(AssistantRevision.org_id == org_id)
    if assistant_id is not None:
        stmt = stmt.where(AssistantRevision.assistant_id == assistant_id)
    stmt = stmt.order_by(AssistantRevision.seq).limit(limit)  # type: ignore[arg-type]
    return list(await session.scalars(stmt))


async def revisions_by_seq(session: AsyncSession, seqs: Collection[int]) -> list[AssistantRevision]:
    """The revisions of these seqs that still exist, in the order the seqs were given."""
    if not seqs:
        return []
    rows = await session.scalars(
        select(AssistantRevision).where(AssistantRevision.seq.in_(list(seqs)))  # type: ignore[union-attr]
    )
    by_seq = {row.seq: row for row in rows}
    return [by_seq[seq] for seq in seqs if seq in by_seq]


async def live_key_ids(session: AsyncSession, key_ids: Collection[str]) -> set[str]:
    """Those of these API keys that still open their organisation (not revoked, not gone)."""
    if not key_ids:
        return set()
    rows = await session.scalars(
        select(ApiKey.id).where(
            ApiKey.id.in_(list(key_ids)),  # type: ignore[attr-defined]
            ApiKey.revoked_at.is_(None),  # type: ignore[union-attr]
        )
    )
    return set(rows)
