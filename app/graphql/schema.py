"""The schema: the export target of `python -m app export-schema`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.tools import merge_types
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from app.graphql.actions import ActionMutation
from app.graphql.api_keys import ApiKeyMutation, ApiKeyQuery
from app.graphql.assistants import AssistantMutation, AssistantQuery
from app.graphql.execution import CompiledExecutionContext
from app.graphql.integrations import IntegrationMutation
from app.graphql.limits import (
    HideSuggestions,
    SafeParserCache,
    SingleOperation,
    TextValidationCache,
    TokenLimit,
    settings_limits_rule,
)
from app.graphql.observed import OperationMetrics
from app.graphql.revisions import RevisionMutation
from app.graphql.scalars import SCALAR_MAP
from app.graphql.subscriptions import AssistantSubscription, StreamErrorCodes
from app.observability import metrics
from app.settings import Settings

Query = merge_types("Query", (AssistantQuery, ApiKeyQuery))
Mutation = merge_types(
    "Mutation",
    (AssistantMutation, IntegrationMutation, ActionMutation, RevisionMutation, ApiKeyMutation),
)
Subscription = merge_types("Subscription", (AssistantSubscription,))

# merge_types takes no description: these are what GraphiQL's documentation explorer shows.
Query.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Reads. Each needs `Authorization: Bearer <API key>` (introspection does not); "
    "`orgId` is the key's own organisation, or `c` for short. Reading assistants, their "
    "integrations, actions and revisions needs the scope `assistants:read`, `apiKeys` needs "
    "`api_keys:manage`, `viewer` any scope; a missing scope is FORBIDDEN with "
    "`extensions.requiredScope`. A key restricted to some assistants sees only those: any "
    "other is NOT_FOUND, as if it did not exist. An operation may cost at most "
    "GRAPHQL_MAX_COST (25,000 by default): the list items its answer may hold, a connection "
    "counting its `first` and `integrations` and `actions` 100 each, times the lists above "
    "them. Every answer carries `extensions.cost` {requested, pointsRemaining}: a request "
    "spends max(1, ceil(cost / 100)) of its key's GRAPHQL_POINTS a minute (10,000 by default)."
)
Mutation.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Writes. Each needs `Authorization: Bearer <API key>` and is all or nothing: "
    "when anything in it is invalid, nothing is stored. Writing assistants, integrations and "
    "actions (dry runs included) needs the scope `assistants:write`; making and revoking keys "
    "`api_keys:manage`. A key restricted to some assistants cannot create assistants."
)
Subscription.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Live changes over graphql-transport-ws on `/graphql`; the socket authenticates with "
    '`{"authorization": "Bearer <API key>"}` in its `connection_init` payload.'
)


class Schema(strawberry.Schema):
    async def execute(  # type: ignore[override]
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
        return await super().execute(query, *args, allowed_operation_types=allowed, **kwargs)

    def process_errors(self, errors: list, execution_context: object = None) -> None:  # type: ignore[override]
        """Errors are logged (unexpected ones only) by the ErrorCodes extension."""


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
        extensions += [DisableIntrospection, HideSuggestions]
    return extensions


def build_schema(settings: Settings | None = None) -> Schema:
    """The schema served by `create_app(settings)`; without settings, the bare schema (the
    export target: extensions and settings never change the SDL)."""
    extensions = protective_extensions(settings) if settings else []
    if settings is not None and metrics.active is not None:  # the websocket's operations
        extensions.append(OperationMetrics)
    introspection = settings.graphql_introspection if settings else True
    return Schema(
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


schema = build_schema()
