"""Unexpected failures are masked (an error id in the answer, the traceback under the same id in
the log); domain errors keep their codes; with introspection off, nothing leaks schema names."""

from __future__ import annotations

import logging
import re

import pytest

import app.graphql.assistants
import app.rest.assistants
from tests.helpers.graphql_answers import answer

LEAK = "boom: SELECT secret_key FROM assistants"
UPDATE = """
mutation($id: ID!) {
  updateAssistant(orgId: "c", assistantId: $id, input: {name: "changed"}) { id name }
}
"""


async def explode(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError(LEAK)


def logged_with_traceback(caplog: pytest.LogCaptureFixture, error_id: str) -> None:
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError
    assert LEAK in str(record.exc_info[1])


async def test_graphql_masks_an_unexpected_error(
    gql, org, make_assistant, stored, monkeypatch, caplog
):
    created = await make_assistant(org)
    before = await stored(created["id"])
    monkeypatch.setattr(app.graphql.assistants, "update_assistant", explode)
    body = await gql(UPDATE, {"id": created["id"]}, org)
    [error] = body["errors"]
    error_id = error["extensions"]["errorId"]
    assert re.fullmatch(r"[0-9a-f]{32}", error_id)
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "errorId": error_id}
    assert error["message"] == f"Internal server error (error id {error_id})"
    assert "SELECT" not in str(body)
    assert "Traceback" not in str(body)
    logged_with_traceback(caplog, error_id)
    assert await stored(created["id"]) == before


async def test_rest_masks_an_unexpected_error(
    client, org, make_assistant, stored, monkeypatch, caplog
):
    created = await make_assistant(org)
    before = await stored(created["id"])
    monkeypatch.setattr(app.rest.assistants, "update_assistant", explode)
    response = await client.patch(
        f"/orgs/c/assistants/{created['id']}",
        json={"name": "changed"},
        headers={**org.headers, "X-Request-ID": "req-500"},
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-500"
    body = response.json()
    error_id = body["error_id"]
    assert body == {
        "type": "https://errors.assistants-api.dev/internal-server-error",
        "title": "Internal Server Error",
        "status": 500,
        "detail": f"an unexpected error occurred (error id {error_id})",
        "code": "INTERNAL_SERVER_ERROR",
        "errors": [],
        "error_id": error_id,
    }
    logged_with_traceback(caplog, error_id)
    assert await stored(created["id"]) == before
    assert (await client.get("/healthz")).status_code == 200


async def test_domain_errors_keep_their_codes(client, gql, org):
    response = await client.get("/orgs/c/assistants/nope", headers=org.headers)
    assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
    body = await gql('{ assistant(orgId: "c", id: "nope") { id } }', org=org)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]


# --- GRAPHQL_INTROSPECTION=false ------------------------------------------------------------

MISTAKES = [
    ('{ assistant(orgId: "c", id: "x") { nme } }', {}),
    ('{ assistant(orgI: "c", id: "x") { id } }', {}),
    ('{ assistants(orgId: "c") { nodez { id } } }', {}),
    (
        'mutation { createAssistant(orgId: "c", input: {name: "x", '
        "config: {conversation: {threadMode: NEWW}}}) { id } }",
        {},
    ),
    (
        'mutation($input: CreateAssistantInput!) { createAssistant(orgId: "c", input: $input) '
        "{ id } }",
        {"input": {"nme": "x"}},
    ),
    (
        'mutation($input: CreateAssistantInput!) { createAssistant(orgId: "c", input: $input) '
        "{ id } }",
        {"input": {"name": "x", "config": {"conversation": {"threadMode": "NEWW"}}}},
    ),
]


async def post(client, org, query: str, variables: dict[str, object]) -> dict[str, object]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=org.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(("query", "variables"), MISTAKES)
async def test_suggestions_are_given_while_introspection_is_on(client, org, query, variables):
    body = await post(client, org, query, variables)
    assert "Did you mean" in str(body["errors"])


@pytest.mark.parametrize(("query", "variables"), MISTAKES)
async def test_no_suggestion_leaks_when_introspection_is_off(make_client, org, query, variables):
    closed = await make_client(graphql_introspection=False)
    body = await post(closed, org, query, variables)
    assert body["errors"]
    assert "Did you mean" not in str(body)
    assert all(e["extensions"]["code"] for e in body["errors"])


@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { types { name } } }",
        '{ __type(name: "Assistant") { fields { name } } }',
        "query { ...F } fragment F on Query { __schema { queryType { name } } }",
    ],
)
async def test_introspection_is_refused_when_off(make_client, client, query):
    closed = await make_client(graphql_introspection=False)
    response = await closed.post("/graphql", json={"query": query})
    body = response.json()
    assert body["data"] is None
    assert body["errors"]
    for error in body["errors"]:
        assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
        assert error["message"].startswith("GraphQL introspection has been disabled")
    assert "errors" not in (await client.post("/graphql", json={"query": query})).json()


async def test_typename_still_works_when_introspection_is_off(make_client):
    closed = await make_client(graphql_introspection=False)
    response = await closed.post("/graphql", json={"query": "{ __typename }"})
    assert response.json() == answer({"__typename": "Query"}, 0)
