"""GraphQL over HTTP: `application/graphql-response+json` for a client that
accepts it, and then 400 without `data` for a request that fails before it runs (parse,
validation, limits, cost, variable coercion); `application/json` keeps section 5 exactly."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.graphql.view import GRAPHQL_RESPONSE, response_media_type
from app.models import Assistant
from tests.helpers.graphql_answers import ANY

CREATE = (
    'mutation Make($name: String!) { createAssistant(orgId: "c", input: {name: $name}) { id } }'
)
TOO_DEEP = (
    '{ assistant(orgId: "c", id: "x") { revisions { edges { node { snapshot { config '
    "{ conversation { threadMode suggestedMessages { x { y { z } } } } } } } } } } }"
)
TOO_COSTLY = (
    '{ assistants(orgId: "c", first: 100) { nodes { revisions(first: 100) { nodes { version } } '
    "integrations { id } actions { id } } } }"
)

# (failure, request body, the code of its first error)
FAILURES: list[tuple[str, dict[str, Any], str]] = [
    ("parse", {"query": "{ assistant(orgId: "}, "GRAPHQL_PARSE_FAILED"),
    ("validation", {"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED"),
    ("depth limit", {"query": TOO_DEEP}, "GRAPHQL_VALIDATION_FAILED"),
    ("cost", {"query": TOO_COSTLY}, "GRAPHQL_VALIDATION_FAILED"),
    ("coercion", {"query": CREATE, "variables": {"name": {"not": "a string"}}}, "BAD_USER_INPUT"),
    ("missing variable", {"query": CREATE, "variables": {}}, "BAD_USER_INPUT"),
]


async def count_assistants(db: Any) -> int:
    async with db.read() as tx:
        return int(await tx.scalar(select(func.count()).select_from(Assistant)) or 0)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("text/html", "application/json"),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE),
        ("application/json, application/graphql-response+json", GRAPHQL_RESPONSE),
        ("application/graphql-response+json;q=0.5, application/json", "application/json"),
        ("application/graphql-response+json;q=0", "application/json"),
        ("Application/GraphQL-Response+JSON; charset=utf-8", GRAPHQL_RESPONSE),
    ],
)
def test_the_media_type_follows_the_accept_header(accept: str, expected: str):
    assert response_media_type(accept) == expected


@pytest.mark.parametrize(("failure", "body", "code"), FAILURES, ids=[f[0] for f in FAILURES])
async def test_failures_before_execution_are_400_without_data(client, org, db, failure, body, code):
    response = await client.post(
        "/graphql", json=body, headers={**org.headers, "Accept": GRAPHQL_RESPONSE}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    answer = response.json()
    assert "data" not in answer
    assert answer["errors"][0]["extensions"]["code"] == code
    assert answer["extensions"] == {"cost": {"requested": ANY, "pointsRemaining": ANY}}
    assert await count_assistants(db) == 0


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
@pytest.mark.parametrize(("failure", "body", "code"), FAILURES, ids=[f[0] for f in FAILURES])
async def test_application_json_keeps_200_and_data_null(
    client, org, db, accept, failure, body, code
):
    headers = dict(org.headers)
    if accept is not None:
        headers["Accept"] = accept
    response = await client.post("/graphql", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert list(answer) == ["data", "errors", "extensions"]
    assert answer["data"] is None
    assert answer["errors"][0]["extensions"]["code"] == code
    assert await count_assistants(db) == 0


async def test_a_good_request_is_200_in_either_media_type(client, org, db):
    for accept in (GRAPHQL_RESPONSE, "application/json"):
        response = await client.post(
            "/graphql",
            json={"query": CREATE, "variables": {"name": f"made for {accept}"}},
            headers={**org.headers, "Accept": accept},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == accept
        assert response.json()["data"]["createAssistant"]["id"]
    assert await count_assistants(db) == 2


async def test_errors_while_running_keep_data_and_200(client, org):
    """An error of a resolver is not a request failure: `data` is there, the status 200."""
    response = await client.post(
        "/graphql",
        json={"query": '{ assistant(orgId: "c", id: "nope") { id } }'},
        headers={**org.headers, "Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    answer = response.json()
    assert answer["data"] == {"assistant": None}
    assert answer["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_http_level_refusals_answer_in_the_accepted_media_type(client, org, db):
    headers = {**org.headers, "Accept": GRAPHQL_RESPONSE}
    missing = await client.post("/graphql", json={"notquery": "{ __typename }"}, headers=headers)
    assert missing.status_code == 400
    assert missing.headers["content-type"] == GRAPHQL_RESPONSE
    assert missing.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    form = await client.post(
        "/graphql", content=b"query={__typename}", headers={**headers, "Content-Type": "text/plain"}
    )
    assert form.status_code == 415
    assert form.headers["content-type"] == GRAPHQL_RESPONSE
    mutation = await client.get(
        "/graphql",
        params={"query": CREATE, "variables": '{"name": "over GET"}'},
        headers=headers,
    )
    assert mutation.status_code == 400
    assert mutation.headers["content-type"] == GRAPHQL_RESPONSE
    assert mutation.json()["errors"][0]["message"] == "mutations are not allowed when using GET"
    assert await count_assistants(db) == 0


async def test_queries_over_get_in_graphql_response_json(client, org):
    response = await client.get(
        "/graphql",
        params={
            "query": 'query Q($n: Int) { assistants(orgId: "c", first: $n) { totalCount } }',
            "variables": '{"n": 5}',
        },
        headers={**org.headers, "Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    assert response.json()["data"] == {"assistants": {"totalCount": 0}}
