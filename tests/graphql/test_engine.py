"""The engine (app/graphql/engine.py) answers whole requests exactly as Strawberry's own view.

Each request runs twice on the same database: once through the app as it serves (the engine),
once through Strawberry's `GraphQL.run` with the schema's extensions (the reference). Status
and body must be identical, errors included (masked error ids aside), on good requests and on
every kind of failure: parse, validation, limits, variables, operation choice, the HTTP method,
authentication, domain errors, and resolvers that fail unexpectedly. The one difference allowed
is the engine's own: the `extensions.cost` that ends every answer (app/graphql/points.py), cut
off the text before the comparison, which stays byte for byte.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from strawberry.asgi import GraphQL

from app.graphql.context import Context
from app.graphql.engine import DOCUMENT_CACHE_SIZE, Engine
from app.graphql.view import GraphQLView

FULL = """
  id name enabled deleted version secretKey avatarUrl createdAt updatedAt
  config { language model instructions knowledgeScope timezone
    stt { model } tts { model voiceId }
    conversation { threadMode enableMemories welcomeBanner suggestedMessages autoIntroMessage } }
  integrations { id enabled integrationId assistantId connectionId config error createdAt }
  actions { id name enabled actionId position config { input definitions { path definition } } }
"""
UPDATE = (
    "mutation Update($id: ID!, $name: String, $dry: Boolean) { "
    'updateAssistant(orgId: "c", assistantId: $id, input: {name: $name, '
    'config: {tts: {voiceId: "v9"}}}, dryRun: $dry) { ' + FULL + " } }"
)
ONE = 'query One($id: ID!) { assistant(orgId: "c", id: $id) { ...A } } fragment A on Assistant {'
ONE += FULL + " __typename }"
LIST = (
    'query List($n: Int, $skip: Boolean!) { first: assistants(orgId: "c", first: $n) { '
    "totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name "
    "integrations @skip(if: $skip) { id } actions @include(if: $skip) { id } } } } }"
)
DEEP = '{ a: assistant(orgId: "c", id: "x") { config { tts { model } } } }'
DEEP_TOO = (
    '{ assistant(orgId: "c", id: "x") { revisions { edges { node { snapshot { config '
    "{ conversation { threadMode suggestedMessages { x { y { z } } } } } } } } } } }"
)

# (name, method, document, variables, operationName); `$A` is replaced by an assistant id
CASES: list[tuple[str, str, str, dict[str, Any] | None, str | None]] = [
    ("dry-run update", "POST", UPDATE, {"id": "$A", "name": "Renamed", "dry": True}, None),
    ("invalid input", "POST", UPDATE, {"id": "$A", "name": "", "dry": True}, None),
    ("null name", "POST", UPDATE, {"id": "$A", "name": None, "dry": True}, "Update"),
    ("unknown assistant", "POST", UPDATE, {"id": "nope", "name": "x", "dry": True}, None),
    ("fragment and typename", "POST", ONE, {"id": "$A"}, None),
    ("list with directives", "POST", LIST, {"n": 5, "skip": True}, "List"),
    ("list with directives off", "POST", LIST, {"n": 5, "skip": False}, None),
    ("first out of range", "POST", LIST, {"n": 500, "skip": False}, None),
    ("variable of the wrong type", "POST", ONE, {"id": {"not": "an id"}}, None),
    ("missing variable", "POST", ONE, {}, None),
    ("parse error", "POST", "{ assistant(orgId: ", None, None),
    ("unknown field", "POST", '{ assistant(orgId: "c", id: "x") { nam } }', None, None),
    ("depth", "POST", DEEP_TOO, None, None),
    ("shallow", "POST", DEEP, None, None),
    ("tokens", "POST", "{ " + "a: __typename " * 1100 + "}", None, None),
    ("aliases", "POST", "{ " + " ".join(f"a{i}: __typename" for i in range(20)) + " }", None, None),
    ("unknown operation", "POST", ONE, {"id": "$A"}, "Nope"),
    ("several operations", "POST", "query A { __typename } query B { __typename }", None, None),
    ("several, one named", "POST", "query A { __typename } query B { __typename }", None, "B"),
    ("mutation over GET", "GET", UPDATE, {"id": "$A", "name": "x", "dry": True}, None),
    ("query over GET", "GET", ONE, {"id": "$A"}, None),
    (
        "subscription over POST",
        "POST",
        'subscription { assistantChanged(orgId: "c") { id } }',
        None,
        None,
    ),
    ("introspection", "POST", "{ __schema { queryType { name } types { name } } }", None, None),
    ("type introspection", "POST", '{ __type(name: "Assistant") { fields { name } } }', None, None),
    ("only fragments", "POST", "fragment F on Query { __typename }", None, None),
]


# the end of an answer whose only extension is its cost (app/graphql/view.py `answer`)
COST_AT_THE_END = re.compile(
    r',"extensions":\{"cost":\{"requested":\d+,"pointsRemaining":\d+\}\}\}$'
)


def normalised(body: str) -> Any:
    """The body without its `extensions.cost`, masked error ids (random per error) replaced by
    a fixed text."""
    return re.sub(r"[0-9a-f]{32}", "<id>", COST_AT_THE_END.sub("}", body))


def assert_costed(served: httpx.Response) -> None:
    """The engine's answer ends with its cost (what `normalised` cuts off)."""
    assert COST_AT_THE_END.search(served.text), served.text


