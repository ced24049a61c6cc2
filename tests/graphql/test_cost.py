"""Query cost: worked out once per document, reported on every answer as
`extensions.cost`, and a document above GRAPHQL_MAX_COST refused before anything runs."""

from __future__ import annotations

from functools import cache
from typing import Any

import httpx
import pytest
from graphql import GraphQLSchema, OperationDefinitionNode, get_introspection_query, parse
from starlette.applications import Starlette

from app.graphql import engine as engine_module
from app.graphql.cost import operation_costs
from app.graphql.ide import EXAMPLE_QUERY
from app.graphql.schema import schema
from app.settings import Settings
from tests.helpers.factories import Org
from tests.helpers.rows import insert_children

# the attack of issue 14: 10 aliases of 100 assistants, each with 100 revisions
ONE_ATTACK = (
    'assistants(orgId: "c", first: 100) { edges { node { revisions(first: 100) { nodes { '
    "version changes { path from to } snapshot { name config { language } } } } } } }"
)
ATTACK = "{ " + " ".join(f"a{i}: {ONE_ATTACK}" for i in range(10)) + " }"
CHILDREN = "integrations { id integrationId } actions { id name config { definitions { path } } }"
# the bench's list: 100 assistants with their integrations and actions
LIST_OF_100 = (
    'query List { assistants(orgId: "c", first: 100) { totalCount '
    "pageInfo { hasNextPage endCursor } nodes { id name config { conversation { "
    "suggestedMessages } } " + CHILDREN + " } } }"
)


async def post(
    client: httpx.AsyncClient, org: Org | None, query: str, variables: Any = None
) -> httpx.Response:
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    return await client.post("/graphql", json=payload, headers=org.headers if org else {})


def requested(response: httpx.Response) -> int:
    cost: int = response.json()["extensions"]["cost"]["requested"]
    return cost


def cost_of(document: str, variables: dict[str, Any] | None = None) -> int:
    """The cost of a document's first operation, straight from the walk."""
    parsed = parse(document)
    nodes = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    return operation_costs(schema._schema, parsed, nodes)[0].of(variables)


@pytest.mark.parametrize(
    ("document", "cost"),
    [
        # the GraphiQL example: an update answering the assistant with its children
        (EXAMPLE_QUERY, 200),
        (LIST_OF_100, 20_100),
        (ATTACK, 101_000),
        ('{ assistants(orgId: "c") { totalCount pageInfo { endCursor } } }', 20),
        ('{ assistants(orgId: "c", first: null) { edges { cursor node { id } } } }', 20),
        # a connection selected without any argument: its default page
        ('{ assistant(orgId: "c", id: "x") { revisions { totalCount } } }', 20),
        # an edge and its node are one item; `nodes` beside `edges` counts what it selects
        ('{ assistants(orgId: "c", first: 5) { edges { node { integrations { id } } } } }', 505),
        # a revision's changes and snapshot, and an action's definitions, add nothing
        (
            '{ assistant(orgId: "c", id: "x") { revisions(first: 7) { nodes { '
            "changes { path } snapshot { config { conversation { suggestedMessages } } } } } } }",
            7,
        ),
        ('{ assistant(orgId: "c", id: "x") { id config { tts { voiceId } } } }', 0),
        # fragments count where they are spread, aliases separately
        (
            '{ a: assistant(orgId: "c", id: "x") { ...F } b: assistant(orgId: "c", id: "y") '
            "{ ...F ... on Assistant { actions { id } } } } "
            "fragment F on Assistant { integrations { id } }",
            300,
        ),
        (
            'query { assistants(orgId: "c", first: 3) { ...C } } '
            "fragment C on AssistantConnection { nodes { ...A } } "
            "fragment A on Assistant { integrations { id } "
            "revisions(first: 2) { nodes { version } } }",
            3 + 3 * (100 + 2),
        ),
        # a `first` its resolver refuses counts as the nearest bound
        ('{ assistants(orgId: "c", first: 1000) { nodes { id } } }', 100),
        ('{ assistants(orgId: "c", first: 0) { nodes { id } } }', 1),
        ("{ __schema { types { fields { name args { name } } } } }", 2000),
        # each occurrence of __schema or __type, aliases and spreads included; __typename: 0
        (
            '{ __typename a: __schema { queryType { name } } b: __type(name: "Assistant") '
            "{ name } ...I } fragment I on Query { c: __schema { types { name } } }",
            6000,
        ),
        ('mutation { reorderActions(orgId: "c", assistantId: "x", positions: []) { id } }', 100),
    ],
    ids=[
        "graphiql example",
        "list of 100 with children",
        "issue 14 attack",
        "connection without items",
        "null first",
        "no arguments at all",
        "edges and nodes",
        "lists inside an item",
        "plain objects",
        "fragments and aliases",
        "nested fragments",
        "first too large",
        "first too small",
        "introspection",
        "introspection aliased and spread",
        "a list of actions",
    ],
)
def test_the_cost_of_a_document(document: str, cost: int) -> None:
    assert cost_of(document) == cost


