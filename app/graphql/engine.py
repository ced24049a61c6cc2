"""GraphQL over HTTP: one compiled pipeline per document text.

The first time a document text is seen it is parsed (with the token limit), validated (with
graphql-core's rules, Strawberry's input rules and the limits of docs/protection.md), its
operations and fragments are indexed and each operation's cost is worked out (app/graphql/cost.py:
a constant, or a small formula over the variables that set page sizes); the outcome, including
the coded errors of a document that fails, is kept in a bounded cache keyed by the text. A
request then only picks the operation, finishes its cost (a lookup, or a few multiplications),
refuses it above GRAPHQL_MAX_COST, spends its points, coerces its variables, runs the resolvers
(CompiledExecutionContext) and codes the errors of that run; nothing per request is made for
extensions or hooks.

Strawberry stays the schema and the way types, inputs and resolvers are written: the executor
is Strawberry's own (so `Info`, `Maybe` and argument conversion are Strawberry's), and the
websocket path still runs through `Schema.subscribe`/`execute` with the same rules as
extensions. `tests/graphql/test_engine.py` compares whole answers, errors included, with
Strawberry's `Schema.execute`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    parse,
    specified_rules,
)
from graphql.execution import Executor
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import validate_document
from strawberry.types.graphql import OperationType
from strawberry.utils.await_maybe import await_maybe

from app.graphql.answer_size import ResponseTooLarge
from app.graphql.cost import NO_COST, Cost, operation_costs
from app.graphql.errors import code_error, domain_extensions, domain_message
from app.graphql.execution import CompiledExecutionContext, settled
from app.graphql.extensions import OperationNameRequired, strip_suggestions
from app.graphql.limits import (
    NoSubgraphSdl,
    document_too_long,
    parse_limit_error,
    settings_limits_rule,
)
from app.graphql.points import Spending
from app.http.fairshare import FairShares
from app.observability import metrics, tracing
from app.settings import Settings

DOCUMENT_CACHE_SIZE = 1024
INTROSPECTION_CACHE_SIZE = 8  # answers of introspection-only operations (docs/graphql-bounds.md)
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
PARSE, VALIDATION, EXECUTION = "parse", "validation", "execution"
# what each HTTP method may run; subscriptions run over the websocket only
ALLOWED = {
    "GET": frozenset({OperationType.QUERY}),
    "POST": frozenset({OperationType.QUERY, OperationType.MUTATION}),
}


class RequestError(Exception):
    """The request cannot run at all: HTTP 400 `BAD_REQUEST`, nothing runs."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a document, with its cost (and its refusal when that cost is a
    constant above GRAPHQL_MAX_COST)."""

    node: OperationDefinitionNode
    cost: Cost
    refusal: dict[str, Any] | None = None
    introspective: bool = False  # a query of `__schema`/`__type` (and `__typename`) only


@dataclass(frozen=True, slots=True)
class Prepared:
    """What one document text comes to, worked out once."""

    document: DocumentNode | None
    errors: tuple[dict[str, Any], ...]  # coded, formatted: a document that does not parse/validate
    operations: Mapping[str, Operation]  # named operations
    first: Operation | None
    several: bool  # more than one operation: `operationName` is required
    static: bool  # no directive anywhere: its selections collect the same on every request


class Engine:
    """Runs GraphQL requests of one schema with the app's settings."""

    def __init__(self, schema: Any, settings: Settings) -> None:
        self.schema: GraphQLSchema = schema._schema  # noqa: SLF001  (Strawberry's graphql-core schema)
        self.settings = settings
        self.hide_suggestions = not settings.graphql_introspection
        self.max_cost = settings.graphql_max_cost
        # operations of FAIR_HEAVY_COST or more take turns per tenant (set by the view)
        self.fair: FairShares | None = None
        self.heavy_cost = settings.fair_heavy_cost
        rules: list[type[ASTValidationRule]] = [*specified_rules, settings_limits_rule(settings)]
        if not settings.graphql_introspection:
            rules += [NoSchemaIntrospectionCustomRule, NoSubgraphSdl]
        self.rules = tuple(rules)
        self._documents: OrderedDict[str, Prepared] = OrderedDict()
        # the same documents by SHA-256 (automatic persisted queries: app/graphql/persisted.py)
        self._hashed: OrderedDict[str, tuple[str, Prepared]] = OrderedDict()
        # the answers of introspection-only operations, by (text, operationName, variables):
        # the schema is fixed for the life of the process, so the same request answers the same
        self._introspected: OrderedDict[tuple[str, str | None, bytes], dict[str, Any]] = (
            OrderedDict()
        )
        self.metrics = metrics.active
        self.tracer = tracing.tracer
        if self.tracer is not None:
            # mypy ignore below: the traced run replaces the method once, at start-up
            self.run = self.traced_run  # type: ignore[method-assign]

    # -- once per document text ------------------------------------------------------------

    def prepare(self, text: str) -> Prepared:
        documents = self._documents
        prepared = documents.get(text)
        if prepared is not None:
            documents.move_to_end(text)
            return prepared
        refusal = document_too_long(text, self.settings.graphql_max_document_bytes)
        if refusal is not None:  # refused before it is parsed, and never kept
            return self._failed(GraphQLError(refusal), VALIDATION)
        prepared = self._prepare(text)
        documents[text] = prepared
        if len(documents) > DOCUMENT_CACHE_SIZE:
            documents.popitem(last=False)
        return prepared

    def by_hash(self, sha: str) -> tuple[str, Prepared] | None:
        """The text and Prepared of a document known by its SHA-256 (the text lookup's cost)."""
        hashed = self._hashed
        found = hashed.get(sha)
        if found is not None:
            hashed.move_to_end(sha)
        return found

    def remember(self, sha: str, text: str, prepared: Prepared) -> None:
        """Indexes a stored document by its SHA-256 (bounded like the text cache)."""
        hashed = self._hashed
        hashed[sha] = (text, prepared)
        if len(hashed) > DOCUMENT_CACHE_SIZE:
            hashed.popitem(last=False)

    def _prepare(self, text: str) -> Prepared:
        try:
            document = parse(text, max_tokens=self.settings.graphql_max_tokens)
        except GraphQLError as error:
            return self._failed(error, PARSE)
        except Exception as error:  # noqa: BLE001  (RecursionError on absurd nesting)
            return self._failed(GraphQLError(str(error), original_error=error), PARSE)
        nodes = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        errors = validate_document(self.schema, document, self.rules)
        coded = tuple(self._format(error, VALIDATION) for error in errors)
        # the cost of a valid document (an invalid one never runs)
        costs = [NO_COST] * len(nodes) if errors else operation_costs(self.schema, document, nodes)
        indexed = [self._operation(node, cost) for node, cost in zip(nodes, costs, strict=True)]
        operations: dict[str, Operation] = {}
        for operation in indexed:
            if operation.node.name is not None:
                operations.setdefault(operation.node.name.value, operation)
        first = indexed[0] if indexed else None  # the spec's (and Strawberry's) first operation
        return Prepared(document, coded, operations, first, len(nodes) > 1, "@" not in text)

    def _operation(self, node: OperationDefinitionNode, cost: Cost) -> Operation:
        constant = cost.constant
        if constant is not None and constant > self.max_cost:
            return Operation(node, cost, self.cost_refusal(constant, node))
        return Operation(node, cost, None, introspective(node))

    def cost_refusal(self, cost: int, node: OperationDefinitionNode) -> dict[str, Any]:
        """The validation error of an operation above GRAPHQL_MAX_COST."""
        name = f"'{node.name.value}'" if node.name else "the operation"
        message = (
            f"{name} costs {cost} (the list items its answer may hold); "
            f"at most {self.max_cost} are allowed"
        )
        extensions = {"code": "GRAPHQL_VALIDATION_FAILED", "cost": cost, "maxCost": self.max_cost}
        # mypy ignore below: graphql-core's formatted error is a TypedDict
        return GraphQLError(message, node, extensions=extensions).formatted  # type: ignore[return-value]

    def _failed(self, error: GraphQLError, phase: str) -> Prepared:
        return Prepared(None, (self._format(error, phase),), {}, None, False, False)

    def _format(self, error: GraphQLError, phase: str) -> dict[str, Any]:
        if phase == PARSE:
            parse_limit_error(error, self.settings.graphql_max_tokens)
        code_error(error, phase)
        if self.hide_suggestions:
            strip_suggestions(error)
        # mypy ignore below: graphql-core's formatted error is a TypedDict
        return error.formatted  # type: ignore[return-value]

    # -- once per request --------------------------------------------------------------------

    def operation(self, prepared: Prepared, operation_name: str | None, method: str) -> Operation:
        """The operation to run (the GraphQL spec's GetOperation), or RequestError."""
        operation = pick(prepared, operation_name)
        if operation is None:
            raise RequestError(CannotGetOperationTypeError(operation_name).as_http_error_reason())
        kind = OperationType(operation.node.operation.value)
        if kind not in ALLOWED[method]:
            raise RequestError(InvalidOperationTypeError(kind).as_http_error_reason(method))
        if prepared.several and operation_name is None:
            raise RequestError(OperationNameRequired().as_http_error_reason())
        return operation

    async def run(
        self,
        text: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
        method: str,
        spending: Spending,
        prepared: Prepared | None = None,
    ) -> dict[str, Any]:
        """The response body of one request (RequestError when it cannot run). Its points are
        spent just before it runs (RateLimited beyond the budget); `spending.requested` is
        its cost whenever that is known. `prepared` is the text's, when the caller has it (a
        persisted document). A request that fails before it runs (parse, validation, cost,
        variables) has no `data` in its body (the view adds `"data": null` for
        application/json)."""
        if prepared is None:
            prepared = self.prepare(text)
        if prepared.document is None:  # did not parse: nothing else is looked at
            return {"errors": list(prepared.errors)}
        operation = self.operation(prepared, operation_name, method)
        if prepared.errors:
            return {"errors": list(prepared.errors)}
        cost = spending.requested = operation.cost.of(variables)
        if cost > self.max_cost:
            refusal = operation.refusal or self.cost_refusal(cost, operation.node)
            return {"errors": [refusal]}
        executor = CompiledExecutionContext.build(
            self.schema,
            prepared.document,
            None,
            context,
            variables,
            operation.node.name.value if operation.node.name else None,
            # arg-type: graphql-core asks for a TypeGuard, Strawberry's predicate says bool
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
            hide_suggestions=self.hide_suggestions,
            static_selections=prepared.static,
            pausable=True,
        )
        if isinstance(executor, list):  # variables that do not coerce
            return {"errors": [self._format(e, EXECUTION) for e in executor]}
        if cost >= self.heavy_cost and self.fair is not None and context.request is not None:
            # an expensive operation waits for its tenant's turn (app/http/fairshare.py), then
            # spends its points (a refused one spends none)
            async with self.fair.turn(context.request.scope):
                await spending.charge(cost)
                return await self.execute_or_introspect(
                    executor, operation, text, variables, operation_name
                )
        await spending.charge(cost)
        if operation.introspective:
            return await self.introspect(executor, text, variables, operation_name)
        return await self.execute(executor)

    async def execute_or_introspect(
        self,
        executor: Executor[Any],
        operation: Operation,
        text: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
    ) -> dict[str, Any]:
        """The answer of an operation whose points are spent (`run`'s last step)."""
        if operation.introspective:
            return await self.introspect(executor, text, variables, operation_name)
        return await self.execute(executor)

    async def introspect(
        self,
        executor: Executor[Any],
        text: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
    ) -> dict[str, Any]:
        """The answer of an introspection-only operation: executed once per (text,
        operationName, variables) while it stays in a small LRU, its `data` then kept
        serialized (the same bytes each time, none of the executor's work)."""
        try:
            key = (text, operation_name, orjson.dumps(variables, option=orjson.OPT_SORT_KEYS))
        except TypeError:  # not JSON (a websocket's or a test's odd value): no cache
            return await self.execute(executor)
        answers = self._introspected
        cached = answers.get(key)
        if cached is not None:
            answers.move_to_end(key)
            return dict(cached)
        body = await self.execute(executor)
        if "data" in body and body["data"] is not None:
            body = {**body, "data": orjson.Fragment(orjson.dumps(body["data"]))}
        answers[key] = body
        if len(answers) > INTROSPECTION_CACHE_SIZE:
            answers.popitem(last=False)
        return dict(body)

    async def execute(self, executor: Executor[Any]) -> dict[str, Any]:
        """Runs an operation whose points are spent: its answer (data and coded errors)."""
        try:
            result: ExecutionResult = await await_maybe(
                # arg-type: an incremental result comes only from @defer/@stream, which the
                # schema does not have; this is always an ExecutionResult
                executor.execute_operation()  # type: ignore[arg-type]
            )
        except ResponseTooLarge as exc:  # stopped as it passed the bound: no `data`
            await settled(executor)
            return too_large_body(exc)
        except Exception as exc:  # noqa: BLE001  (masked and logged, as Strawberry does)
            if not isinstance(exc, GraphQLError):
                exc = GraphQLError(str(exc), original_error=exc)
            return {"data": None, "errors": [self._format(exc, EXECUTION)]}
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [self._format(error, EXECUTION) for error in result.errors]
        return body

    async def traced_run(
        self,
        text: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
        method: str,
        spending: Spending,
        prepared: Prepared | None = None,
    ) -> dict[str, Any]:
        """`run` in a span named `<type> <name>` (in place of `run` while tracing is on)."""
        assert self.tracer is not None
        kind, name = self.kind_and_name(text, operation_name, prepared)
        with self.tracer.operation(kind, name):
            return await Engine.run(
                self, text, variables, operation_name, context, method, spending, prepared
            )

    def kind_and_name(
        self, text: str, operation_name: str | None, prepared: Prepared | None
    ) -> tuple[str, str | None]:
        """The type and name of the operation a request runs (`unknown` when none)."""
        operation = pick(prepared or self.prepare(text), operation_name)
        if operation is None:
            return "unknown", None
        node_name = operation.node.name
        return operation.node.operation.value, node_name.value if node_name else None

    def count(
        self,
        text: str,
        operation_name: str | None,
        prepared: Prepared | None,
        body: dict[str, Any] | None,
        spending: Spending,
        started: float,
    ) -> None:
        """graphql_operations_total for one HTTP request (the view calls it after `run`, so no
        coroutine wraps `run`). Outcome: `success` (no error), `error` (it ran: errors, data
        maybe partial) or `rejected` (it did not run: parse, validation, cost, variables, rate
        limit; `body` None: it raised)."""
        assert self.metrics is not None
        outcome = metrics.REJECTED
        if body is not None:
            if "errors" not in body:
                outcome = metrics.SUCCESS
            elif spending.charged:  # its points were spent: it ran
                outcome = metrics.ERROR
        kind, name = self.kind_and_name(text, operation_name, prepared)
        self.metrics.operation(kind, name, outcome, perf_counter() - started)

    def cost_of(
        self, text: str, operation_name: str | None, variables: Mapping[str, Any] | None
    ) -> tuple[int, Operation] | None:
        """The cost of the operation a request names (the websocket path), or None when the
        document does not parse or validate or names no such operation."""
        prepared = self.prepare(text)
        if prepared.document is None or prepared.errors:
            return None
        operation = pick(prepared, operation_name)
        return None if operation is None else (operation.cost.of(variables), operation)


def too_large_body(error: ResponseTooLarge) -> dict[str, Any]:
    """The answer of an operation stopped by GRAPHQL_MAX_RESPONSE_BYTES: the error alone."""
    return {"errors": [{"message": domain_message(error), "extensions": domain_extensions(error)}]}


def introspective(node: OperationDefinitionNode) -> bool:
    """A query whose root selects only `__schema`, `__type` and `__typename` (at least one of
    the first two), without directives: its answer depends on the schema and its arguments."""
    if node.operation.value != "query" or node.directives:
        return False
    selections = node.selection_set.selections
    names = [s.name.value for s in selections if isinstance(s, FieldNode) and not s.directives]
    if len(names) != len(selections):
        return False
    return all(n in INTROSPECTION_FIELDS or n == "__typename" for n in names) and any(
        n in INTROSPECTION_FIELDS for n in names
    )


def pick(prepared: Prepared, operation_name: str | None) -> Operation | None:
    """The operation named, or the first when none is."""
    if operation_name is not None:
        return prepared.operations.get(operation_name)
    return prepared.first
