"""Field execution without graphql-core's per-field machinery where that machinery does nothing.

graphql-core resolves every field the same way: a ResolveInfo, a `Path`, the resolver (for a
Strawberry type, a wrapper around `getattr`), an awaitable check, then completion by type. For
Strawberry's basic fields (a plain attribute: no resolver, no arguments, no extensions) on a
schema without resolve middleware, all of that comes down to `getattr` and the type's output
coercion. `CompiledExecutionContext` works out once per (type, selection shape) how each
selected field completes (a bounded cache across requests), then does only that for every
object: a list of 100 assistants selects thousands of such fields.

Anything else goes through graphql-core's own `execute_field`, unchanged: fields with
resolvers or arguments, abstract types, `@defer`/`@stream`, and any value that does not fit its
type (a null in a non-null field, a wrong type), so every error is graphql-core's own, with its
path. A basic field only reads an attribute, so reading it a second time there is harmless.
"""

from __future__ import annotations

import itertools
from asyncio import Future, gather, get_running_loop, sleep
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
from graphql import (
    GraphQLBoolean,
    GraphQLID,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLString,
    is_enum_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    print_ast,
)
from graphql.execution import Executor
from graphql.execution.collect_fields import CollectedFields, FieldDetailsList, GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.domain.errors import InsufficientScope
from app.graphql.answer_size import (
    DEFAULT_MAX_RESPONSE_BYTES,
    ERROR_OVERHEAD,
    KEY_OVERHEAD,
    OBJECT_OVERHEAD,
    Measure,
    ResponseTooLarge,
    leaf_size,
    string_size,
    value_size,
)

# the kinds of step; from OBJECT on, a result may be awaitable
LEAF, LEAF_LIST, TYPENAME, OBJECT, OBJECT_LIST, OTHER, PRELOADED = range(7)
# Strawberry field metadata: a resolver (taking nothing but `info`) answers this attribute of its
# object whenever the attribute is not None; the executor then reads it without the resolver
PRELOADED_ATTRIBUTE = "app.preloaded_attribute"
PLAN_CACHE_SIZE = 4096  # (type, selection shape) pairs; a few per distinct query text
COLLECTED_CACHE_SIZE = 4096  # sub-selections of documents without directives
# execute_fields lets the event loop run other requests every this many objects (a ms or so of
# work) when it completes introspection's (never the schema's own: a pause would split the
# batches of their DataLoaders); a small selection never gets there
YIELD_EVERY = 50
INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
INTROSPECTED_SIZE = 32  # completed `__schema`/`__type` answers kept (CompiledExecutionContext)
# introspection_key -> (completed value, its answer bytes, the schema it is of: kept alive, so
# that the id in the key stays its own)
_introspected: OrderedDict[tuple[Any, ...], tuple[Any, int, Any]] = OrderedDict()


class Step(NamedTuple):
    """How one response key of a selection completes."""

    key: str
    kind: int
    attr: str  # the Python attribute (basic fields)
    coerce: Callable[[Any], Any] | None  # the leaf type's output coercion
    guard: bool  # LEAF: the coercion may let an exception (as a value) through
    exact: type | None  # LEAF: a value of exactly this type is its own output (String, ID…)
    non_null: bool  # the field (LEAF, OBJECT) or its items (the lists) are non-null
    list_non_null: bool  # the lists: the list itself is non-null
    field_type: GraphQLOutputType | None
    item_type: GraphQLOutputType | None  # the lists: the type of an item
    object_type: GraphQLObjectType | None
    # the answer's bytes (app/graphql/answer_size.py): what the key and a leaf's value add at
    # least, and (LEAF) the function that measures the rest of the value, None when that is all
    size: int = 0
    measure: Measure | None = None


Planned = tuple[
    str, int, str, type | None, Callable[[Any], Any] | None, bool, bool, Step, FieldDetailsList
]
"""A step with what the loop reads first unpacked (key, kind, attr, exact, coerce, non_null,
guard), the step itself, and this request's field details of its key."""

# graphql-core's coercion of these returns a value of exactly this type unchanged (not so for
# Int and Float, which check the range and finiteness)
IDENTITY: dict[GraphQLNamedType, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}

Shape = tuple[tuple[str, str, bool], ...]
"""What a step depends on, per response key: the key, the field name, and whether any of its
nodes has arguments or directives."""


class Slow(Exception):  # a signal, not an error (hence no "Error" suffix)
    """The value does not fit the fast path; graphql-core completes the field instead."""


