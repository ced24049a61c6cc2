"""The Strawberry extensions of the path Strawberry still runs (the websocket's operations; HTTP
goes through app/graphql/engine.py): the parser's token limit, bounded parser and validation
caches keyed by the text, no "Did you mean" hints with introspection off, and one operation per
document unless `operationName` names it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import cache, lru_cache

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
)
from strawberry.extensions import MaxTokensLimiter, ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.schema.schema import validate_document

from app.graphql.limits import parse_limit_error


class TokenLimit(MaxTokensLimiter):
    """The parser stops after `max_token_count` tokens (or when the document nests deeper than
    the interpreter's recursion allows); either refusal reads as a validation error."""

    def on_parse(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or []:
            parse_limit_error(error, self.max_token_count)


class SafeParserCache(ParserCache):
    """Strawberry's bounded parser cache, except that a document that does not parse is left to
    Strawberry's own parse step (an exception raised in an extension hook would skip the
    error-code extension); such documents are never cached anyway."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        except Exception:  # noqa: BLE001  (parsed again, and reported, by Strawberry)
            context.graphql_document = None
        yield


class Parsed:
    """A parsed document that hashes and compares by its text: graphql-core hashes a node by
    hashing its whole subtree, on every request, which costs more than validating from the
    cache saves on a large selection; the text hashes once per request, in C."""

    __slots__ = ("document", "text")

    def __init__(self, text: str, document: DocumentNode) -> None:
        self.text = text
        self.document = document

    def __hash__(self) -> int:
        return hash(self.text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Parsed) and other.text == self.text


def validate_parsed(
    schema: GraphQLSchema, parsed: Parsed, rules: tuple[type[ASTValidationRule], ...]
) -> list[GraphQLError]:
    return validate_document(schema, parsed.document, rules)


@cache
def text_validation_cache(maxsize: int) -> Callable[..., list[GraphQLError]]:
    """One cache per size for the process (extensions are made anew for every request)."""
    return lru_cache(maxsize=maxsize)(validate_parsed)


class TextValidationCache(ValidationCache):
    """Strawberry's bounded validation cache, keyed by the query text (see `Parsed`)."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self.cached_validate_document = text_validation_cache(maxsize)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.query is not None
        assert context.graphql_document is not None
        context.pre_execution_errors = self.cached_validate_document(
            context.schema._schema,  # noqa: SLF001  (Strawberry's graphql-core schema)
            Parsed(context.query, context.graphql_document),
            tuple(context.validation_rules),
        )
        yield


_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class HideSuggestions(SchemaExtension):
    """With introspection off, no "Did you mean …?" in any error names a type, field, argument
    or enum value the client did not already send (StrawberryConfig's `disable_field_suggestions`
    covers unknown fields only). Listed after ErrorCodes, so it runs before codes are assigned."""

    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        result = context.result
        for error in [*(context.pre_execution_errors or []), *((result and result.errors) or [])]:
            strip_suggestions(error)


def strip_suggestions(error: GraphQLError) -> None:
    error.message = _SUGGESTION.sub("", error.message)


class OperationNameRequired(CannotGetOperationTypeError):
    """A document of several operations, and no `operationName` to choose one."""

    def __init__(self) -> None:
        super().__init__(None)

    def as_http_error_reason(self) -> str:
        return "the document holds several operations: name the one to run in 'operationName'"


class SingleOperation(SchemaExtension):
    """Strawberry runs the first operation of a document when no `operationName` is given; the
    GraphQL spec asks for a request error instead (nothing runs): HTTP 400 `BAD_REQUEST`, like
    an unknown `operationName`, and a closed socket over graphql-transport-ws."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        # `operation_name` falls back to the first operation's; only this holds what was sent
        if context._provided_operation_name is None and context.graphql_document is not None:  # noqa: SLF001  (graphql-core keeps the requested name there)
            definitions = context.graphql_document.definitions
            if sum(isinstance(d, OperationDefinitionNode) for d in definitions) > 1:
                raise OperationNameRequired
        yield