class ReferenceView(GraphQLView):
    """The view as it was: every HTTP request through Strawberry's own `GraphQL.run`."""

    async def serve(self, request: Request, spending: Any, answers: str = "") -> Response:
        return await GraphQL.run(self, request)

    async def get_context(self, request: Any, response: Any) -> Context:
        context = Context(
            db=request.app.state.db,
            settings=self.settings,
            authorization=request.headers.get("authorization"),
            request=request,
            response=response,
        )
        request.state.graphql_context = context
        return context


def graphql_view(app: Starlette) -> GraphQLView:
    view = next(r for r in app.routes if getattr(r, "path", None) == "/graphql").app  # type: ignore[attr-defined]
    assert isinstance(view, GraphQLView)
    return view


async def both(
    app: Starlette, client: httpx.AsyncClient, method: str, payload: dict[str, Any], headers: Any
) -> tuple[httpx.Response, httpx.Response]:
    view = graphql_view(app)

    async def send() -> httpx.Response:
        if method == "GET":
            params = {
                k: v if isinstance(v, str) else httpx._utils.primitive_value_to_str(v)
                for k, v in payload.items()
            }
            import orjson

            if "variables" in payload:
                params["variables"] = orjson.dumps(payload["variables"]).decode()
            return await client.get("/graphql", params=params, headers=headers)
        return await client.post("/graphql", json=payload, headers=headers)

    served = await send()
    reference = ReferenceView(view.schema, settings=view.settings)
    original = view.serve
    view.serve = reference.serve  # type: ignore[method-assign]
    try:
        expected = await send()
    finally:
        view.serve = original  # type: ignore[method-assign]
    return served, expected


def payload_of(document: str, variables: Any, operation: str | None, assistant: str) -> dict:
    if variables is not None:
        variables = {k: assistant if v == "$A" else v for k, v in variables.items()}
    payload: dict[str, Any] = {"query": document}
    if variables is not None:
        payload["variables"] = variables
    if operation is not None:
        payload["operationName"] = operation
    return payload


@pytest.mark.parametrize(
    ("name", "method", "document", "variables", "operation"), CASES, ids=[c[0] for c in CASES]
)
async def test_engine_answers_as_strawberry(
    app: Starlette,
    client: httpx.AsyncClient,
    org: Any,
    make_assistant: Any,
    name: str,
    method: str,
    document: str,
    variables: Any,
    operation: str | None,
) -> None:
    assistant = await make_assistant(org, name="Bot", generate_secret_key=True)
    await client.post(
        f"/orgs/c/assistants/{assistant['id']}/integrations",
        json={"integration_id": "internal", "config": {"a": [1, {"b": None}]}},
        headers=org.headers,
    )
    payload = payload_of(document, variables, operation, assistant["id"])
    served, expected = await both(app, client, method, payload, org.headers)
    assert served.status_code == expected.status_code, (served.text, expected.text)
    assert normalised(served.text) == normalised(expected.text)
    assert served.headers["content-type"] == expected.headers["content-type"]
    assert_costed(served)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}], ids=["none", "bad"])
async def test_engine_answers_auth_failures_as_strawberry(
    app: Starlette, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    payload = {"query": LIST, "variables": {"n": 1, "skip": True}}
    served, expected = await both(app, client, "POST", payload, headers)
    assert (served.status_code, normalised(served.text)) == (
        expected.status_code,
        normalised(expected.text),
    )
    assert served.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert_costed(served)


async def test_engine_masks_unexpected_errors_as_strawberry(
    app: Starlette, client: httpx.AsyncClient, org: Any, make_assistant: Any, monkeypatch: Any
) -> None:
    assistant = await make_assistant(org)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr("app.graphql.assistants.children_if_asked", broken)
    payload = {"query": UPDATE, "variables": {"id": assistant["id"], "name": "x", "dry": True}}
    served, expected = await both(app, client, "POST", payload, org.headers)
    assert normalised(served.text) == normalised(expected.text)
    assert_costed(served)
    assert "secret detail" not in served.text
    assert served.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"


async def test_engine_hides_suggestions_as_strawberry(make_client: Any, org: Any) -> None:
    client = await make_client(graphql_introspection=False)
    app = client._transport.app  # type: ignore[attr-defined]
    for document in ["{ assistan { id } }", "{ __schema { types { name } } }"]:
        served, expected = await both(app, client, "POST", {"query": document}, org.headers)
        assert normalised(served.text) == normalised(expected.text)
        assert_costed(served)
        assert "Did you mean" not in served.text


async def test_each_document_text_is_prepared_once(app: Starlette, monkeypatch: Any) -> None:
    engine: Engine = graphql_view(app).engine
    calls: list[str] = []
    prepare = engine._prepare

    def counted(text: str) -> Any:
        calls.append(text)
        return prepare(text)

    monkeypatch.setattr(engine, "_prepare", counted)
    for _ in range(3):
        engine.prepare("{ __typename }")
        engine.prepare("{ a: __typename }")
    assert calls == ["{ __typename }", "{ a: __typename }"]
    for i in range(DOCUMENT_CACHE_SIZE + 5):  # bounded: the oldest texts are forgotten
        engine.prepare(f"{{ a{i}: __typename }}")
    assert len(engine._documents) == DOCUMENT_CACHE_SIZE