def test_variables_finish_the_cost() -> None:
    document = (
        'query($n: Int, $m: Int = 5) { assistants(orgId: "c", first: $n) { edges { node { '
        "...F } } } } fragment F on Assistant { integrations { id } revisions(first: $m) { "
        "nodes { version } } }"
    )
    per_assistant = 1 + 100  # itself and its integrations, plus its revisions
    assert cost_of(document, {"n": 50}) == 50 * (per_assistant + 5)
    assert cost_of(document, {"n": 50, "m": None}) == 50 * (per_assistant + 20)
    assert cost_of(document, {}) == 20 * (per_assistant + 5)
    assert cost_of(document, {"n": 100, "m": 100}) == 100 * (per_assistant + 100)
    assert cost_of(document, {"n": 7000, "m": -3}) == 100 * (per_assistant + 1)


async def test_the_attack_is_refused_before_anything_runs(
    app: Starlette, client: httpx.AsyncClient, org: Org
) -> None:
    statements: list[str] = []
    app.state.db.statement_listeners.append(statements.append)
    response = await post(client, org, ATTACK)
    assert response.status_code == 200
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "the operation costs 101000 (the list items its answer may hold); "
                "at most 25000 are allowed",
                "locations": [{"line": 1, "column": 1}],
                "extensions": {
                    "code": "GRAPHQL_VALIDATION_FAILED",
                    "cost": 101_000,
                    "maxCost": 25_000,
                },
            }
        ],
        "extensions": {"cost": {"requested": 101_000, "pointsRemaining": 9_999}},
    }
    assert statements == []  # not even the key was looked up


async def test_the_list_of_100_with_children_runs_and_reports_its_cost(
    client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Any
) -> None:
    for n in range(3):
        created = await make_assistant(org, name=f"a{n}")
        await insert_children(db, org.org_id, created["id"], integrations=2, actions=1)
    response = await post(client, org, LIST_OF_100)
    body = response.json()
    assert "errors" not in body
    nodes = body["data"]["assistants"]["nodes"]
    assert [(len(n["integrations"]), len(n["actions"])) for n in nodes] == [(2, 1)] * 3
    assert body["extensions"] == {"cost": {"requested": 20_100, "pointsRemaining": 10_000 - 201}}


