"""The schema: the export target of `python -m app export-schema`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import aclosing, contextmanager
from typing import Any

import strawberry
import strawberry.federation
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    SchemaExtension,
)
from strawberry.federation.schema import FederationAny
from strawberry.federation.schema_directives import FederationDirective
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.tools import merge_types
from strawberry.types import ExecutionResult
from strawberry.types.base import get_object_definition
from strawberry.types.graphql import OperationType

from app.domain.errors import InsufficientScope
from app.graphql.actions import ActionMutation
from app.graphql.api_keys import ApiKeyMutation, ApiKeyQuery
from app.graphql.assistants import AssistantMutation, AssistantQuery
from app.graphql.audit_log import AuditLogQuery
from app.graphql.bundles import BundleMutation
from app.graphql.context import Context, Info
from app.graphql.duplicate import DuplicateMutation
from app.graphql.execution import CompiledExecutionContext
from app.graphql.extensions import (
    HideSuggestions,
    SafeParserCache,
    SingleOperation,
    TextValidationCache,
    TokenLimit,
)
from app.graphql.integrations import IntegrationMutation
from app.graphql.limits import NoSubgraphSdl, settings_limits_rule
from app.graphql.node import NodeQuery, entities
from app.graphql.observed import OperationMetrics
from app.graphql.releases import ReleaseMutation
from app.graphql.revisions import RevisionMutation
from app.graphql.scalars import SCALAR_MAP
from app.graphql.subscriptions import AssistantSubscription, StreamErrorCodes
from app.graphql.types import NODE_TYPES
from app.graphql.webhooks import WebhookMutation, WebhookQuery
from app.observability import metrics
from app.settings import Settings

Query = merge_types("Query", (AssistantQuery, ApiKeyQuery, WebhookQuery, AuditLogQuery, NodeQuery))
Mutation = merge_types(
    "Mutation",
    (
        AssistantMutation,
        DuplicateMutation,
        IntegrationMutation,
        ActionMutation,
        RevisionMutation,
        ReleaseMutation,
        ApiKeyMutation,
        WebhookMutation,
        BundleMutation,
    ),
)
Subscription = merge_types("Subscription", (AssistantSubscription,))

# merge_types takes no description: these are what GraphiQL's documentation explorer shows.
# mypy ignore below: merge_types returns a strawberry type
Query.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Reads. Each needs `Authorization: Bearer <API key>` (introspection does not); "
    "`orgId` is the key's own organisation, or `c` for short. Reading assistants, their "
    "integrations, actions and revisions needs the scope `assistants:read`, `apiKeys` needs "
    "`api_keys:manage`, `webhooks` and `webhook` `webhooks:manage`, `auditLog` `audit:read`, "
    "`viewer` any scope; a "
    "missing scope is FORBIDDEN with "
    "`extensions.requiredScope`. A key restricted to some assistants sees only those: any "
    "other is NOT_FOUND, as if it did not exist. An operation may cost at most "
    "GRAPHQL_MAX_COST (25,000 by default): the list items its answer may hold, a connection "
    "counting its `first` and `integrations` and `actions` 100 each, times the lists above "
    "them. Every answer carries `extensions.cost` {requested, pointsRemaining}: a request "
    "spends max(1, ceil(cost / 100)) of its key's GRAPHQL_POINTS a minute (10,000 by default)."
)
# mypy ignore below: merge_types returns a strawberry type
Mutation.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Writes. Each needs `Authorization: Bearer <API key>` and is all or nothing: "
    "when anything in it is invalid, nothing is stored. Writing assistants, integrations and "
    "actions (dry runs included) needs the scope `assistants:write`; making and revoking keys "
    "`api_keys:manage`; webhooks `webhooks:manage`. A key restricted to some assistants "
    "cannot create assistants. Over HTTP, a request holding a mutation may carry an "
    "`Idempotency-Key` header (1-255 printable ASCII characters): a repeat with the same key, "
    "document, variables and operation name gets the first answer again (header "
    "`Idempotent-Replayed: true`) and runs nothing; see docs/idempotency.md."
)
# mypy ignore below: merge_types returns a strawberry type
Subscription.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Live changes over graphql-transport-ws on `/graphql`; the socket authenticates with "
    '`{"authorization": "Bearer <API key>"}` in its `connection_init` payload.'
)


class Served:
    """What both schemas below share: how they run, and objects typed by their class alone."""

    _schema: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry gives the types implementing an interface an `is_type_of` (graphql-core
        # calls it on every such object it completes, and the compiled plans of
        # app/graphql/execution.py step aside for types that have one); our resolvers return
        # instances of the types themselves, which `Node` and `_Entity` resolve by class.
        for node_type in NODE_TYPES:
            name = get_object_definition(node_type, strict=True).name
            self._schema.type_map[name].is_type_of = None

    async def execute(
        self,
        query: str | None,
        *args: Any,
        allowed_operation_types: Iterable[OperationType] | None = None,
        **kwargs: Any,
    ) -> ExecutionResult:
        """Queries and mutations; a subscription runs only over the websocket (`subscribe`), so
        over HTTP it is refused before anything runs (400 `BAD_REQUEST`)."""
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        allowed.discard(OperationType.SUBSCRIPTION)
        # misc: mypy fears *args could hold allowed_operation_types too; it never does
        result: ExecutionResult = await super().execute(  # type: ignore[misc]
            query, *args, allowed_operation_types=allowed, **kwargs
        )
        return result

    async def stream(self, query: str | None, *args: Any, **kwargs: Any) -> Any:
        """The websocket's operations: Strawberry's, with the audit entries of their refusals
        for a missing scope (docs/audit-log.md) written as each result comes."""
        # misc: a mixin's super(); the schemas below inherit Strawberry's `stream`
        source = await super().stream(query, *args, **kwargs)  # type: ignore[misc]
        context = kwargs.get("context_value")
        if not isinstance(context, Context):
            return source
        return _recording_refusals(source, context)

    # mypy ignore below: Strawberry's own signature
    def process_errors(self, errors: list, execution_context: object = None) -> None:  # type: ignore[type-arg]
        """Errors are logged (unexpected ones only) by the ErrorCodes extension."""


async def _recording_refusals(source: Any, context: Context) -> AsyncIterator[Any]:
    async with aclosing(source):
        async for result in source:
            for error in getattr(result, "errors", None) or ():
                original = getattr(error, "original_error", None)
                if isinstance(original, InsufficientScope):  # a subscription's own refusal
                    context.denied.append(original)
            if context.denied:
                await context.record_denials()
            yield result


@contextmanager
def federation_directives_hidden() -> Iterator[None]:
    """The types' federation directives (`Assistant @key`) left out while the plain schema is
    built or printed: they belong to the subgraph SDL only."""
    definitions = [get_object_definition(t, strict=True) for t in NODE_TYPES]
    kept = [d.directives for d in definitions]
    for definition in definitions:
        definition.directives = [
            d for d in definition.directives or () if not isinstance(d, FederationDirective)
        ]
    try:
        yield
    finally:
        for definition, directives in zip(definitions, kept, strict=True):
            definition.directives = directives


class Schema(Served, strawberry.Schema):
    """The plain schema: `schema.graphql`, without federation's additions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with federation_directives_hidden():
            super().__init__(*args, **kwargs)

    def as_str(self) -> str:
        with federation_directives_hidden():
            return super().as_str()


