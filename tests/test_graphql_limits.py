"""GraphQL limits: depth, aliases, root fields and tokens are refused with
GRAPHQL_VALIDATION_FAILED before any resolver or database call; batches are a 400."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import httpx
import pytest
import strawberry
from graphql import get_introspection_query
from sqlalchemy import func, select
from strawberry.extensions import ParserCache, ValidationCache

from app.graphql.extensions import TextValidationCache
from app.graphql.schema import VALIDATION_CACHE_SIZE, build_schema, protective_extensions
from app.main import create_app
from app.models import Assistant
from tests.helpers.event_clients import AsgiWebSocket
from tests.helpers.graphql_answers import answer, without_cost

INTROSPECTION = get_introspection_query(
    descriptions=True,
    specified_by_url=True,
    directive_is_repeatable=True,
    schema_description=True,
    input_value_deprecation=True,
)


def validation_failure(body: dict[str, Any]) -> list[str]:
    """The messages of a refused document (and proof that nothing ran)."""
    assert body["data"] is None, body
    assert {e["extensions"]["code"] for e in body["errors"]} == {"GRAPHQL_VALIDATION_FAILED"}
    return [e["message"] for e in body["errors"]]


async def count_assistants(db) -> int:
    async with db.read() as tx:
        return int(await tx.scalar(select(func.count()).select_from(Assistant)) or 0)


# --- a recursive toy schema with the same protective extensions, to reach any depth -----------

CALLS: list[str] = []


@strawberry.type
class Node:
    @strawberry.field
    def child(self) -> Node:
        CALLS.append("child")
        return Node()

    @strawberry.field
    def leaf(self) -> int:
        CALLS.append("leaf")
        return 1


def toy_execute(settings, query: str) -> Any:
    schema = strawberry.Schema(query=Node, extensions=protective_extensions(settings))
    CALLS.clear()
    return asyncio.run(schema.execute(query))


def nested(levels: int) -> str:
    """`{ child { child { … leaf } } }` with `levels` fields in the deepest path."""
    return "{ " + "child { " * (levels - 1) + "leaf" + " }" * (levels - 1) + " }"


def test_depth_ten_runs_and_eleven_is_refused_before_any_resolver(settings):
    assert toy_execute(settings, nested(10)).errors is None
    result = toy_execute(settings, nested(11))
    assert [e.message for e in result.errors] == [
        "the operation is 11 fields deep; at most 10 are allowed"
    ]
    assert CALLS == []


def test_depth_counts_through_fragments_and_inline_fragments(settings):
    query = (
        "query Deep { child { ...A } } "
        "fragment A on Node { child { ... on Node { child { ...B } } } } "
        f"fragment B on Node {nested(8)}"
    )
    result = toy_execute(settings, query)
    assert [e.message for e in result.errors] == [
        "'Deep' is 11 fields deep; at most 10 are allowed"
    ]
    assert CALLS == []


def test_fragment_fan_out_is_counted_once_per_fragment(settings):
    """Each fragment spreads the next twice: 2**60 paths, which a walker that re-enters
    fragments at each spread (Strawberry's built-in limiters) would never finish."""
    fragments = " ".join(f"fragment F{i} on Node {{ ...F{i + 1} ...F{i + 1} }}" for i in range(60))
    query = f"{{ child {{ ...F0 }} }} {fragments} fragment F60 on Node {{ a: leaf }}"
    result = toy_execute(settings, query)
    [message] = [e.message for e in result.errors]
    assert message.startswith(f"the document uses {2**60} aliases")
    assert CALLS == []


def test_limits_follow_the_settings(settings):
    tight = settings.model_copy(update={"graphql_max_depth": 2})
    assert toy_execute(tight, nested(2)).errors is None
    result = toy_execute(tight, nested(3))
    assert [e.message for e in result.errors] == [
        "the operation is 3 fields deep; at most 2 are allowed"
    ]


def test_parser_and_validation_caches_are_bounded(settings):
    extensions = [make() for make in protective_extensions(settings)]
    caches = [e for e in extensions if isinstance(e, ParserCache | ValidationCache)]
    assert len(caches) == 2
    for cache in caches:
        function = getattr(cache, "cached_parse_document", None) or cache.cached_validate_document
        assert function.cache_info().maxsize is not None


def test_validation_is_cached_by_the_query_text(settings):
    """Each text is validated once, then answered from the cache (by its text: see Parsed)."""
    cache = TextValidationCache(maxsize=VALIDATION_CACHE_SIZE).cached_validate_document
    document = nested(2) + f" # {uuid4().hex}"  # a text no other test sent
    schema = strawberry.Schema(query=Node, extensions=protective_extensions(settings))
    before = cache.cache_info()
    for _ in range(3):
        assert asyncio.run(schema.execute(document)).errors is None
    after = cache.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)


# --- over HTTP, on the real schema ----------------------------------------------------------


async def test_too_deep_is_refused_with_the_validation_code(gql, org):
    deep = '{ assistant(orgId: "c", id: "x") ' + "{ config " * 11 + "{ x }" + " }" * 12
    messages = validation_failure(await gql(deep, org=org))
    assert "the operation is 13 fields deep; at most 10 are allowed" in messages


async def test_introspection_is_exempt_from_depth(gql):
    body = await gql(INTROSPECTION)
    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_sixteen_aliases_through_fragment_spreads_are_refused(gql, org):
    query = (
        'query { assistant(orgId: "c", id: "x") { ...F ...F ...F ...F } } '
        "fragment F on Assistant { a: id b: id c: id d: id }"
    )
    assert validation_failure(await gql(query, org=org)) == [
        "the document uses 16 aliases (counted through fragment spreads); at most 15 are allowed"
    ]


