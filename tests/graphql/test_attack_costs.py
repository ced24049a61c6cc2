"""What the attacks of issue 23 cost the server per request (docs/graphql-bounds.md): an
introspection-only request that was answered before is answered again from memory (the same
bytes, the same points spent); aliases of one assistant in a query read its children once; a
registration of a persisted document without a key is refused before its text is parsed."""

from __future__ import annotations

import hashlib
from typing import Any

from graphql import get_introspection_query, graphql_sync
from sqlalchemy import select

from app.graphql import execution
from app.graphql.schema import build_schema
from app.models import PersistedDocument
from tests.helpers.statements import statements

INTROSPECTION = (
    "query I { a: __schema { types { name fields { name } } } b: __schema { queryType { name } } }"
)
TYPE = "query T($n: String!) { __type(name: $n) { name fields { name } } __typename }"
TABLE = PersistedDocument.__table__  # type: ignore[attr-defined]


async def post(client: Any, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return await client.post("/graphql", json=body, headers=headers or {})


async def test_introspection_answers_the_same_bytes_and_spends_its_points_each_time(client):
    first = await post(client, {"query": INTROSPECTION})
    second = await post(client, {"query": INTROSPECTION})
    assert first.status_code == second.status_code == 200
    one, two = first.json(), second.json()
    assert one["data"]["b"] == {"queryType": {"name": "Query"}}
    assert "Assistant" in {t["name"] for t in one["data"]["a"]["types"]}
    assert first.content.split(b',"extensions"')[0] == second.content.split(b',"extensions"')[0]
    cost_one, cost_two = one["extensions"]["cost"], two["extensions"]["cost"]
    assert cost_one["requested"] == cost_two["requested"] >= 4_000  # 2,000 per __schema
    assert cost_two["pointsRemaining"] < cost_one["pointsRemaining"]


async def test_introspection_answers_by_variables(client):
    """The remembered answer is per (text, operationName, variables)."""
    answers = []
    for name in ("Assistant", "Integration", "Assistant", "Nope"):
        response = await post(client, {"query": TYPE, "variables": {"n": name}})
        assert response.status_code == 200
        answers.append(response.json()["data"])
    assert answers[0]["__type"]["name"] == "Assistant"
    assert answers[1]["__type"]["name"] == "Integration"
    assert answers[2] == answers[0]
    assert answers[3] == {"__type": None, "__typename": "Query"}
    missing = await post(client, {"query": TYPE, "variables": {}})
    assert missing.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_aliases_of_one_assistant_read_its_children_once(client, org, db, make_assistant):
    made = await make_assistant(org, name="Ada")
    base = f"/orgs/{org.org_id}/assistants/{made['id']}/integrations"
    for i in range(3):
        body = {"integration_id": "internal", "config": {"n": i}}
        created = await client.post(base, json=body, headers=org.headers)
        assert created.status_code == 201, created.text
    fields = " ".join(
        f"a{i}: assistant(orgId: $o, id: $a) {{ integrations {{ config }} }}" for i in range(5)
    )
    query = f"query Q($o: ID!, $a: ID!) {{ {fields} }}"
    variables = {"o": org.org_id, "a": made["id"]}
    with statements(db) as seen:
        response = await post(client, {"query": query, "variables": variables}, org.headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    configs = [{"config": {"n": i}} for i in range(3)]
    assert data == {f"a{i}": {"integrations": configs} for i in range(5)}
    children = [s for s in seen if "union all" in s.lower()]
    assert len(children) == 1, seen


async def test_a_mutation_reads_its_children_again(client, org, make_assistant):
    """Each field of a mutation sees what the ones before it wrote."""
    made = await make_assistant(org, name="Ada")
    rename = (
        'updateAssistant(orgId: $o, assistantId: $a, input: {name: "%s"}) { integrations { id } }'
    )
    create = 'createIntegration(orgId: $o, assistantId: $a, input: {integrationId: "internal"})'
    fields = f"a: {rename % 'B'} i: {create} {{ id }} b: {rename % 'C'}"
    update = f"mutation M($o: ID!, $a: ID!) {{ {fields} }}"
    variables = {"o": org.org_id, "a": made["id"]}
    response = await post(client, {"query": update, "variables": variables}, org.headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["a"] == {"integrations": []}
    assert data["b"] == {"integrations": [{"id": data["i"]["id"]}]}


async def test_a_registration_without_a_key_is_not_parsed(client, org, db):
    """Without a key even a document that does not validate answers the hint (its text is
    never parsed); with the key it answers its errors; nothing is stored either way."""
    text = "query Q { nope }"
    body = {
        "query": text,
        "extensions": {
            "persistedQuery": {
                "version": 1,
                "sha256Hash": hashlib.sha256(text.encode()).hexdigest(),
            }
        },
    }
    keyless = await post(client, body)
    assert keyless.status_code == 200
    assert keyless.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert "needs a valid API key" in keyless.json()["errors"][0]["message"]
    keyed = await post(client, body, org.headers)
    assert keyed.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    async with db.read() as tx:
        assert await tx.all(select(TABLE.c.sha256)) == []


async def test_aliased_introspection_answers_each_alias_alike(client):
    """`__schema` and `__type` are completed once and kept: nine aliases, and the same selection
    in another document, answer exactly what one alias answers alone."""
    selection = "{ types { name kind fields { name type { name ofType { name } } } } }"
    alone = (await post(client, {"query": f"{{ __schema {selection} }}"})).json()["data"]
    aliased = " ".join(f"s{i}: __schema {selection}" for i in range(9))
    answer = await post(client, {"query": f"query A {{ {aliased} __typename }} # again"})
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data is not None, answer.text
    assert data == {**{f"s{i}": alone["__schema"] for i in range(9)}, "__typename": "Query"}
    kept = [value for value, _, _ in execution._introspected.values()]
    assert any(value == alone["__schema"] for value in kept)
    fragment = "fragment F on __Type { name kind fields { name type { name ofType { name } } } }"
    by_fragment = f'{{ t: __type(name: "Assistant") {{ ...F }} }} {fragment}'
    typed = (await post(client, {"query": by_fragment})).json()["data"]["t"]
    assert typed == next(t for t in alone["__schema"]["types"] if t["name"] == "Assistant")


async def test_a_long_answer_pauses_and_answers_the_same(client, settings):
    """The full introspection query completes thousands of objects (the executor lets other
    requests run every few hundred of them): its answer is graphql-core's own, twice."""
    query = get_introspection_query(descriptions=True)
    expected = graphql_sync(build_schema(settings)._schema, query)
    assert expected.errors is None
    for _ in range(2):
        response = await post(client, {"query": query})
        assert response.status_code == 200
        assert response.json()["data"] == expected.data


async def test_aliases_of_a_new_introspection_share_its_completion(client, settings):
    """Aliases of a selection not kept yet (the first one pauses on its way): each answers what
    graphql-core answers for it."""
    selection = "{ types { name fields(includeDeprecated: true) { name args { name } } } }"
    expected = graphql_sync(build_schema(settings)._schema, f"{{ __schema {selection} }}")
    assert expected.data is not None
    aliased = " ".join(f"s{i}: __schema {selection}" for i in range(5))
    response = await post(client, {"query": f"{{ {aliased} }}"})
    assert response.status_code == 200
    assert response.json()["data"] == {f"s{i}": expected.data["__schema"] for i in range(5)}
