"""CompiledExecutionContext answers exactly what graphql-core's own execution answers.

The same small schema runs twice, once with Strawberry's execution context and once with
ours, on documents that reach every kind of step (leaves, lists, objects, lists of objects,
`__typename`, resolvers, arguments, aliases, fragments, @skip/@include) and on objects holding
values that do not fit their types (nulls in non-null fields and items, wrong scalar types,
an exception as a value), so that error messages, paths and null propagation are compared too.
The app's own schema is checked to use it, and DataLoader batching to survive it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.dataloader import DataLoader
from strawberry.extensions import ParserCache
from strawberry.scalars import JSON

from app.graphql import execution
from app.graphql.execution import (
    LEAF,
    OBJECT,
    OBJECT_LIST,
    OTHER,
    PRELOADED,
    PRELOADED_ATTRIBUTE,
    CompiledExecutionContext,
    steps_for,
)
from app.graphql.schema import schema as app_schema


@strawberry.enum
class Color(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Leaf:
    name: str
    maybe: str | None
    count: int
    color: Color
    tags: list[str]
    loose_tags: list[str | None] | None
    data: JSON | None = None
    datas: list[JSON] | None = None
    flag: bool = True


@strawberry.type
class Node:
    id: strawberry.ID
    leaf: Leaf
    maybe_leaf: Leaf | None
    leaves: list[Leaf]
    loose_leaves: list[Leaf | None] | None
    strict_in_loose: list[Leaf] | None

    held: strawberry.Private[list[Leaf | None] | None] = None

    @strawberry.field(metadata={PRELOADED_ATTRIBUTE: "held"})
    def preloaded(self) -> list[Leaf]:  # what it holds, else its leaves
        return self.held if self.held is not None else self.leaves  # type: ignore[return-value]

    @strawberry.field
    def doubled(self, by: int = 2) -> int:
        return len(self.id) * by

    @strawberry.field
    async def loaded(self, info: strawberry.Info) -> Leaf | None:
        return await info.context["loader"].load(str(self.id))

    @strawberry.field
    def resolved_leaves(self) -> list[Leaf]:
        return self.leaves

    @strawberry.field
    async def resolved_loose(self) -> list[Leaf | None] | None:
        return self.loose_leaves

    @strawberry.field
    def fails(self) -> str | None:
        raise ValueError("resolver failed")


def leaf(name: Any = "a", **changes: Any) -> Leaf:
    values = {
        "name": name,
        "maybe": None,
        "count": 3,
        "color": Color.RED,
        "tags": ["x", "y"],
        "loose_tags": ["z", None],
    }
    values.update(changes)
    return Leaf(**values)


def node(i: str, **changes: Any) -> Node:
    values: dict[str, Any] = {
        "id": strawberry.ID(i),
        "leaf": leaf(f"leaf-{i}"),
        "maybe_leaf": None,
        "leaves": [leaf("l1"), leaf("l2", maybe="m")],
        "loose_leaves": [leaf("l3"), None],
        "strict_in_loose": [leaf("l4")],
    }
    values.update(changes)
    return Node(**values)


GOOD = [
    node("1"),
    node("22", maybe_leaf=leaf("mm", color=Color.BLUE, loose_tags=None), held=[leaf("h")]),
]
BAD = [
    node("n1", leaf=leaf(None)),  # null in a non-null leaf: the non-null object goes, up to nodes
    node("n2", maybe_leaf=leaf(count="many")),  # not an Int: maybeLeaf becomes null
    node("n3", leaves=[leaf("ok"), None]),  # null item in a non-null list: the node goes
    node("n4", loose_leaves=[leaf(tags=[None])]),  # null tag: the loose item becomes null
    node("n5", strict_in_loose=[leaf(color="green")]),  # no such enum value: the list goes
    node("n6", leaf=leaf(loose_tags=[1.5, None])),  # a float in a String list is coerced
    node("n7", maybe_leaf=ValueError("as a value")),  # an exception as a value is its error
    node("n8", leaves="not a list"),
    node("n9", loose_leaves=None, strict_in_loose=None),
    node("n10", leaf=leaf(data=KeyError("a JSON value that is an exception"))),
    node("n11", leaf=leaf(flag=1), maybe_leaf=leaf(flag="yes")),  # coerced, and refused
    node("n12", maybe_leaf=leaf(datas=[{"a": 1}, ValueError("an item that is an exception")])),
    node("n13", held=[leaf("h1"), None]),  # a null item in the resolver's non-null list
    node("n14", held=[leaf(count="x")]),  # a held item that does not fit
]


@strawberry.type
class Query:
    @strawberry.field
    def good(self) -> list[Node]:
        return GOOD

    @strawberry.field
    def bad(self) -> list[Node | None]:
        return BAD

    @strawberry.field
    def one_bad(self, index: int) -> Node:
        return BAD[index]


class StaticExecutionContext(CompiledExecutionContext):
    """As the engine runs a document without directives: selections collected once, and
    their plans compiled, across requests (the parser cache gives the same nodes again)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, static_selections=True, **kwargs)


def make(fast: bool) -> strawberry.Schema:
    extra = {"execution_context_class": CompiledExecutionContext} if fast else {}
    return strawberry.Schema(query=Query, **extra)