async def test_variables_change_the_cost_of_one_document(
    client: httpx.AsyncClient, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    walks: list[int] = []

    def counted(*args: Any) -> Any:
        walks.append(1)
        return operation_costs(*args)

    monkeypatch.setattr(engine_module, "operation_costs", counted)
    both = f"nodes {{ {CHILDREN} }}"
    document = (
        f'query Two($n: Int) {{ a: assistants(orgId: "c", first: $n) {{ {both} }} '
        f'b: assistants(orgId: "c", first: $n) {{ {both} }} }}'
    )
    assert requested(await post(client, org, document, {"n": 1})) == 2 * (1 + 200)
    assert requested(await post(client, org, document, {"n": 50})) == 2 * 50 * 201
    assert requested(await post(client, org, document)) == 2 * 20 * 201
    refused = await post(client, org, document, {"n": 100})
    [error] = refused.json()["errors"]
    assert error["message"] == (
        "'Two' costs 40200 (the list items its answer may hold); at most 25000 are allowed"
    )
    assert error["extensions"] == {
        "code": "GRAPHQL_VALIDATION_FAILED",
        "cost": 40_200,
        "maxCost": 25_000,
    }
    assert refused.json()["data"] is None
    assert requested(refused) == 40_200
    assert walks == [1]  # one walk for the text, whatever the variables


async def test_the_cost_walk_runs_once_per_document_text(
    client: httpx.AsyncClient, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    walks: list[int] = []

    def counted(*args: Any) -> Any:
        walks.append(1)
        return operation_costs(*args)

    monkeypatch.setattr(engine_module, "operation_costs", counted)
    for _ in range(3):
        assert requested(await post(client, org, LIST_OF_100)) == 20_100
        assert requested(await post(client, org, ATTACK)) == 101_000
    assert walks == [1, 1]
    # a document that does not validate is never walked (nothing of it runs)
    await post(client, org, '{ assistants(orgId: "c") { nope } }')
    assert walks == [1, 1]


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        ("{ assistant(orgId: ", None),
        ('{ assistants(orgId: "c") { nope } }', None),
        ('query($n: Int!) { assistants(orgId: "c", first: $n) { totalCount } }', {"n": "x"}),
    ],
    ids=["parse error", "validation error", "variables that do not coerce"],
)
async def test_answers_that_did_not_run_carry_their_cost(
    client: httpx.AsyncClient, org: Org, document: str, variables: Any
) -> None:
    response = await post(client, org, document, variables)
    body = response.json()
    assert body["data"] is None
    assert body["errors"]
    expected = 20 if variables else 0  # a valid document reports its cost even when refused
    assert body["extensions"]["cost"] == {"requested": expected, "pointsRemaining": 9_999}


async def test_request_errors_carry_the_cost_too(client: httpx.AsyncClient, org: Org) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "query A { __typename } query B { __typename }"},
        headers=org.headers,
    )
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": "the document holds several operations: name the one to run in "
                "'operationName'",
                "extensions": {"code": "BAD_REQUEST"},
            }
        ],
        "extensions": {"cost": {"requested": 0, "pointsRemaining": 9_999}},
    }


async def test_the_maximum_is_a_setting(make_client: Any, settings: Settings, org: Org) -> None:
    assert Settings(_env_file=None).graphql_max_cost == 25_000  # type: ignore[call-arg]
    client = await make_client(graphql_max_cost=200)
    assert requested(await post(client, org, EXAMPLE_QUERY)) == 200  # not refused
    two = '{ assistants(orgId: "c", first: 2) { nodes { ' + CHILDREN + " } } }"
    refused = await post(client, org, two)
    [error] = refused.json()["errors"]
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED", "cost": 402, "maxCost": 200}


def aliased_introspection(count: int) -> str:
    """`count` aliases of the full introspection query (graphql-core's, as GraphiQL sends it)."""
    full = get_introspection_query(descriptions=True)
    start = full.index("__schema {") + len("__schema {")
    end = full.index("\n  }\n}\n", start)  # the end of `__schema { … }`
    fragments = full[full.index("fragment FullType") :]
    schema_fragment = f"fragment Schema on __Schema {{{full[start:end]}\n}}\n"
    fields = " ".join(f"s{n}: __schema {{ ...Schema }}" for n in range(count))
    return f"query Introspection {{ {fields} }}\n{schema_fragment}{fragments}"