def basic_attribute(parent_type: GraphQLObjectType, name: str) -> str | None:
    """The Python attribute behind a Strawberry basic field without arguments, else None."""
    field = parent_type.fields.get(name)
    if field is None or field.args or not getattr(field.resolve, "_is_default", False):
        return None
    definition = field.extensions.get("strawberry-definition")
    if (
        definition is None
        or not definition.is_basic_field
        or definition.default_resolver is not getattr
    ):
        return None
    python_name: str = definition.python_name
    return python_name


def special(fields: FieldDetailsList) -> bool:
    if len(fields) == 1:
        node = fields[0].node
        return bool(node.arguments or node.directives)
    return any(f.node.arguments or f.node.directives for f in fields)


def shape_of(grouped: GroupedFieldSet) -> Shape:
    return tuple(
        (key, fields[0].node.name.value, special(fields)) for key, fields in grouped.items()
    )


@lru_cache(maxsize=PLAN_CACHE_SIZE)
def steps_for(parent_type: GraphQLObjectType, shape: Shape) -> tuple[Step, ...]:
    """The steps of a selection of this shape on this type, worked out once (bounded cache:
    the types live as long as their schema, the shapes are small tuples of strings)."""
    return tuple(step(parent_type, key, name, special) for key, name, special in shape)


@lru_cache(maxsize=PLAN_CACHE_SIZE)
def list_step(list_type: GraphQLList[GraphQLOutputType]) -> Step | None:
    """The step of a list of objects a resolver returns; None for other lists."""
    item_type = list_type.of_type
    item = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
    if not is_object_type(item) or item.is_type_of is not None:
        return None
    non_null = is_non_null_type(item_type)
    return Step("", OBJECT_LIST, "", None, False, None, non_null, False, list_type, item_type, item)


def preloaded_attribute(parent_type: GraphQLObjectType, name: str) -> str | None:
    """The attribute a resolver field without arguments declares it answers (its metadata)."""
    field = parent_type.fields.get(name)
    definition = field.extensions.get("strawberry-definition") if field else None
    if field is None or field.args or definition is None:
        return None
    attribute: str | None = (definition.metadata or {}).get(PRELOADED_ATTRIBUTE)
    return attribute


def step(parent_type: GraphQLObjectType, key: str, name: str, special: bool) -> Step:
    size = len(key) + KEY_OVERHEAD
    other = Step(key, OTHER, "", None, False, None, False, False, None, None, None, size)
    if name == "__typename":
        return other._replace(kind=TYPENAME, size=size + len(parent_type.name) + 2)
    if special:
        return other
    attr = basic_attribute(parent_type, name)
    if attr is None:
        preloaded = preloaded_attribute(parent_type, name)
        if preloaded is None:
            return other
        listed = step_of_type(other._replace(attr=preloaded), parent_type.fields[name].type)
        return listed._replace(kind=PRELOADED) if listed.kind == OBJECT_LIST else other
    return step_of_type(other._replace(attr=attr), parent_type.fields[name].type)


def step_of_type(other: Step, field_type: GraphQLOutputType) -> Step:
    """The step that completes a value of this type read from `other.attr`."""
    non_null = is_non_null_type(field_type)
    inner = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    base = other._replace(non_null=non_null, field_type=field_type)
    if is_leaf_type(inner):
        # Every scalar leaf, built-in ones included, checks for an exception as its value
        # (graphql-core raises such a value itself; a built-in coercion would name it instead).
        # An exemption for the built-ins compared types with the names of
        # `specified_scalar_types` (a mapping in graphql-core 3.3) and never matched, so the
        # guard was always on for them: that is what the differential tests compare against.
        guard = not is_enum_type(inner)
        constant, measure = leaf_size(inner)
        return base._replace(
            kind=LEAF,
            coerce=inner.coerce_output_value,
            guard=guard,
            exact=IDENTITY.get(inner),
            size=base.size + constant,
            measure=measure,
        )
    if is_object_type(inner) and inner.is_type_of is None:
        return base._replace(kind=OBJECT, object_type=inner)
    if is_list_type(inner):
        item_type = inner.of_type
        item = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        base = base._replace(
            non_null=is_non_null_type(item_type), list_non_null=non_null, item_type=item_type
        )
        if is_leaf_type(item):
            guard = not is_enum_type(item)
            base = base._replace(size=base.size + OBJECT_OVERHEAD)
            return base._replace(kind=LEAF_LIST, coerce=item.coerce_output_value, guard=guard)
        if is_object_type(item) and item.is_type_of is None:
            return base._replace(kind=OBJECT_LIST, object_type=item)
    return other


def make_plan(parent_type: GraphQLObjectType, grouped: GroupedFieldSet) -> list[Planned]:
    steps = steps_for(parent_type, shape_of(grouped))
    return [
        (s.key, s.kind, s.attr, s.exact, s.coerce, s.non_null, s.guard, s, fields)
        for s, fields in zip(steps, grouped.values(), strict=True)
    ]