async def test_fifteen_aliases_run(gql, org):
    query = (
        'query { assistant(orgId: "c", id: "x") { a: id b: id c: id ...F ...F ...F } } '
        "fragment F on Assistant { a: id b: id c: id d: id }"
    )
    body = await gql(query, org=org)
    assert body["data"] == {"assistant": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]


async def test_root_fields_count_through_fragments(gql, org):
    query = "query { __typename ...G ...G } fragment G on Query { __typename __typename "
    query += "__typename __typename __typename }"
    assert validation_failure(await gql(query, org=org)) == [
        "the operation selects 11 root fields; at most 10 are allowed"
    ]


async def test_eleven_root_mutations_run_none_of_them(gql, org, db):
    fields = " ".join(
        f'm{i}: createAssistant(orgId: "c", input: {{name: "n{i}"}}) {{ id }}' for i in range(11)
    )
    assert validation_failure(await gql(f"mutation {{ {fields} }}", org=org)) == [
        "the operation selects 11 root fields; at most 10 are allowed"
    ]
    assert await count_assistants(db) == 0


async def test_ten_root_fields_are_fine(gql, org):
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(10)) + " }"
    body = await gql(query, org=org)
    assert body == answer({f"a{i}": "Query" for i in range(10)}, 0)


async def test_too_many_tokens_are_refused_before_parsing_ends(gql):
    query = "{ " + "__typename " * 2001 + "}"
    body = await gql(query)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == "the document has more than 2000 tokens; at most 2000 are allowed"
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_a_syntax_error_keeps_the_parse_code(gql):
    body = await gql("{ assistants(")
    [error] = body["errors"]
    assert error["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}


@pytest.mark.parametrize(
    "query",
    [
        "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        "{ ...A } fragment A on Query { __typename ...A }",
        "{ ...Missing }",
    ],
)
async def test_cyclic_and_unknown_fragments_are_validation_errors(gql, query):
    messages = validation_failure(await gql(query))
    assert messages


async def test_the_same_document_twice_gives_the_same_answer(gql):
    """The parser and validation caches never change an answer."""
    query = "{ ...F ...F ...F ...F } fragment F on Query { a: __typename b: __typename " + (
        "c: __typename d: __typename }"
    )
    first, second = await gql(query), await gql(query)
    assert without_cost(first) == without_cost(second)
    assert validation_failure(first)


async def test_batched_requests_are_refused_with_400(client, org, db):
    mutation = {"query": 'mutation { createAssistant(orgId: "c", input: {name: "b"}) { id } }'}
    response = await client.post("/graphql", json=[mutation, mutation], headers=org.headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert await count_assistants(db) == 0


async def test_the_served_schema_exports_like_the_bare_one(settings):
    assert build_schema(settings).as_str() == build_schema().as_str()
    app = create_app(settings.model_copy(update={"graphql_max_root_fields": 1}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            query = {"query": "{ a: __typename b: __typename }"}
            response = await http.post("/graphql", json=query)
    assert validation_failure(response.json()) == [
        "the operation selects 2 root fields; at most 1 are allowed"
    ]


# --- bytes of a document: comments and strings count, though they are not tokens -------------


def padded(document: str, size: int, filler: str = "x") -> str:
    """`document` followed by a comment that brings it to `size` characters."""
    return document + "\n#" + filler * (size - len(document) - 2)


def too_long(size: int) -> str:
    return (
        f"the document is {size} bytes (comments and strings included); at most 32768 are allowed"
    )


async def test_a_document_of_32_kib_runs_and_one_byte_more_is_refused(gql):
    exact = padded("{ __typename }", 32 * 1024)
    assert (await gql(exact))["data"] == {"__typename": "Query"}
    over = padded("{ __typename }", 32 * 1024 + 1)
    assert validation_failure(await gql(over)) == [too_long(32 * 1024 + 1)]


async def test_strings_and_multibyte_characters_count_in_bytes(gql, org, db):
    name = "x" * (33 * 1024)
    mutation = f'mutation {{ createAssistant(orgId: "c", input: {{name: "{name}"}}) {{ id }} }}'
    body = await gql(mutation, org=org)
    assert validation_failure(body) == [too_long(len(mutation))]
    assert await count_assistants(db) == 0
    wide = padded("{ __typename }", 20_000, "é")  # 20,000 characters, about 40,000 bytes
    assert validation_failure(await gql(wide)) == [too_long(len(wide.encode()))]


async def test_a_body_over_1_mib_stays_413(client):
    response = await client.post("/graphql", json={"query": padded("{ __typename }", 1100 * 1024)})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_the_document_bound_is_a_setting_and_holds_over_the_websocket(settings, org):
    application = create_app(settings.model_copy(update={"graphql_max_document_bytes": 1000}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            document = padded("{ __typename }", 1001)
            response = await http.post("/graphql", json={"query": document})
            message = (
                "the document is 1001 bytes (comments and strings included); "
                "at most 1000 are allowed"
            )
            assert validation_failure(response.json()) == [message]
            fits = await http.post("/graphql", json={"query": padded("{ __typename }", 1000)})
            assert fits.json()["data"] == {"__typename": "Query"}
        async with AsgiWebSocket(application) as socket:
            assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
            await socket.send({"id": "1", "type": "subscribe", "payload": {"query": document}})
            refused = await socket.receive()
    assert refused["type"] == "error"
    assert [(e["message"], e["extensions"]["code"]) for e in refused["payload"]] == [
        (message, "GRAPHQL_VALIDATION_FAILED")
    ]