async def test_introspection_costs_2000_items_and_spends_the_addresss_points(
    client: httpx.AsyncClient, org: Org
) -> None:
    """Without a key, introspection spends the points of the caller's address: 10 aliased full
    introspection queries cost 20,000 (200 points)."""
    once = await post(client, None, aliased_introspection(1))
    assert once.status_code == 200
    assert "errors" not in once.json()
    assert once.json()["extensions"]["cost"] == {"requested": 2000, "pointsRemaining": 9_980}
    ten = await post(client, None, aliased_introspection(10))
    assert len(ten.json()["data"]) == 10
    assert ten.json()["extensions"]["cost"] == {"requested": 20_000, "pointsRemaining": 9_780}
    # with other lists, it passes the maximum as they would (10 root fields at most)
    mixed = aliased_introspection(9).replace(
        "query Introspection { ",
        'query Introspection { assistants(orgId: "c", first: 100) '
        "{ nodes { integrations { id } } } ",
    )
    refused = (await post(client, None, mixed)).json()
    assert refused["errors"][0]["extensions"] == {
        "code": "GRAPHQL_VALIDATION_FAILED",
        "cost": 18_000 + 100 * 101,
        "maxCost": 25_000,
    }
    assert refused["extensions"]["cost"] == {"requested": 28_100, "pointsRemaining": 9_779}
    with_key = await post(client, org, aliased_introspection(1))
    assert with_key.json()["extensions"]["cost"]["requested"] == 2000


async def test_introspection_spends_until_the_addresss_points_are_gone(
    make_client: Any, org: Org
) -> None:
    client = await make_client(graphql_points=450)
    answered = await post(client, None, aliased_introspection(10))
    assert answered.json()["extensions"]["cost"]["pointsRemaining"] == 250
    assert (await post(client, None, aliased_introspection(10))).status_code == 200
    refused = await post(client, None, aliased_introspection(10))
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert "data" not in refused.json()
    own = await post(client, org, "{ __typename }")  # a key's points are its own
    assert own.status_code == 200


@cache
def served_schema() -> GraphQLSchema:
    """The schema served (the federation subgraph, with `_entities`), built once."""
    from app.graphql.schema import build_schema

    return build_schema()._schema


def subgraph_cost_of(document: str, variables: dict[str, Any] | None = None) -> int:
    parsed = parse(document)
    nodes = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    return operation_costs(served_schema(), parsed, nodes)[0].of(variables)


NODES_WITH_CHILDREN = "nodes(ids: $ids) { id ... on Assistant { " + CHILDREN + " } }"


def test_lists_by_id_cost_their_length() -> None:
    """`nodes(ids:)` and `_entities(representations:)` hold one item per id, each with what it
    selects: a literal list counts its items, a variable its value's, per request."""
    assert cost_of('{ nodes(ids: ["a", "b", "c"]) { id } }') == 3
    assert cost_of('{ nodes(ids: "a") { id } }') == 1  # one value is a list of one
    assert cost_of('{ node(id: "a") { id ... on Assistant { integrations { id } } } }') == 100
    document = "query($ids: [ID!]!) { " + NODES_WITH_CHILDREN + " }"
    assert cost_of(document, {"ids": ["a"] * 7}) == 7 * (1 + 100 + 100)
    assert cost_of(document, {"ids": []}) == 0
    with_default = 'query($ids: [ID!]! = ["a", "b"]) { ' + NODES_WITH_CHILDREN + " }"
    assert cost_of(with_default, {}) == 2 * 201
    assert cost_of(with_default, {"ids": ["a"] * 4}) == 4 * 201
    entities = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Assistant { id } } }"
    assert subgraph_cost_of(entities, {"r": [{"__typename": "Assistant", "id": "a"}] * 9}) == 9
    literal = '{ _entities(representations: [{__typename: "Assistant", id: "a"}]) { __typename } }'
    assert subgraph_cost_of(literal) == 1