Compiled = Callable[[Any, Any, Any, GraphQLObjectType], Any]
_compiled_count = itertools.count(1)  # names each compiled plan apart (for profiles)


def _coercion(i: int, non_null: bool, guard: bool) -> list[str]:
    """The lines that coerce leaf `v{i}` (a type whose output is not its own value)."""
    body = [f"if isinstance(v{i}, Exception): raise Slow"] if guard else []
    body += [
        "try:",
        f"    v{i} = C{i}(v{i})",
        "except Exception:",
        "    raise Slow from None",
        f"if v{i} is None or v{i} is Undefined: raise Slow",
    ]
    if non_null:
        return [f"if v{i} is None: raise Slow", *body]
    return [f"if v{i} is not None:", *("    " + line for line in body)]


Nested = tuple[GroupedFieldSet, "Compiled", GraphQLObjectType]


def _measured(i: int, s: Step, names: dict[str, Any]) -> list[str]:
    """The expression that measures leaf `v{i}` for the answer's bytes (none: its constant
    is all); a string's length inline."""
    if s.measure is None:
        return []
    if s.measure is string_size:
        return [f"len(v{i})" if s.non_null else f"(2 if v{i} is None else len(v{i}))"]
    names[f"M{i}"] = s.measure
    return [f"M{i}(v{i})"]


def _nested_object(i: int, key: str) -> list[str]:
    """The lines that complete object field `v{i}` with the compiled plan of its selection
    (N{i}: `complete_object` of an OBJECT step, inlined): a value that does not fit goes the
    step's own way, an error is the field's error."""
    return [
        f"o{i} = source.S{i}_attr",
        f"if o{i} is None or isinstance(o{i}, Exception):",
        f"    v{i} = self.step(S{i}, F{i}, parent_type, source, path)",
        "else:",
        f"    p{i} = Path(path, {key!r}, parent_type.name)",
        "    try:",
        "        try:",
        f"            v{i} = N{i}(self, o{i}, p{i}, T{i})",
        "        except Slow:",
        f"            v{i} = self.execute_fields(T{i}, o{i}, p{i}, G{i}, None)",
        "    except Exception as error:",
        f"        self.handle_field_error(error, S{i}.field_type, F{i}, p{i})",
        f"        v{i} = None",
        "    else:",
        f"        if self.is_awaitable(v{i}):",
        f"            v{i} = self.await_value(v{i}, S{i}.field_type, F{i}, p{i})",
    ]


def compile_plan(planned: list[Planned], nested: dict[int, Nested] | None = None) -> Compiled:
    """One Python function for a plan that is used again and again (a selection of a cached
    document): the leaves read, checked and coerced in straight-line code, then the other
    fields in key order, the response dict built at once. A leaf that does not fit raises Slow
    before any other field runs, and `execute_fields`' loop completes the object instead."""
    names: dict[str, Any] = {"Slow": Slow, "Undefined": Undefined, "Path": Path}
    nested = nested or {}
    leaves: list[str] = []
    others: list[str] = []
    later: list[tuple[str, int]] = []  # (key, index) of the fields that may be awaitable
    removable: list[str] = []
    size = OBJECT_OVERHEAD  # the answer's bytes (app/graphql/answer_size.py): the constant part
    measured: list[str] = []  # and what is measured per object
    for i, (key, kind, attr, exact, coerce, non_null, guard, step_, fields) in enumerate(planned):
        names[f"S{i}"], names[f"F{i}"] = step_, fields
        size += step_.size
        if kind == LEAF:
            measured += _measured(i, step_, names)
            leaves.append(f"v{i} = source.{attr}")
            if exact is not None:
                names[f"E{i}"] = exact
                test = f"type(v{i}) is not E{i}"
                test = test if non_null else f"v{i} is not None and {test}"
                leaves.append(f"if {test}: raise Slow")
            else:
                names[f"C{i}"] = coerce
                leaves += _coercion(i, non_null, guard)
        elif kind == LEAF_LIST:
            leaves.append(f"v{i} = self.leaf_list(S{i}, source.{attr})")
        elif kind == TYPENAME:
            leaves.append(f"v{i} = parent_type.name")
        elif i in nested:
            names[f"G{i}"], names[f"N{i}"], names[f"T{i}"] = nested[i]
            others += [line.replace(f"S{i}_attr", attr) for line in _nested_object(i, key)]
            later.append((key, i))
        else:
            others.append(f"v{i} = self.step(S{i}, F{i}, parent_type, source, path)")
            later.append((key, i))
            if kind == OTHER:
                removable.append(f"if v{i} is Undefined: del r[{key!r}]")
    body = [*leaves, f"size = self.size = self.size + {' + '.join([str(size), *measured])}"]
    body.append("if size > self.max_size: self.too_large()")
    if others:
        evaluated = ", ".join(f"v{i}" for _, i in later)
        body.append(" = ".join(f"v{i}" for _, i in later) + " = None")
        body += ["try:", *("    " + line for line in others), "except Exception:"]
        body += [f"    self.settle_awaitables(({evaluated},))", "    raise"]
    items = ", ".join(f"{key!r}: v{i}" for i, (key, *_) in enumerate(planned))
    body += [f"r = {{{items}}}", *removable]
    if later:
        pairs = ", ".join(f"({key!r}, v{i})" for key, i in later)
        body += [
            "aw = self.is_awaitable",
            f"pending = [k for k, x in ({pairs},) if aw(x)]",
            "if pending:",
            "    return self.gather_fields(r, pending)",
        ]
    body.append("return r")
    text = "def run(self, source, path, parent_type):\n" + "\n".join("    " + b for b in body)
    label = f"<compiled plan {next(_compiled_count)}: {', '.join(k for k, *_ in planned)[:60]}>"
    exec(compile(text, label, "exec"), names)  # noqa: S102  (our own text)
    run: Compiled = names.pop("run")  # no cycle (function -> its globals -> function)
    return run


