"""Assistant queries and mutations: translation to the domain use cases."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import strawberry
from graphql import FieldNode, FragmentSpreadNode, OperationType, SelectionSetNode

from app.domain.assistant_find import (
    DEFAULT_ORDER,
    check_filter,
    count_found,
    cursor_of,
    find_assistants,
    position_of,
)
from app.domain.assistants import (
    check_page_size,
    count_assistants,
    create_assistant,
    delete_assistant,
    get_assistant,
    list_assistants,
    rotate_secret_key,
    update_assistant,
)
from app.domain.children_of_many import Children, children_by_assistant
from app.graphql.args import AssistantId, OrgId
from app.graphql.assistant_find import (
    AssistantFilterInput,
    AssistantOrderInput,
    filter_of,
    order_of,
)
from app.graphql.context import Info
from app.graphql.inputs import CreateAssistantInput, UpdateAssistantInput, sent_fields
from app.graphql.pagination import PageInfo, decode_cursor, encode_cursor
from app.graphql.types import Assistant, AssistantConnection, AssistantEdge
from app.store import Tx
from app.store.records import AssistantRecord as AssistantRow

CURSOR_KIND = "assistant"
DEFAULT_FIRST = 20


CHILD_FIELDS = frozenset({"integrations", "actions"})


def _asks_children(selection_set: SelectionSetNode | None, fragments: dict[str, Any]) -> bool:
    """Whether a field named like a child list is selected anywhere below (over the raw
    document: Strawberry's `selected_fields` would convert every argument and directive)."""
    if selection_set is None:
        return False
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode) and selection.name.value in CHILD_FIELDS:
            return True
        if isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            below = fragment.selection_set if fragment is not None else None
        else:
            # mypy ignore below: fields and fragments have one; the loop checks
            below = selection.selection_set  # type: ignore[attr-defined]
        if _asks_children(below, fragments):
            return True
    return False


async def children_if_asked(info: Info, tx: Tx, rows: Sequence[AssistantRow]) -> Children | None:
    """The children of `rows` from the resolver's own transaction (one statement) when the
    selection asks for them anywhere below; None leaves them to the request's loader."""
    raw = info._raw_info  # noqa: SLF001  (Strawberry keeps graphql-core's info there)
    if not rows or not any(_asks_children(n.selection_set, raw.fragments) for n in raw.field_nodes):
        return None
    ids = [row.id for row in rows]
    if raw.operation.operation is OperationType.QUERY:  # aliases of one assistant: read once
        return await info.context.loaders.children_once(tx, ids)
    # a mutation's fields write in turn: each reads again
    return await children_by_assistant(tx, ids, stored_configs=True)


def node(row: AssistantRow, base_url: str, children: Children | None) -> Assistant:
    if children is None:
        return Assistant.from_row(row, base_url)
    family = (children.integrations.get(row.id, []), children.actions.get(row.id, []))
    return Assistant.from_row(row, base_url, family)


