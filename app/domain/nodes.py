"""Objects by their id alone (GraphQL's Relay `node`/`nodes` and federation's `_entities`).

Ids are uuid4 values made by `app.models.new_id` for assistants, integrations and actions
alike, so an id names one object whatever its type: the lookup needs no type prefix, and the
`id` every client already holds (REST's too) is the Relay id.

What a caller gets is exactly what it may read, and nothing else is told apart: an id of
another organisation, of a deleted assistant (or a child of one), of an assistant outside a
restricted key's list, an unknown id, and any id at all for a key without `assistants:read`
are all simply absent from the answer. A list of ids costs three statements at most, whatever
its length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, bindparam, select

from app.domain.access import ANY_SCOPE, Access, Scope, requires
from app.domain.errors import FieldError, ValidationFailed
from app.models import Action, Assistant, Integration
from app.store import Statement, Tx, in_list
from app.store.records import ActionRecord, AssistantRecord, IntegrationRecord

MAX_IDS = 100

# mypy ignore below: SQLModel's metaclass sets __table__
_ASSISTANTS = Assistant.__table__  # type: ignore[attr-defined]
_LIVE = select(_ASSISTANTS.c.id).where(
    _ASSISTANTS.c.org_id == bindparam("org_id"), _ASSISTANTS.c.deleted.is_(False)
)
ASSISTANTS_BY_ID = Statement(
    select(_ASSISTANTS).where(
        _ASSISTANTS.c.org_id == bindparam("org_id"),
        _ASSISTANTS.c.deleted.is_(False),
        in_list(_ASSISTANTS.c.id, "ids"),
    )
)


def _children_by_id(model: type[Integration] | type[Action]) -> Statement[Select[Any]]:
    """Children of a kind by id, under a live assistant of the organisation."""
    # mypy ignore below: SQLModel's metaclass sets __table__
    table: Any = model.__table__  # type: ignore[union-attr]
    return Statement(
        select(table).where(
            table.c.org_id == bindparam("org_id"),
            in_list(table.c.id, "ids"),
            table.c.assistant_id.in_(_LIVE.scalar_subquery()),
        )
    )


INTEGRATIONS_BY_ID = _children_by_id(Integration)
ACTIONS_BY_ID = _children_by_id(Action)


@dataclass(slots=True)
class Found:
    """What the caller may read of the ids asked, by id (an id absent here is null)."""

    assistants: dict[str, Any] = field(default_factory=dict)
    integrations: dict[str, Any] = field(default_factory=dict)
    actions: dict[str, Any] = field(default_factory=dict)


def check_ids(ids: Sequence[Any], name: str = "ids") -> None:
    """At most MAX_IDS ids (or federation's representations), checked before anything is read
    (a validation error naming the argument)."""
    if len(ids) > MAX_IDS:
        raise ValidationFailed(
            f"'{name}' may hold at most {MAX_IDS} {name} (it holds {len(ids)})",
            [FieldError((name,), f"at most {MAX_IDS} {name}")],
        )


@requires(ANY_SCOPE)
async def find_by_ids(
    tx: Tx, *, access: Access, ids: Sequence[str], children: bool = True
) -> Found:
    """The assistants, integrations and actions (unless `children` is false) of these ids the
    caller may read (any key may ask; without `assistants:read` nothing is found). Three
    statements at most, whatever the number of ids."""
    found = Found()
    wanted = sorted({i for i in ids if i})
    if not wanted or Scope.READ not in access.scopes:
        return found
    parameters = {"org_id": access.org_id, "ids": wanted}
    for row in await tx.all(ASSISTANTS_BY_ID, parameters, AssistantRecord):
        if access.sees(row.id):
            found.assistants[row.id] = row
    if not children or len(found.assistants) == len(wanted):  # nothing else to look for
        return found
    kinds: tuple[tuple[Statement[Any], type[Any], dict[str, Any]], ...] = (
        (INTEGRATIONS_BY_ID, IntegrationRecord, found.integrations),
        (ACTIONS_BY_ID, ActionRecord, found.actions),
    )
    for statement, record, into in kinds:
        for child in await tx.all(statement, parameters, record):
            if access.sees(child.assistant_id):
                into[child.id] = child
    return found
