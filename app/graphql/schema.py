"""The schema: the export target of `python -m app export-schema`."""

from __future__ import annotations

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from app.graphql.actions import ActionMutation
from app.graphql.assistants import AssistantMutation, AssistantQuery
from app.graphql.errors import ErrorCodes
from app.graphql.integrations import IntegrationMutation
from app.graphql.scalars import SCALAR_MAP

Query = merge_types("Query", (AssistantQuery,))
Mutation = merge_types("Mutation", (AssistantMutation, IntegrationMutation, ActionMutation))

# merge_types takes no description: these are what GraphiQL's documentation explorer shows.
Query.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Reads. Each needs `Authorization: Bearer <API key>` (introspection does not); "
    "`orgId` is the key's own organisation, or `c` for short."
)
Mutation.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Writes. Each needs `Authorization: Bearer <API key>` and is all or nothing: "
    "when anything in it is invalid, nothing is stored."
)


class Schema(strawberry.Schema):
    def process_errors(self, errors: list, execution_context: object = None) -> None:  # type: ignore[override]
        """Errors are logged (unexpected ones only) by the ErrorCodes extension."""


def build_schema(extensions: list[type[SchemaExtension] | SchemaExtension] | None = None) -> Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        extensions=[ErrorCodes, *(extensions or [])],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
    )


schema = build_schema()
