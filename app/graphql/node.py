"""Relay object identification (`node`, `nodes`) and federation's `_entities`: objects by id.

The ids are the plain ids every client already holds (uuid4 values, unique across assistants,
integrations and actions: see app/domain/nodes.py), so the type is found by looking the id up.
Each answers only what the calling key may read; anything else is null, never an error that
would tell "exists elsewhere" from "does not exist".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import strawberry

from app.domain.nodes import Found, check_ids, find_by_ids
from app.graphql.assistants import children_if_asked, node
from app.graphql.context import Info
from app.graphql.types import Action, Assistant, Integration, Node
from app.store import Tx

ASSISTANT = "Assistant"


async def _assistants(info: Info, tx: Tx, found: Found) -> dict[str, Assistant]:
    """The assistants found, with their children from this transaction when selected below."""
    rows = list(found.assistants.values())
    children = await children_if_asked(info, tx, rows)
    base_url = info.context.settings.base_url
    return {row.id: node(row, base_url, children) for row in rows}


def _answer(ids: Iterable[str], found: Found, assistants: dict[str, Assistant]) -> list[Any]:
    """One object or None per id, in the order asked."""
    answer: list[Any] = []
    for i in ids:
        if i in assistants:
            answer.append(assistants[i])
        elif i in found.integrations:
            answer.append(Integration.from_row(found.integrations[i]))
        elif i in found.actions:
            answer.append(Action.from_row(found.actions[i]))
        else:
            answer.append(None)
    return answer


@strawberry.type
class NodeQuery:
    @strawberry.field(
        description=(
            "The assistant, integration or action of this id, if the API key may read it "
            "(its organisation, `assistants:read`, and for a restricted key its assistants); "
            "null otherwise, also for an unknown id."
        )
    )
    async def node(
        self,
        info: Info,
        id: Annotated[  # noqa: A002
            strawberry.ID, strawberry.argument(description="The id of any object (`id` field).")
        ],
    ) -> Node | None:
        ctx = info.context
        async with ctx.db.read() as tx:
            found = await find_by_ids(tx, access=await ctx.caller(tx), ids=[id])
            assistants = await _assistants(info, tx, found)
        answer: Node | None = _answer([id], found, assistants)[0]
        return answer

    @strawberry.field(
        description=(
            "The objects of these ids, in the same order, each as `node(id:)` answers it (null "
            "for what the key may not read). At most 100 ids; the cost counts one per id."
        )
    )
    async def nodes(
        self,
        info: Info,
        ids: Annotated[
            list[strawberry.ID], strawberry.argument(description="At most 100 ids of any type.")
        ],
    ) -> list[Node | None]:
        check_ids(ids)
        ctx = info.context
        async with ctx.db.read() as tx:
            found = await find_by_ids(tx, access=await ctx.caller(tx), ids=ids)
            assistants = await _assistants(info, tx, found)
        return _answer(ids, found, assistants)


async def entities(info: Info, representations: Sequence[Any]) -> list[Assistant | None]:
    """Federation's `_entities`: each representation (`{__typename: "Assistant", id}`) as the
    assistant, if the key may read it, else null; one lookup for all of them. At most 100
    representations (as `nodes`' ids), refused before anything is read."""
    check_ids(representations, "representations")
    ids = [
        str(r.get("id") or "") if isinstance(r, dict) and r.get("__typename") == ASSISTANT else ""
        for r in representations
    ]
    ctx = info.context
    async with ctx.db.read() as tx:
        found = await find_by_ids(tx, access=await ctx.caller(tx), ids=ids, children=False)
        assistants = await _assistants(info, tx, found)
    return [assistants.get(i) for i in ids]