SLOW_SCHEMA, FAST_SCHEMA = make(False), make(True)
STATIC_SCHEMA = strawberry.Schema(
    query=Query, execution_context_class=StaticExecutionContext, extensions=[ParserCache]
)

EVERYTHING = """
  __typename id doubled twice: doubled(by: 4)
  leaf { ...L } maybeLeaf { ...L } leaves { ...L } looseLeaves { ...L }
  strictInLoose { ... on Leaf { name color } } loaded { name } fails
  resolvedLeaves { ...L } resolvedLoose { ...L } preloaded { ...L }
"""
FRAGMENT = (
    "fragment L on Leaf { __typename name maybe count color tags looseTags data datas flag "
    "alias: name }"
)

DOCUMENTS = [
    f"{{ good {{ {EVERYTHING} }} }} {FRAGMENT}",
    f"{{ bad {{ {EVERYTHING} }} }} {FRAGMENT}",
    f"{{ first: oneBad(index: 0) {{ id leaf {{ name }} }} }} {FRAGMENT}",
    f"{{ oneBad(index: 2) {{ id leaves {{ name }} }} }} {FRAGMENT}",
    f"{{ oneBad(index: 7) {{ id maybeLeaf {{ name }} }} }} {FRAGMENT}",
    f"{{ oneBad(index: 7) {{ id }} other: oneBad(index: 7) {{ id }} }} {FRAGMENT}",
    "query Q($yes: Boolean!, $no: Boolean!) { good { id @include(if: $yes) "
    "leaf @skip(if: $no) { name @skip(if: $yes) count } maybe: leaf { maybe } } "
    "bad { id leaf @include(if: $no) { name } } }",
    "{ good { leaf { name } leaf { count } ... on Node { leaf { tags } } } }",
]


async def run(schema: strawberry.Schema, document: str) -> tuple[Any, list[dict[str, Any]], int]:
    batches: list[list[str]] = []

    async def load(keys: list[str]) -> list[Leaf | None]:
        batches.append(list(keys))
        return [leaf(f"loaded-{k}") if k != "22" else None for k in keys]

    context = {"loader": DataLoader(load_fn=load)}
    result = await schema.execute(
        document, variable_values={"yes": True, "no": False}, context_value=context
    )
    errors = [e.formatted for e in result.errors or []]
    return result.data, errors, len(batches)


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_same_answer_as_graphql_core(document: str):
    expected = await run(SLOW_SCHEMA, document)
    assert await run(FAST_SCHEMA, document) == expected


@pytest.mark.parametrize(
    "document", [d for d in DOCUMENTS if "@" not in d] + [DOCUMENTS[2].replace(FRAGMENT, "")]
)
async def test_compiled_plans_give_the_same_answer(document: str, monkeypatch):
    """Documents without directives: the first run compiles the plans of their selections,
    the next ones run those compiled plans (counted); every run answers as graphql-core."""
    calls = []
    compile_plan = execution.compile_plan

    def counting(planned, nested=None):
        compiled = compile_plan(planned, nested)

        def run_compiled(*args):
            calls.append(1)
            return compiled(*args)

        return run_compiled

    monkeypatch.setattr(execution, "compile_plan", counting)
    monkeypatch.setattr(execution, "_collected", type(execution._collected)())
    monkeypatch.setattr(execution, "_static_plans", {})
    expected = await run(SLOW_SCHEMA, document)
    for _ in range(3):
        assert await run(STATIC_SCHEMA, document) == expected
    assert calls or expected[0] is None, "no compiled plan ran"


async def test_the_bad_values_do_reach_the_errors():
    """The comparison above is about something: graphql-core does report these."""
    data, errors, batches = await run(FAST_SCHEMA, DOCUMENTS[1])
    messages = " ".join(e["message"] for e in errors)
    expected = (
        "Cannot return null",
        "Int cannot",
        "as a value",
        "green",
        "JSON value",
        "'yes'",
        "an item",
    )
    assert [m for m in expected if m not in messages] == []
    assert {tuple(e["path"][:2]) for e in errors} >= {("bad", 0), ("bad", 1), ("bad", 2)}
    assert data["bad"][0] is None
    assert data["bad"][2] is None
    assert data["bad"][5]["leaf"]["looseTags"] == ["1.5", None]
    assert batches == 1  # every node's `loaded` in one DataLoader batch


def test_the_app_schema_uses_it():
    assert app_schema.execution_context_class is CompiledExecutionContext


def test_basic_fields_take_the_fast_path():
    """Strawberry marks its basic fields' resolvers; without that mark every field would quietly
    go the slow way (same answers, so the comparison above would not notice)."""
    node_type = FAST_SCHEMA._schema.type_map["Node"]
    shape = (("id", "id", False), ("tags", "leaves", False), ("leaf", "leaf", False))
    shape += (("doubled", "doubled", False),)
    kinds = [s.kind for s in steps_for(node_type, shape)]
    assert kinds == [LEAF, OBJECT_LIST, OBJECT, OTHER]
    preloaded = steps_for(node_type, (("p", "preloaded", False), ("q", "preloaded", True)))
    assert [s.kind for s in preloaded] == [PRELOADED, OTHER]  # with arguments: the resolver
