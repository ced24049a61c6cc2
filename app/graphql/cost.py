"""Query cost: how many list items an operation's answer may hold.

Worked out once per document text (the engine keeps it in the document's `Prepared`): one walk
of the document, each fragment walked once (in dependency order, as app/graphql/limits.py does,
so fragments spreading fragments twice stay linear). What the walk yields is a polynomial in the
page sizes: a constant when every `first` is written in the document, otherwise a few terms over
the variables that set a `first`, finished per request from their values with a handful of
multiplications (`Cost.of`), never a second walk.

- A Relay connection (a field with a `first` argument whose type has `edges` or `nodes`)
  holds `first` items (the argument's default, 20, when absent or null; a value outside 1-100,
  which its resolver refuses, counts as the nearest bound). An edge and its node are one item:
  what is selected under `edges` and `nodes` counts once per item.
- A list of integrations or of actions holds 100 (an assistant's maximum of each).
- A list of objects by id (`nodes(ids:)`, federation's `_entities(representations:)`) holds as
  many items as its list argument has: the length of a literal list, or of the variable's
  value per request.
- Introspection (`__schema`, `__type`) costs INTROSPECTION_ITEMS (2,000) per occurrence, as a
  query of that many items: its answer is the whole schema (docs/graphql-bounds.md).
- Each of these counts its items times the items of the lists above it; any other field (an
  object, a connection's `pageInfo`, a list inside one item's data such as `definitions`,
  `suggestedMessages` or a revision's `changes`) adds nothing itself.
- Fragments and inline fragments count where they are spread; every field counts, aliases
  separately; directives are not looked at (a field under `@skip` still counts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)

from app.domain.actions import MAX_ACTIONS
from app.domain.integrations import MAX_INTEGRATIONS
from app.graphql.limits import dependency_order

MIN_PAGE, MAX_PAGE, DEFAULT_PAGE = 1, 100, 20
# lists whose length has a known bound, by the name of their item type
BOUNDED_LISTS: dict[str, int] = {"Integration": MAX_INTEGRATIONS, "Action": MAX_ACTIONS}
ITEM_FIELDS = frozenset({"edges", "nodes"})
INTROSPECTION_ITEMS = 2000  # what one `__schema` or `__type` costs
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
# lists of objects by id: the argument whose length is theirs, by field name
LISTED_BY: dict[str, str] = {"nodes": "ids", "_entities": "representations"}

Term = tuple[int, ...]  # the factors (page-size variables, by index) a coefficient multiplies
Poly = dict[Term, int]
Factor = tuple[str, int | None, int, bool]
"""(variable, its default in the operation, the fallback, whether it counts a list's length)"""


def page_size(value: Any, fallback: int) -> int:
    """How many items a `first` of this value can hold (the fallback for null, or for a value
    that will not coerce to an Int anyway)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        value = fallback
    items: int = min(max(value, MIN_PAGE), MAX_PAGE)
    return items


def list_length(value: Any, default: int | None) -> int:
    """How many items a list argument of this value holds (a single value is a list of one)."""
    if isinstance(value, list | tuple):
        return len(value)
    if value is None:
        return default or 0
    return 1


@dataclass(frozen=True, slots=True)
class Cost:
    """The cost of one operation: `constant`, or `terms` over page-size `factors`."""

    constant: int | None
    terms: tuple[tuple[int, Term], ...] = ()
    factors: tuple[Factor, ...] = ()

    def of(self, variables: Mapping[str, Any] | None) -> int:
        """The cost with these variables' values (a lookup when it is a constant)."""
        if self.constant is not None:
            return self.constant
        given = variables or {}
        sizes = [
            list_length(given.get(name), default)
            if length
            else page_size(given.get(name, default), fallback)
            for name, default, fallback, length in self.factors
        ]
        total = 0
        for coefficient, term in self.terms:
            for index in term:
                coefficient *= sizes[index]
            total += coefficient
        return total


NO_COST = Cost(0)


def _add(into: Poly, poly: Poly, times: int = 1) -> None:
    for term, coefficient in poly.items():
        into[term] = into.get(term, 0) + coefficient * times


def _scaled(poly: Poly, constant: int, factor: int | None) -> Poly:
    """`poly` times a weight: a constant, or one page-size factor."""
    if factor is None:
        return {term: coefficient * constant for term, coefficient in poly.items()}
    return {tuple(sorted((*term, factor))): coefficient for term, coefficient in poly.items()}


def _fields(parent: GraphQLNamedType | None) -> dict[str, GraphQLField]:
    fields: dict[str, GraphQLField] | None = getattr(parent, "fields", None)
    return fields if fields is not None else {}


def _is_connection(field: GraphQLField, named: GraphQLNamedType) -> bool:
    return "first" in field.args and not ITEM_FIELDS.isdisjoint(_fields(named))


def _is_list(field: GraphQLField) -> bool:
    return is_list_type(get_nullable_type(field.type))


class Walk:
    """One walk of a (valid) document: every fragment once, then each operation."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        # (variable, fallback, counts a length) → index
        self.factors: dict[tuple[str, int, bool], int] = {}
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.fragments: dict[str, tuple[Poly, Poly]] = {}
        for name in dependency_order(fragments):
            fragment = fragments[name]
            on = schema.get_type(fragment.type_condition.name.value)
            self.fragments[name] = self.selections(fragment.selection_set, on)

    def operation(self, operation: OperationDefinitionNode) -> Cost:
        root = self.schema.get_root_type(operation.operation)
        items, fixed = self.selections(operation.selection_set, root)
        _add(fixed, items)
        poly = {term: coefficient for term, coefficient in fixed.items() if coefficient}
        if all(term == () for term in poly):
            return Cost(poly.get((), 0))
        defaults = {
            definition.variable.name.value: definition.default_value
            for definition in operation.variable_definitions or ()
        }
        factors = tuple(
            (name, _default(defaults.get(name), length), fallback, length)
            for (name, fallback, length) in self.factors
        )  # in index order: dicts keep insertion order
        return Cost(None, tuple((c, term) for term, c in poly.items()), factors)

    def selections(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None
    ) -> tuple[Poly, Poly]:
        """(what counts once per item of the connection `parent` is, what counts once)."""
        items: Poly = {}
        fixed: Poly = {}
        fields = _fields(parent)
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value in INTROSPECTION_FIELDS:
                    _add(fixed, {(): INTROSPECTION_ITEMS})
                    continue
                field = fields.get(selection.name.value)
                if field is None or selection.selection_set is None:
                    continue  # leaves, __typename
                cost = self.field(selection, field)
                _add(items if selection.name.value in ITEM_FIELDS else fixed, cost)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = parent if condition is None else self.schema.get_type(condition.name.value)
                inner_items, inner_fixed = self.selections(selection.selection_set, on)
                _add(items, inner_items)
                _add(fixed, inner_fixed)
            elif isinstance(selection, FragmentSpreadNode):
                spread_items, spread_fixed = self.fragments.get(selection.name.value, ({}, {}))
                _add(items, spread_items)
                _add(fixed, spread_fixed)
        return items, fixed

    def field(self, node: FieldNode, field: GraphQLField) -> Poly:
        """What one selected field (with a selection) costs."""
        assert node.selection_set is not None
        named = get_named_type(field.type)
        items, fixed = self.selections(node.selection_set, named)
        if _is_connection(field, named):
            constant, factor = self.page(node, field)
            per_item: Poly = {(): 1}
            _add(per_item, items)
            cost = _scaled(per_item, constant, factor)
            _add(cost, fixed)
            return cost
        _add(fixed, items)
        by = LISTED_BY.get(node.name.value)
        if by is not None and by in field.args and _is_list(field):
            constant, factor = self.length(node, by)
            _add(fixed, {(): 1})
            return _scaled(fixed, constant, factor)
        bound = BOUNDED_LISTS.get(named.name) if _is_list(field) else None
        if bound is None:
            return fixed
        _add(fixed, {(): 1})
        return _scaled(fixed, bound, None)

    def page(self, node: FieldNode, field: GraphQLField) -> tuple[int, int | None]:
        """The weight of a connection: (a constant, None) or (1, the index of its variable)."""
        default = field.args["first"].default_value
        fallback = default if isinstance(default, int) else DEFAULT_PAGE
        argument = next((a for a in node.arguments or () if a.name.value == "first"), None)
        value = argument.value if argument is not None else None
        if isinstance(value, VariableNode):
            key = (value.name.value, fallback)
            return 1, self.factors.setdefault((*key, False), len(self.factors))
        # absent or null: the fallback (anything but an Int is refused by validation anyway)
        given = int(value.value) if isinstance(value, IntValueNode) else None
        return page_size(given, fallback), None

    def length(self, node: FieldNode, name: str) -> tuple[int, int | None]:
        """The weight of a list by id: its argument's length, (a constant, None) or (1, the
        index of its variable)."""
        argument = next((a for a in node.arguments or () if a.name.value == name), None)
        value = argument.value if argument is not None else None
        if isinstance(value, VariableNode):
            key = (value.name.value, 0, True)
            return 1, self.factors.setdefault(key, len(self.factors))
        if isinstance(value, ListValueNode):
            return len(value.values), None
        return (0 if value is None else 1), None


def _default(value: Any, length: bool) -> int | None:
    """A variable's default in the operation, as a page size or as a list's length."""
    if length:
        if isinstance(value, ListValueNode):
            return len(value.values)
        return None if value is None else 1
    return int(value.value) if isinstance(value, IntValueNode) else None


def operation_costs(
    schema: GraphQLSchema, document: DocumentNode, operations: Iterable[OperationDefinitionNode]
) -> list[Cost]:
    """The cost of each operation of a valid document, in the order given."""
    walk = Walk(schema, document)
    return [walk.operation(operation) for operation in operations]


POINTS_PER_COST = 100


def points_for(cost: int) -> int:
    """The points a request of this cost spends: max(1, ceil(cost / 100))."""
    return max(1, -(-cost // POINTS_PER_COST))