FEDERATION_VERSION = "2.3"  # @key is all it uses; 2.3 composes with every Federation 2 router


class SubgraphSchema(Served, strawberry.federation.Schema):
    """The schema served: the plain one plus Apollo Federation 2's `_service { sdl }` (this
    schema's SDL, with `@link` and `Assistant @key(fields: "id")`) and `_entities`."""

    # mypy ignore below: Strawberry's signature, batched here
    async def entities_resolver(  # type: ignore[override]
        self, info: Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        """Every representation in one lookup, answering only what the key may read."""
        # mypy ignore below: Strawberry expects a list of its entity types
        return await entities(info, representations)  # type: ignore[return-value]


class CachedNames(NameConverter):
    """Strawberry's names, each Python name converted once: Strawberry converts the names of an
    input type's fields again for every argument of every request."""

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, str] = {}

    def apply_naming_config(self, name: str) -> str:
        converted = self._names.get(name)
        if converted is None:
            converted = self._names[name] = super().apply_naming_config(name)
        return converted


PARSER_CACHE_SIZE = 1024
VALIDATION_CACHE_SIZE = 1024


def protective_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """Limits checked before any resolver runs, bounded parse and validation caches, and (when
    introspection is off) no introspection and no "Did you mean" hints. ErrorCodes comes first,
    so it sees the errors last, after every other extension has shaped them."""
    rule = settings_limits_rule(settings)
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: TokenLimit(max_token_count=settings.graphql_max_tokens),
        lambda: SafeParserCache(maxsize=PARSER_CACHE_SIZE),
        lambda: AddValidationRules([rule]),
        lambda: TextValidationCache(maxsize=VALIDATION_CACHE_SIZE),
    ]
    if not settings.graphql_introspection:
        extensions += [
            DisableIntrospection,
            lambda: AddValidationRules([NoSubgraphSdl]),
            HideSuggestions,
        ]
    return extensions


def build_schema(settings: Settings | None = None, *, federation: bool = True) -> strawberry.Schema:
    """The schema served by `create_app(settings)` (a federation subgraph); without settings,
    the bare schema (the export target: extensions and settings never change the SDL);
    `federation=False`: the plain schema of `schema.graphql`."""
    if federation:
        return SubgraphSchema(federation_version=FEDERATION_VERSION, **_schema_arguments(settings))
    return Schema(**_schema_arguments(settings))


def _schema_arguments(settings: Settings | None) -> dict[str, Any]:
    extensions = protective_extensions(settings) if settings else []
    if settings is not None and metrics.active is not None:  # the websocket's operations
        extensions.append(OperationMetrics)
    introspection = settings.graphql_introspection if settings else True
    return dict(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[StreamErrorCodes, SingleOperation, *extensions],
        config=StrawberryConfig(
            scalar_map=SCALAR_MAP,
            disable_field_suggestions=not introspection,
            name_converter=CachedNames(),
        ),
        execution_context_class=CompiledExecutionContext,
    )


schema = build_schema(federation=False)
