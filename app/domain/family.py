"""The integrations and actions of many assistants in ONE statement (a UNION ALL with padded
columns), as light rows: plain objects whose attributes carry the models' names, so the document
builders and the GraphQL types read them like model rows, without the ORM's identity-map work."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, String, bindparam, cast, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from app.domain.records import core_execute
from app.models import Action, Integration

INTEGRATION, ACTION = 0, 1


class ChildRow:
    """One integration or action (the columns of the other kind are None)."""

    __slots__ = (
        "action_id",
        "assistant_id",
        "config",
        "connection_id",
        "created_at",
        "enabled",
        "error",
        "id",
        "instructions",
        "integration_id",
        "kind",
        "name",
        "position",
        "updated_at",
    )

    def __init__(self, row: Sequence[Any]) -> None:
        (
            self.kind,
            self.id,
            self.assistant_id,
            self.enabled,
            self.connection_id,
            self.config,
            self.created_at,
            self.updated_at,
            self.integration_id,
            self.error,
            self.action_id,
            self.name,
            self.instructions,
            self.position,
        ) = row


@dataclass(slots=True)
class Children:
    """Per assistant id: integrations oldest first, actions in `position` order."""

    integrations: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    actions: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))


def _text_null() -> Any:
    return cast(null(), String)


def _build() -> Any:
    i, a = Integration.__table__.c, Action.__table__.c  # type: ignore[attr-defined]
    ids = bindparam("ids", expanding=True)
    integrations: Select[Any] = select(
        literal(INTEGRATION, Integer).label("kind"),
        i.id,
        i.assistant_id,
        i.enabled,
        i.connection_id,
        i.config,
        i.created_at,
        i.updated_at,
        i.integration_id,
        i.error,
        _text_null().label("action_id"),
        _text_null().label("name"),
        _text_null().label("instructions"),
        cast(null(), Integer).label("position"),
    ).where(i.assistant_id.in_(ids))
    actions: Select[Any] = select(
        literal(ACTION, Integer),
        a.id,
        a.assistant_id,
        a.enabled,
        a.connection_id,
        a.config,
        a.created_at,
        a.updated_at,
        _text_null(),
        _text_null(),
        a.action_id,
        a.name,
        a.instructions,
        a.position,
    ).where(a.assistant_id.in_(ids))
    union = union_all(integrations, actions).subquery()
    return select(union).order_by(union.c.kind, union.c.position, union.c.created_at, union.c.id)


CHILDREN = _build()


async def children_by_assistant(session: AsyncSession, assistant_ids: Sequence[str]) -> Children:
    """Both kinds of children of many assistants: one statement whatever their number."""
    children = Children()
    if not assistant_ids:
        return children
    result = await core_execute(session, CHILDREN, {"ids": list(assistant_ids)})
    integrations, actions = children.integrations, children.actions
    for row in result.all():
        child = ChildRow(row)
        (integrations if child.kind == INTEGRATION else actions)[child.assistant_id].append(child)
    return children
