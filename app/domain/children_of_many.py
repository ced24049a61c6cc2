"""The integrations and actions of many assistants in ONE statement (a UNION ALL with padded
columns, the assistants' ids bound as one list), read as records whose attributes carry the
models' names, so the document builders and the GraphQL types read them like model rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import orjson
from sqlalchemy import Integer, String, Text, cast, literal, null, select, union_all
from sqlalchemy.sql import Select

from app.models import Action, Integration
from app.store import Statement, Tx, in_list
from app.store.records import record_class

INTEGRATION, ACTION = 0, 1


@dataclass(slots=True)
class Children:
    """Per assistant id: integrations oldest first, actions in `position` order."""

    integrations: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    actions: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))


def _text_null() -> Any:
    return cast(null(), String)


def _build(config_text: bool = False) -> Any:
    """The statement; with `config_text`, the configs as their stored JSON text."""
    # mypy ignore below: SQLModel's metaclass sets __table__
    i, a = Integration.__table__.c, Action.__table__.c  # type: ignore[attr-defined]
    i_config = cast(i.config, Text).label("config") if config_text else i.config
    a_config = cast(a.config, Text) if config_text else a.config
    integrations: Select[Any] = select(
        literal(INTEGRATION, Integer).label("kind"),
        i.id,
        i.assistant_id,
        i.enabled,
        i.connection_id,
        i_config,
        i.created_at,
        i.updated_at,
        i.integration_id,
        i.error,
        _text_null().label("action_id"),
        _text_null().label("name"),
        _text_null().label("instructions"),
        cast(null(), Integer).label("position"),
    ).where(in_list(i.assistant_id, "ids"))
    actions: Select[Any] = select(
        literal(ACTION, Integer),
        a.id,
        a.assistant_id,
        a.enabled,
        a.connection_id,
        a_config,
        a.created_at,
        a.updated_at,
        _text_null(),
        _text_null(),
        a.action_id,
        a.name,
        a.instructions,
        a.position,
    ).where(in_list(a.assistant_id, "ids"))
    union = union_all(integrations, actions).subquery()
    if config_text:  # sorted by `children_by_assistant`: the database would sort the configs too
        return select(union)
    return select(union).order_by(union.c.kind, union.c.position, union.c.created_at, union.c.id)


CHILDREN = Statement(_build())
CHILDREN_STORED = Statement(_build(config_text=True))  # the configs as stored (JSON text)
# One integration or action (the columns of the other kind are None).
ChildRow = record_class("ChildRow", CHILDREN.clause.exported_columns.keys())


# CHILDREN's ORDER BY within each assistant (whose children are grouped apart: the order
# across assistants is free): kind, then position (actions; integrations have None, equal to
# one another), creation, id. The assistant first, so that the slow comparisons (times) are
# made only between the few children of one assistant, never across the page.
_order = attrgetter("assistant_id", "kind", "position", "created_at", "id")


async def children_by_assistant(
    tx: Tx, assistant_ids: Sequence[str], *, stored_configs: bool = False
) -> Children:
    """Both kinds of children of many assistants: one statement whatever their number.

    `stored_configs`: an integration's `config` is its stored JSON text as an `orjson.Fragment`
    (written out as it is, never decoded: up to 64 KiB each, 100 per assistant), an action's is
    decoded as usual. For answers that only write the config out (GraphQL)."""
    children = Children()
    if not assistant_ids:
        return children
    statement = CHILDREN_STORED if stored_configs else CHILDREN
    rows: list[Any] = await tx.all(statement, {"ids": list(assistant_ids)}, ChildRow)
    if stored_configs:  # CHILDREN's order, sorted here (a sort in SQL moves every config)
        rows.sort(key=_order)
    integrations, actions = children.integrations, children.actions
    for child in rows:
        if child.kind == INTEGRATION:
            if stored_configs:
                child.config = orjson.Fragment(child.config)
            integrations[child.assistant_id].append(child)
        else:
            if stored_configs:
                child.config = orjson.loads(child.config)
            actions[child.assistant_id].append(child)
    return children