def items_fit(s: Step, value: Any) -> bool:
    """Whether a list of objects can complete item by item here; checked before any item runs,
    so that nothing runs twice when graphql-core completes it instead."""
    if not isinstance(value, list | tuple):
        return False
    return not any((item is None and s.non_null) or isinstance(item, Exception) for item in value)


class StaticPlan:
    """The plan of a sub-selection of a document without directives, kept across requests;
    compiled to a function once it is used again (`compiled`, None until then)."""

    __slots__ = ("compiled", "grouped", "planned", "uses")

    def __init__(self, grouped: GroupedFieldSet, planned: list[Planned]) -> None:
        self.grouped = grouped  # kept alive, so that its id stays its own
        self.planned = planned
        self.compiled: Compiled | None = None
        self.uses = 0


CollectedKey = tuple[GraphQLObjectType, tuple[int, ...]]
# For documents without directives, where collecting sub-fields depends on nothing but the
# nodes (no @skip/@include, no @defer, no fragment variables), across requests:
# (return type, ids of the field nodes) -> (the nodes, kept alive so that their ids stay
# theirs; what graphql-core collected), and the id of such a collected field set -> (the set,
# kept alive; its plan).
_collected: OrderedDict[CollectedKey, tuple[tuple[Any, ...], CollectedFields]] = OrderedDict()
_static_plans: dict[int, StaticPlan] = {}
COMPILE_AT = 2  # a plan is compiled at its second use: one-off documents never pay for it


async def settled(executor: Executor[Any]) -> None:
    """Once an operation has stopped (its answer too large): until the fields it left pending
    (settled in the background, graphql-core's way) have ended. They end at their first write,
    the count being past the bound; then nothing of the request runs after its answer."""
    while pending := [f for f in executor.background_futures if not f.done()]:
        await gather(*pending, return_exceptions=True)


class CompiledExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with the fast path above for basic fields."""

    def __init__(
        self, *args: Any, static_selections: bool = False, pausable: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._static = static_selections
        # whether execute_fields may pause (an operation the engine runs in the event loop; not
        # one run synchronously, such as Strawberry's own introspection of the schema)
        self.pausable = pausable
        manager = self.middleware_manager
        self._compiled = manager is None or not manager.middlewares
        # per request: id(grouped field set) -> (that set, kept alive so the id stays its own; plan)
        self._plans: dict[int, tuple[Any, ...]] = {}
        # the answer's bytes so far, and their bound (app/graphql/answer_size.py)
        self.size = 0
        self.objects = 0  # objects completed by execute_fields since the last pause
        self.field_errors = 0  # errors recorded (an introspection answer with one is not kept)
        self._fragments_printed: str | None = None  # (introspection_key)
        # introspection fields being completed (they paused), by key: for their aliases
        self._introspecting: dict[tuple[Any, ...], Future[Any]] = {}
        settings = getattr(self.context_value, "settings", None)
        self.max_size: int = getattr(
            settings, "graphql_max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES
        )

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        if path.prev is None and field_details_list[0].node.name.value in INTROSPECTION_ROOTS:
            return self.introspect(parent_type, source, field_details_list, path)
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def introspect(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        """`__schema` or `__type` at the root: what it answers depends only on the schema (fixed
        for the life of the process), its selection, its arguments and the fragments, so it is
        completed once and kept (a small LRU across requests): its aliases and repeats, even in
        documents that differ elsewhere, cost a look-up (docs/graphql-bounds.md)."""
        key = self.introspection_key(field_details_list)
        if key is None:
            return super().execute_field(parent_type, source, field_details_list, path, None)
        found = _introspected.get(key)
        if found is not None and found[2] is self.schema:
            _introspected.move_to_end(key)
            size = self.size = self.size + found[1]
            if size > self.max_size:
                self.too_large()
            return found[0]
        running = self._introspecting.get(key)
        if running is not None:  # an alias of one being completed (it paused): its answer
            return self.alias_of(running, parent_type, source, field_details_list, path)
        errors = self.field_errors
        value = super().execute_field(parent_type, source, field_details_list, path, None)
        if self.is_awaitable(value):  # it paused on the way (execute_fields)
            done: Future[Any] = get_running_loop().create_future()
            self._introspecting[key] = done
            return self.keep_introspected(key, value, errors, done)
        if value is not Undefined and self.field_errors == errors:
            self.keep(key, value)
        return value

    async def keep_introspected(
        self, key: tuple[Any, ...], value: Any, errors: int, done: Future[Any]
    ) -> Any:
        """An introspection answer that paused on its way: kept once complete (unless an error
        was recorded meanwhile, its own or another field's), and handed to its aliases (`done`
        holds None when they must complete their own)."""
        completed: Any = None
        try:
            answered = await value
            if self.field_errors == errors:
                completed = answered
                self.keep(key, completed)
            return answered
        finally:
            del self._introspecting[key]
            done.set_result(completed)

    async def alias_of(
        self,
        running: Future[Any],
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        """The answer of the same introspection field under another alias, once complete."""
        completed = await running
        if completed is None:  # it failed, or recorded an error: this alias completes its own
            value = super().execute_field(parent_type, source, field_details_list, path, None)
            return await value if self.is_awaitable(value) else value
        size = self.size = self.size + value_size(completed)
        if size > self.max_size:
            self.too_large()
        return completed

    def keep(self, key: tuple[Any, ...], value: Any) -> None:
        """Keeps a completed introspection answer with its size (its JSON's: other fields may
        have been counted meanwhile)."""
        _introspected[key] = (value, value_size(value), self.schema)
        if len(_introspected) > INTROSPECTED_SIZE:
            _introspected.popitem(last=False)

    def introspection_key(self, fields: FieldDetailsList) -> tuple[Any, ...] | None:
        """What an introspection field's answer depends on (its alias aside), or None."""
        if any(f.fragment_variable_values for f in fields):
            return None
        try:
            coerced = getattr(self.variable_values, "coerced", self.variable_values)
            variables = orjson.dumps(coerced, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        if self._fragments_printed is None:
            printed = (print_ast(d) for d in self.fragment_definitions.values())
            self._fragments_printed = "\n".join(sorted(printed))
        nodes = tuple(
            (
                f.node.name.value,
                tuple(print_ast(a) for a in f.node.arguments or ()),
                tuple(print_ast(d) for d in f.node.directives or ()),
                print_ast(f.node.selection_set) if f.node.selection_set else "",
            )
            for f in fields
        )
        return id(self.schema), nodes, self._fragments_printed, variables

    def too_large(self) -> None:
        """Stops the operation: its answer passed the bound."""
        raise ResponseTooLarge(self.max_size)

    def build_per_event_executor(self, payload: Any) -> Any:
        """A subscription's event: an answer of its own, counted from nothing."""
        executor = super().build_per_event_executor(payload)
        # mypy ignore below: graphql-core types the copy as its base class
        executor.size = 0  # type: ignore[attr-defined]
        return executor

    def handle_field_error(
        self,
        raw_error: Exception,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> None:
        """graphql-core's, except that an answer too large stops the whole operation (never a
        field's error); an error recorded counts in the answer's bytes."""
        if isinstance(raw_error, ResponseTooLarge):
            raise raw_error
        original = getattr(raw_error, "original_error", None)
        if isinstance(original, ResponseTooLarge):
            raise original
        refusal = raw_error if isinstance(raw_error, InsufficientScope) else original
        if isinstance(refusal, InsufficientScope):  # its audit entry, once the operation ends
            denied = getattr(self.context_value, "denied", None)
            if denied is not None:
                denied.append(refusal)
        super().handle_field_error(raw_error, return_type, field_details_list, path)
        self.field_errors += 1
        size = self.size = self.size + len(str(raw_error)) + ERROR_OVERHEAD
        if size > self.max_size:
            self.too_large()

    # mypy ignore below: graphql-core's is a static method; this one counts, so it needs `self`
    def complete_leaf_value(self, return_type: Any, result: Any) -> Any:  # type: ignore[override]
        """graphql-core's (a leaf off the fast path, a list's item), counted."""
        completed = super().complete_leaf_value(return_type, result)
        size = self.size = self.size + value_size(completed)
        if size > self.max_size:
            self.too_large()
        return completed

    def collect_subfields(
        self, return_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> CollectedFields:
        """graphql-core's per-request memo, and across requests for a document without
        directives (`static_selections`, decided once per document by the engine): the same
        nodes of a cached document then always collect the same sub-fields."""
        if not self._static:
            return super().collect_subfields(return_type, field_details_list)
        memo = self._relevant_sub_fields  # graphql-core's per-request memo: each item of a list
        seen = memo.get((return_type, id(field_details_list)))
        if seen is not None:
            return seen[1]
        nodes = tuple(f.node for f in field_details_list)
        key = (return_type, tuple(map(id, nodes)))
        found = _collected.get(key)
        if found is not None:
            memo[(return_type, id(field_details_list))] = (field_details_list, found[1])
            return found[1]
        collected = super().collect_subfields(return_type, field_details_list)
        grouped = collected.grouped_field_set
        if len(_collected) >= COLLECTED_CACHE_SIZE:
            _, (_, evicted) = _collected.popitem(last=False)
            _static_plans.pop(id(evicted.grouped_field_set), None)
        _collected[key] = (nodes, collected)
        _static_plans[id(grouped)] = StaticPlan(grouped, make_plan(return_type, grouped))
        return collected

    def compiled(self, grouped: GroupedFieldSet, uses: int = 1) -> Compiled | None:
        """The compiled plan of a static selection: None for other selections, and for a
        static one until its second use (it is compiled then, with its nested objects');
        `uses`: how many objects are about to use it (the items of a list)."""
        static = _static_plans.get(id(grouped))
        if static is None:
            return None
        if static.compiled is None:
            static.uses += uses
            if static.uses < COMPILE_AT:
                return None
            static.compiled = compile_plan(static.planned, self.nested(static.planned))
        return static.compiled

    def nested(self, planned: list[Planned]) -> dict[int, Nested]:
        """For each object field of a plan about to be compiled, the compiled plan of its own
        selection (compiled now too)."""
        found: dict[int, Nested] = {}
        for i, (_, kind, *_, s, fields) in enumerate(planned):
            if kind != OBJECT:
                continue
            # mypy ignore below: OBJECT steps always hold their type
            object_type: GraphQLObjectType = s.object_type  # type: ignore[assignment]
            grouped, defer_usages, _ = self.collect_subfields(object_type, fields)
            static = _static_plans.get(id(grouped))
            if static is None or defer_usages:
                continue
            if static.compiled is None:
                static.compiled = compile_plan(static.planned, self.nested(static.planned))
            found[i] = (grouped, static.compiled, object_type)
        return found

    def plan(self, parent_type: GraphQLObjectType, grouped: GroupedFieldSet) -> list[Planned]:
        key = id(grouped)  # a collected set is collected for one type: its plan is for that type
        static = _static_plans.get(key)
        if static is not None:
            return static.planned
        found = self._plans.get(key)
        if found is not None:
            # mypy ignore below: the memo holds graphql-core's collected fields
            return found[1]  # type: ignore[no-any-return]
        planned = make_plan(parent_type, grouped)
        self._plans[key] = (grouped, planned)
        return planned

    def step(
        self,
        s: Step,
        fields: FieldDetailsList,
        parent_type: GraphQLObjectType,
        source: Any,
        path: Path | None,
    ) -> Any:
        """A field other than a leaf: the fast way, else graphql-core's."""
        try:
            return self.fast(s, fields, parent_type, source, path)
        except Slow:
            return self.slow(s, fields, parent_type, source, path)

    def settle_awaitables(self, values: tuple[Any, ...]) -> None:
        awaitables = [v for v in values if self.is_awaitable(v)]
        if awaitables:
            self.settle_in_background(awaitables)

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        objects = self.objects = self.objects + 1
        if objects >= YIELD_EVERY and self.pausable and parent_type.name.startswith("__"):
            self.objects = 0  # a long introspection lets the other requests run now and then
            return self.after_a_pause(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        if not self._compiled or position_context is not None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        compiled = self.compiled(grouped_field_set)
        if compiled is not None:
            try:
                answered: dict[str, Any] = compiled(self, source_value, path, parent_type)
                return answered
            except Slow:
                pass  # a leaf that does not fit: the loop below completes the object
        results: dict[str, Any] = {}
        pending: list[str] = []
        is_awaitable = self.is_awaitable
        size = OBJECT_OVERHEAD  # the answer's bytes of this object's keys and leaves
        try:
            for key, kind, attr, exact, coerce, non_null, guard, s, fields in self.plan(
                parent_type, grouped_field_set
            ):
                size += s.size
                if kind == LEAF:  # most fields: inline, no call but the coercion
                    value = getattr(source_value, attr)
                    if type(value) is exact or (value is None and not non_null):
                        results[key] = value
                        if s.measure is not None:
                            size += s.measure(value)
                        continue
                    if value is not None and not (guard and isinstance(value, Exception)):
                        try:
                            # mypy ignore below: graphql-core's coercion is typed loosely
                            coerced = coerce(value)  # type: ignore[misc]
                        except Exception:  # noqa: BLE001  (a leaf that does not coerce: the slow path reports it)
                            coerced = None
                        if coerced is not None and coerced is not Undefined:
                            results[key] = coerced
                            if s.measure is not None:
                                size += s.measure(coerced)
                            continue
                    # (its value counts in `complete_leaf_value`)
                    result = self.slow(s, fields, parent_type, source_value, path)
                else:
                    result = self.step(s, fields, parent_type, source_value, path)
                if result is Undefined:
                    continue
                results[key] = result
                if kind >= OBJECT and is_awaitable(result):
                    pending.append(key)
            size = self.size = self.size + size
            if size > self.max_size:
                self.too_large()
        except Exception:
            if pending:
                self.settle_in_background([results[key] for key in pending])
            raise
        if not pending:
            return results
        return self.gather_fields(results, pending)

    async def after_a_pause(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> dict[str, Any]:
        """`execute_fields` once the event loop has run what else is ready."""
        await sleep(0)
        completed = self.execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )
        if self.is_awaitable(completed):
            # mypy ignore below: an awaitable `execute_fields` result awaits to the dict
            return await completed  # type: ignore[no-any-return]
        # mypy ignore below: not awaitable, so the dict itself
        return completed  # type: ignore[return-value]

    def slow(
        self,
        s: Step,
        fields: FieldDetailsList,
        parent_type: GraphQLObjectType,
        source: Any,
        path: Path | None,
    ) -> Any:
        """graphql-core's own execution of the field (a resolver, or a value that does not fit
        the fast path); Undefined when the field does not exist on the type."""
        return self.execute_field(
            parent_type, source, fields, Path(path, s.key, parent_type.name), None
        )

    def fast(
        self,
        s: Step,
        fields: FieldDetailsList,
        parent_type: GraphQLObjectType,
        source: Any,
        path: Path | None,
    ) -> Any:
        """The completed value of a step other than LEAF, or Slow when graphql-core must
        complete it."""
        kind = s.kind
        if kind == LEAF_LIST:
            return self.leaf_list(s, getattr(source, s.attr))
        if kind == OBJECT:
            value = getattr(source, s.attr)
            if value is None:
                if s.non_null:
                    raise Slow
                return None
            if isinstance(value, Exception):
                raise Slow
            return self.complete_object(s, fields, value, Path(path, s.key, parent_type.name))
        if kind == OBJECT_LIST:
            value = getattr(source, s.attr)
            if value is None:
                if s.list_non_null:
                    raise Slow
                return None
            if not items_fit(s, value):
                raise Slow
            return self.complete_object(s, fields, value, Path(path, s.key, parent_type.name))
        if kind == PRELOADED:  # the resolver's value, when the object already holds it
            value = getattr(source, s.attr)
            if value is None or not items_fit(s, value):
                raise Slow
            return self.complete_object(s, fields, value, Path(path, s.key, parent_type.name))
        if kind == TYPENAME:
            return parent_type.name
        raise Slow

    @staticmethod
    async def gather_fields(results: dict[str, Any], pending: list[str]) -> dict[str, Any]:
        """What graphql-core's `execute_fields` does with the fields that are awaitable: await
        them together (so DataLoaders batch), each handling its own field's errors."""
        if len(pending) == 1:
            results[pending[0]] = await results[pending[0]]
        else:
            values = await gather_with_cancel(*(results[key] for key in pending))
            results.update(zip(pending, values, strict=True))
        return results

    def leaf_list(self, s: Step, value: Any) -> list[Any] | None:
        if value is None:
            if s.list_non_null:
                raise Slow
            return None
        if not isinstance(value, list | tuple):
            raise Slow
        coerce = s.coerce
        out: list[Any] = []
        for item in value:
            if item is None:
                if s.non_null:
                    raise Slow
                out.append(None)
                continue
            if s.guard and isinstance(item, Exception):
                raise Slow
            try:
                # mypy ignore below: graphql-core's coercion is typed loosely
                coerced = coerce(item)  # type: ignore[misc]
            except Exception:  # noqa: BLE001  (as above: the slow path reports it)
                raise Slow from None
            if coerced is None or coerced is Undefined:
                raise Slow
            out.append(coerced)
        self.size += sum(map(value_size, out)) + len(out)  # (the plan checks the bound)
        return out

    def subfields(
        self, s: Step, fields: FieldDetailsList, path: Path, value: Any
    ) -> AwaitableOrValue[dict[str, Any]]:
        """`collect_and_execute_subfields`, straight to `execute_fields` without `@defer`."""
        # mypy ignore below: OBJECT steps always hold their type
        object_type: GraphQLObjectType = s.object_type  # type: ignore[assignment]
        grouped, defer_usages, _ = self.collect_subfields(object_type, fields)
        if defer_usages:
            return self.execute_collected_subfields(
                object_type, value, path, grouped, defer_usages, None
            )
        return self.execute_fields(object_type, value, path, grouped, None)

    def complete_object(self, s: Step, fields: FieldDetailsList, value: Any, path: Path) -> Any:
        """An object-typed basic field (OBJECT: its sub-selection; OBJECT_LIST: each item's),
        with `execute_field`'s error handling (null propagation, or the error recorded and the
        field null)."""
        completed: Any
        try:
            if s.kind == OBJECT:
                completed = self.subfields(s, fields, path, value)
            else:
                completed = self.items_of(s, fields, value, path)
        except Exception as raw_error:  # noqa: BLE001  (graphql-core's execute_field handling)
            # mypy ignore below: graphql-core types these with the field's own type
            self.handle_field_error(raw_error, s.field_type, fields, path)  # type: ignore[arg-type]
            return None
        if self.is_awaitable(completed):
            # mypy ignore below: graphql-core types these with the field's own type
            return self.await_value(completed, s.field_type, fields, path)  # type: ignore[arg-type]
        return completed

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[list[Any]]:
        """A list of objects that a resolver returned (such as an assistant's integrations)
        completes item by item here too; anything else as graphql-core does."""
        s = list_step(return_type)
        if (
            s is None
            or not self._compiled
            or position_context is not None
            or any(f.node.directives for f in field_details_list)  # @stream
            or not items_fit(s, result)
        ):
            return super().complete_list_value(
                return_type, field_details_list, info, path, result, position_context
            )
        return self.items_of(s, field_details_list, result, path)

    def items_of(
        self, s: Step, fields: FieldDetailsList, value: list[Any] | tuple[Any, ...], path: Path
    ) -> AwaitableOrValue[list[Any]]:
        """Item by item as `complete_list_value` does: an item's error nulls the item, or (for
        non-null items) goes up to the list's field."""
        items: list[Any] = []
        pending: list[int] = []
        self.size += OBJECT_OVERHEAD + len(value)  # `[]` and the commas (each item counts itself)
        # mypy ignore below: OBJECT steps always hold their type
        object_type: GraphQLObjectType = s.object_type  # type: ignore[assignment]
        grouped, defer_usages, _ = self.collect_subfields(object_type, fields)
        compiled = None if defer_usages else self.compiled(grouped, len(value))
        try:
            for index, item in enumerate(value):
                if item is None:
                    items.append(None)
                    continue
                item_path = Path(path, index, None)
                try:
                    if compiled is None:
                        completed = self.subfields(s, fields, item_path, item)
                    else:  # every item has the same compiled plan: straight to it
                        try:
                            completed = compiled(self, item, item_path, object_type)
                        except Slow:
                            completed = self.execute_fields(
                                object_type, item, item_path, grouped, None
                            )
                except Exception as raw_error:  # noqa: BLE001  (graphql-core's execute_field handling)
                    # mypy ignore below: graphql-core types these with the field's own type
                    self.handle_field_error(raw_error, s.item_type, fields, item_path)  # type: ignore[arg-type]
                    completed = None
                if self.is_awaitable(completed):
                    # mypy ignore below: graphql-core types these with the field's own type
                    completed = self.await_value(completed, s.item_type, fields, item_path)  # type: ignore[arg-type]
                    pending.append(index)
                items.append(completed)
        except Exception:
            if pending:
                self.settle_in_background([items[i] for i in pending])
            raise
        if pending:
            return self.gather_items(items, pending)
        return items

    @staticmethod
    async def gather_items(items: list[Any], pending: list[int]) -> list[Any]:
        values = await gather_with_cancel(*(items[i] for i in pending))
        for i, v in zip(pending, values, strict=True):
            items[i] = v
        return items

    async def await_value(
        self, completed: Any, field_type: GraphQLOutputType, fields: FieldDetailsList, path: Path
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:  # noqa: BLE001  (graphql-core's execute_field handling)
            self.handle_field_error(raw_error, field_type, fields, path)
            return None
