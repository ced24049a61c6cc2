"""Limits on a GraphQL document, all checked before any resolver runs.

- bytes of the document's text (comments and strings included, which are not tokens):
  `document_too_long`, before the text is parsed or kept in any cache (the engine), and again in
  the validation rule (the websocket path);
- tokens: the parser's own `max_tokens` (Strawberry's `MaxTokensLimiter`), so parsing stops early;
- depth, aliases (counted through fragment spreads) and root fields per operation: one validation
  rule that walks each selection set and each fragment once. Strawberry's `QueryDepthLimiter` and
  `MaxAliasesLimiter` re-walk a fragment at every spread, which is exponential for fragments that
  spread the next one twice, and the depth limiter fails with a KeyError on an unknown fragment;
  here a fragment's totals are computed once (iteratively, in dependency order), and unknown or
  cyclic spreads count as nothing (graphql-core's own rules refuse them).

Every refusal is a validation error: `extensions.code` GRAPHQL_VALIDATION_FAILED.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

from app.settings import Settings

TOKENS_EXCEEDED = "tokens. Parsing aborted."
NESTED_TOO_DEEPLY = "nested too deeply. Parsing aborted."


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_root_fields: int
    max_document_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    """What a selection set costs: its deepest field nesting (introspection fields exempt), its
    aliases (through fragment spreads) and its top-level fields."""

    depth: int = 0
    aliases: int = 0
    root_fields: int = 0


NOTHING = Totals()


def spread_names(selection_set: SelectionSetNode) -> Iterator[str]:
    """The names of every fragment spread anywhere inside, without recursion."""
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                yield selection.name.value
            # mypy ignore below: fields and fragments have one; the loop checks
            elif selection.selection_set is not None:  # type: ignore[attr-defined]
                stack.append(selection.selection_set)  # type: ignore[attr-defined]


def dependency_order(fragments: dict[str, FragmentDefinitionNode]) -> list[str]:
    """Fragments, each after the fragments it spreads (cycles broken anywhere); iterative DFS."""
    order: list[str] = []
    seen: set[str] = set()
    for root in fragments:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(spread_names(fragments[root].selection_set)))]
        while stack:
            name, children = stack[-1]
            child = next((c for c in children if c in fragments and c not in seen), None)
            if child is None:
                order.append(name)
                stack.pop()
            else:
                seen.add(child)
                stack.append((child, iter(spread_names(fragments[child].selection_set))))
    return order


def totals(selection_set: SelectionSetNode, known: dict[str, Totals]) -> Totals:
    """The totals of one selection set; spreads use the totals already known (else nothing)."""
    depth = aliases = root_fields = 0
    # (selection set, field depth above it, inside an introspection field, at the top level)
    stack = [(selection_set, 0, False, True)]
    while stack:
        current, level, introspective, top = stack.pop()
        for selection in current.selections:
            if isinstance(selection, FieldNode):
                aliases += selection.alias is not None
                root_fields += top
                inside = introspective or selection.name.value.startswith("__")
                here = level if inside else level + 1
                depth = max(depth, here)
                if selection.selection_set is not None:
                    stack.append((selection.selection_set, here, inside, False))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, level, introspective, top))
            elif isinstance(selection, FragmentSpreadNode):
                spread = known.get(selection.name.value, NOTHING)
                aliases += spread.aliases
                root_fields += spread.root_fields if top else 0
                depth = max(depth, level if introspective else level + spread.depth)
    return Totals(depth, aliases, root_fields)


def operation_totals(
    document_definitions: tuple[object, ...] | list[object],
) -> Iterator[tuple[OperationDefinitionNode, Totals]]:
    fragments = {
        d.name.value: d for d in document_definitions if isinstance(d, FragmentDefinitionNode)
    }
    known: dict[str, Totals] = {}
    for name in dependency_order(fragments):
        known[name] = totals(fragments[name].selection_set, known)
    for definition in document_definitions:
        if isinstance(definition, OperationDefinitionNode):
            yield definition, totals(definition.selection_set, known)


def document_too_long(text: str, max_bytes: int) -> str | None:
    """The refusal of a document text over `max_bytes` bytes (UTF-8), else None; O(1) for an
    ASCII text."""
    if len(text) <= max_bytes and (text.isascii() or len(text.encode()) <= max_bytes):
        return None
    return (
        f"the document is {len(text.encode())} bytes (comments and strings included); "
        f"at most {max_bytes} are allowed"
    )


def limit_errors(context: ValidationContext, limits: Limits) -> Iterator[GraphQLError]:
    location = context.document.loc
    if limits.max_document_bytes is not None and location is not None:
        refusal = document_too_long(location.source.body, limits.max_document_bytes)
        if refusal is not None:
            yield GraphQLError(refusal)
    aliases = 0
    for operation, total in operation_totals(context.document.definitions):
        name = f"'{operation.name.value}'" if operation.name else "the operation"
        aliases += total.aliases
        if total.depth > limits.max_depth:
            yield GraphQLError(
                f"{name} is {total.depth} fields deep; at most {limits.max_depth} are allowed",
                operation,
            )
        if total.root_fields > limits.max_root_fields:
            yield GraphQLError(
                f"{name} selects {total.root_fields} root fields; "
                f"at most {limits.max_root_fields} are allowed",
                operation,
            )
    if aliases > limits.max_aliases:
        yield GraphQLError(
            f"the document uses {aliases} aliases (counted through fragment spreads); "
            f"at most {limits.max_aliases} are allowed"
        )


def settings_limits_rule(settings: Settings) -> type[ValidationRule]:
    """The rule of the limits `settings` name (the engine and the websocket path use it)."""
    return limits_rule(
        Limits(
            max_depth=settings.graphql_max_depth,
            max_aliases=settings.graphql_max_aliases,
            max_root_fields=settings.graphql_max_root_fields,
            max_document_bytes=settings.graphql_max_document_bytes,
        )
    )


def limits_rule(limits: Limits) -> type[ValidationRule]:
    """A graphql-core validation rule enforcing `limits` (one class per schema, so Strawberry's
    validation cache sees the same rules on every request)."""

    class DocumentLimitsRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for error in limit_errors(context, limits):
                context.report_error(error)

    return DocumentLimitsRule


class NoSubgraphSdl(ValidationRule):
    """With introspection off, `_service { sdl }` (the federation subgraph's SDL, the whole
    schema) is refused like `__schema`: a supergraph then composes from the committed
    subgraph.graphql instead of asking the server."""

    def enter_field(self, node: FieldNode, *_args: object) -> None:
        parent = self.context.get_parent_type()
        if node.name.value == "_service" and parent is self.context.schema.query_type:
            self.report_error(
                GraphQLError(
                    "GraphQL introspection has been disabled, but the requested query "
                    "contained the field '_service' (compose from subgraph.graphql)",
                    node,
                )
            )


def parse_limit_error(error: GraphQLError, max_tokens: int) -> bool:
    """Whether a parse error is a refusal of the token limit (or of absurd nesting); such an
    error is reworded and coded as a validation error."""
    if TOKENS_EXCEEDED in error.message:
        error.message = (
            f"the document has more than {max_tokens} tokens; at most {max_tokens} are allowed"
        )
    elif NESTED_TOO_DEEPLY in error.message:
        error.message = "the document is nested too deeply to be parsed"
    else:
        return False
    error.extensions = {"code": "GRAPHQL_VALIDATION_FAILED"}
    return True