def assistant_connection(
    rows: list[AssistantRow],
    first: int,
    total: int,
    base_url: str,
    children: Children | None = None,
    cursor: Callable[[AssistantRow], str] | None = None,
) -> AssistantConnection:
    """A page of `first` rows; one row more than asked says that another page follows."""
    edges = [
        AssistantEdge(
            cursor=encode_cursor(CURSOR_KIND, row.seq or 0) if cursor is None else cursor(row),
            node=node(row, base_url, children),
        )
        for row in rows[:first]
    ]
    return AssistantConnection(
        edges=edges,
        nodes=[edge.node for edge in edges],
        page_info=PageInfo(
            has_next_page=len(rows) > first,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=total,
    )


@strawberry.type
class AssistantQuery:
    @strawberry.field(description="One assistant; null with a NOT_FOUND error when absent.")
    async def assistant(self, info: Info, org_id: OrgId, id: AssistantId) -> Assistant | None:  # noqa: A002
        ctx = info.context
        async with ctx.db.read() as tx:
            access = await ctx.access(tx, org_id)
            row = await get_assistant(tx, access=access, assistant_id=id)
            children = await children_if_asked(info, tx, [row])
        return node(row, ctx.settings.base_url, children)

    @strawberry.field(
        description=(
            "The organisation's assistants, as a Relay connection: those that match `filter`, "
            "in the order of `orderBy` (without it, the oldest first)."
        )
    )
    async def assistants(
        self,
        info: Info,
        org_id: OrgId,
        first: Annotated[
            int | None,
            strawberry.argument(description="How many to return, 1-100 (null means 20)."),
        ] = DEFAULT_FIRST,
        after: Annotated[
            str | None,
            strawberry.argument(description="Return the assistants after this cursor."),
        ] = None,
        filter: Annotated[  # noqa: A002
            AssistantFilterInput | None,
            strawberry.argument(description="Only the assistants that match all of it."),
        ] = None,
        order_by: Annotated[
            AssistantOrderInput | None,
            strawberry.argument(
                description="The order; a cursor is valid only in the order that made it."
            ),
        ] = None,
    ) -> AssistantConnection:
        if filter is not None or order_by is not None:
            return await _found(info, org_id, first, after, filter, order_by)
        ctx = info.context
        async with ctx.db.read() as tx:
            access = await ctx.access(tx, org_id)
            size = check_page_size(DEFAULT_FIRST if first is None else first, "first")
            after_seq = None if after is None else decode_cursor(CURSOR_KIND, after)
            rows = await list_assistants(tx, access=access, after_seq=after_seq, limit=size + 1)
            total = await count_assistants(tx, access=access)
            children = await children_if_asked(info, tx, rows[:size])
        return assistant_connection(rows, size, total, ctx.settings.base_url, children)


async def _found(
    info: Info,
    org_id: str,
    first: int | None,
    after: str | None,
    filter_input: AssistantFilterInput | None,
    order_input: AssistantOrderInput | None,
) -> AssistantConnection:
    """`assistants` with a filter or an order (docs/finding-assistants.md)."""
    ctx = info.context
    found, order = filter_of(filter_input), order_of(order_input)
    async with ctx.db.read() as tx:
        access = await ctx.access(tx, org_id)
        size = check_page_size(DEFAULT_FIRST if first is None else first, "first")
        check_filter(found, ("filter",))
        position = None if after is None else position_of(order, after)
        rows = await find_assistants(
            tx, access=access, found=found, order=order, after=position, limit=size + 1
        )
        total = await count_found(tx, access=access, found=found)
        children = await children_if_asked(info, tx, rows[:size])
    cursor = None if order == DEFAULT_ORDER else lambda row: cursor_of(order, row)
    return assistant_connection(rows, size, total, ctx.settings.base_url, children, cursor)


@strawberry.type
class AssistantMutation:
    @strawberry.mutation(description="Create an assistant; defaults apply to every absent key.")
    async def create_assistant(
        self,
        info: Info,
        org_id: OrgId,
        input: Annotated[  # noqa: A002
            CreateAssistantInput, strawberry.argument(description="The new assistant.")
        ],
    ) -> Assistant:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await create_assistant(
                tx,
                access=access,
                body=sent_fields(input),
                default_model=ctx.settings.default_model,
                writer=ctx.writer,
                quota=ctx.request.app.state.creation_quota,
            )
        return Assistant.from_row(row, ctx.settings.base_url, ([], []))  # no children yet

    @strawberry.mutation(
        description=(
            "Partial update: absent keys stay, objects merge key by key, arrays replace, "
            "null clears a nullable field. All or nothing. A stale `expectedVersion` is CONFLICT."
        )
    )
    async def update_assistant(
        self,
        info: Info,
        org_id: OrgId,
        assistant_id: AssistantId,
        input: Annotated[  # noqa: A002
            UpdateAssistantInput,
            strawberry.argument(description="The keys to change, with the merge rules above."),
        ],
        expected_version: Annotated[
            int | None,
            strawberry.argument(
                description="Refuse the update (CONFLICT) unless the assistant is at this version."
            ),
        ] = None,
        dry_run: Annotated[
            bool,
            strawberry.argument(
                description=(
                    "Validate and merge exactly as a real update and answer the assistant as it "
                    "would be, with `version` unchanged; nothing is stored."
                )
            ),
        ] = False,
    ) -> Assistant:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await update_assistant(
                tx,
                access=access,
                assistant_id=assistant_id,
                patch=sent_fields(input),
                writer=ctx.writer,
                expected_versions=None if expected_version is None else [expected_version],
                dry_run=dry_run,
            )
            children = await children_if_asked(info, tx, [row])
        return node(row, ctx.settings.base_url, children)

    @strawberry.mutation(
        description=(
            "Delete an assistant with its integrations and actions; answers its id. "
            "Afterwards it is NOT_FOUND everywhere."
        )
    )
    async def delete_assistant(
        self, info: Info, org_id: OrgId, assistant_id: AssistantId
    ) -> strawberry.ID:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await delete_assistant(
                tx, access=access, assistant_id=assistant_id, writer=ctx.writer
            )
        return strawberry.ID(row.id)

    @strawberry.mutation(
        description="Give the assistant a new random `secretKey`; the old one stops being valid."
    )
    async def rotate_assistant_secret_key(
        self, info: Info, org_id: OrgId, assistant_id: AssistantId
    ) -> Assistant:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await rotate_secret_key(
                tx, access=access, assistant_id=assistant_id, writer=ctx.writer
            )
            children = await children_if_asked(info, tx, [row])
        return node(row, ctx.settings.base_url, children)
