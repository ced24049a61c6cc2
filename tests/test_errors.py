"""The error rules on both transports: bad bodies, 401, 403, 404, 412/CONFLICT, 415,
GraphQL parse/validation errors, the public schema and GraphiQL, masked failures."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from app.auth import revoke_key
from tests.helpers.graphql_answers import answer
from tests.helpers.graphql_operations import CREATE_ASSISTANT, READ_ASSISTANT, UPDATE_ASSISTANT
from tests.helpers.rows import count_assistants

REST_CODES = {
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    412: "PRECONDITION_FAILED",
}


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code", "errors"} <= set(body)
    assert (body["status"], body["code"]) == (status, code)
    assert "Traceback" not in response.text
    return body


def graphql_code(body: dict[str, Any]) -> str:
    [error] = body["errors"]
    code: str = error["extensions"]["code"]
    return code


@pytest.fixture
async def theirs(other_org: Any, make_assistant: Any) -> dict[str, Any]:
    created: dict[str, Any] = await make_assistant(other_org, name="Theirs")
    return created


@pytest.fixture
async def mine(org: Any, make_assistant: Any) -> dict[str, Any]:
    created: dict[str, Any] = await make_assistant(org, name="Mine")
    return created


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1]", b'"x"', b"5", b"null"])
@pytest.mark.parametrize("method", ["PATCH", "POST"])
async def test_rest_body_not_a_json_object(client, org, mine, stored, raw, method):
    before = await stored(mine["id"])
    url = f"/orgs/c/assistants/{mine['id']}" if method == "PATCH" else "/orgs/c/assistants"
    headers = {**org.headers, "content-type": "application/json"}
    response = await client.request(method, url, content=raw, headers=headers)
    assert_problem(response, 400, "BAD_REQUEST")
    assert await stored(mine["id"]) == before


@pytest.mark.parametrize("raw", [b"{not json", b'"x"', b"5"])
async def test_graphql_body_not_a_json_object(client, org, raw):
    headers = {**org.headers, "content-type": "application/json"}
    response = await client.post("/graphql", content=raw, headers=headers)
    assert response.status_code == 400
    assert graphql_code(response.json()) == "BAD_REQUEST"


@pytest.fixture
async def bad_keys(org: Any, new_key: Any, db: Any) -> dict[str, dict[str, str]]:
    revoked = await new_key(org)
    async with db.write() as tx:
        await revoke_key(tx, key_id=revoked.key_id)
    return {
        "none": {},
        "unknown": {"Authorization": "Bearer ak_not-a-key"},
        "revoked": revoked.headers,
        "not-bearer": {"Authorization": f"Basic {org.api_key}"},
    }


@pytest.mark.parametrize("which", ["none", "unknown", "revoked", "not-bearer"])
async def test_rest_401(client, mine, stored, bad_keys, which):
    headers = bad_keys[which]
    url = f"/orgs/c/assistants/{mine['id']}"
    for response in [
        await client.get(url, headers=headers),
        await client.patch(url, json={"name": "x"}, headers=headers),
        await client.post("/orgs/c/assistants", json={"name": "x"}, headers=headers),
    ]:
        assert_problem(response, 401, "UNAUTHENTICATED")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await stored(mine["id"]))["name"] == "Mine"


@pytest.mark.parametrize("which", ["none", "unknown", "revoked"])
async def test_graphql_unauthenticated(client, mine, stored, bad_keys, which):
    operations = [
        (READ_ASSISTANT, {"org": "c", "id": mine["id"]}),
        (UPDATE_ASSISTANT, {"org": "c", "id": mine["id"], "input": {"name": "x"}}),
        (CREATE_ASSISTANT, {"org": "c", "input": {"name": "x"}}),
    ]
    for query, variables in operations:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=bad_keys[which]
        )
        assert response.status_code == 200
        assert response.json()["data"] in (None, {"assistant": None})
        assert graphql_code(response.json()) == "UNAUTHENTICATED"
    assert (await stored(mine["id"]))["name"] == "Mine"


async def test_rest_403_for_another_org_and_404_for_its_assistant(
    client, org, other_org, theirs, stored
):
    before = await stored(theirs["id"])
    for org_id in (other_org.org_id, "no-such-org"):
        base = f"/orgs/{org_id}/assistants"
        for response in [
            await client.get(f"{base}/{theirs['id']}", headers=org.headers),
            await client.patch(f"{base}/{theirs['id']}", json={"name": "x"}, headers=org.headers),
            await client.post(base, json={"name": "x"}, headers=org.headers),
        ]:
            body = assert_problem(response, 403, "FORBIDDEN")
            assert "Theirs" not in response.text
            assert body["errors"] == []
    for org_id in ("c", org.org_id):
        url = f"/orgs/{org_id}/assistants/{theirs['id']}"
        assert_problem(await client.get(url, headers=org.headers), 404, "NOT_FOUND")
        response = await client.patch(url, json={"name": "x"}, headers=org.headers)
        assert_problem(response, 404, "NOT_FOUND")
    assert await stored(theirs["id"]) == before


async def test_graphql_forbidden_and_not_found(gql, org, other_org, theirs, stored):
    before = await stored(theirs["id"])
    for org_id in (other_org.org_id, "no-such-org"):
        read = await gql(READ_ASSISTANT, {"org": org_id, "id": theirs["id"]}, org)
        assert (read["data"], graphql_code(read)) == ({"assistant": None}, "FORBIDDEN")
        update = await gql(
            UPDATE_ASSISTANT, {"org": org_id, "id": theirs["id"], "input": {"name": "x"}}, org
        )
        assert (update["data"], graphql_code(update)) == (None, "FORBIDDEN")
        create = await gql(CREATE_ASSISTANT, {"org": org_id, "input": {"name": "x"}}, org)
        assert graphql_code(create) == "FORBIDDEN"
    for assistant_id in (theirs["id"], "no-such-assistant"):
        read = await gql(READ_ASSISTANT, {"org": "c", "id": assistant_id}, org)
        assert (read["data"], graphql_code(read)) == ({"assistant": None}, "NOT_FOUND")
        assert read["errors"][0]["path"] == ["assistant"]
        update = await gql(
            UPDATE_ASSISTANT, {"org": "c", "id": assistant_id, "input": {"name": "x"}}, org
        )
        assert graphql_code(update) == "NOT_FOUND"
    assert await stored(theirs["id"]) == before


async def test_rest_unknown_assistant_is_404(client, org):
    url = "/orgs/c/assistants/no-such-assistant"
    assert_problem(await client.get(url, headers=org.headers), 404, "NOT_FOUND")
    response = await client.patch(url, json={}, headers=org.headers)
    assert_problem(response, 404, "NOT_FOUND")


async def test_if_match(client, org, mine, stored):
    url = f"/orgs/c/assistants/{mine['id']}"
    for stale in ['"2"', '"0"', 'W/"1"', "garbage"]:
        response = await client.patch(
            url, json={"name": "Stale"}, headers={**org.headers, "If-Match": stale}
        )
        assert_problem(response, 412, "PRECONDITION_FAILED")
    assert (await stored(mine["id"]))["name"] == "Mine"
    for tag, name in [('"1"', "One"), ('"5", "2"', "Two"), ("*", "Any")]:
        response = await client.patch(
            url, json={"name": name}, headers={**org.headers, "If-Match": tag}
        )
        assert response.status_code == 200, (tag, response.text)
        assert response.headers["etag"] == f'"{response.json()["version"]}"'
        assert (await stored(mine["id"]))["name"] == name


async def test_if_match_guards_rotate_and_delete(client, org, mine, stored):
    url = f"/orgs/c/assistants/{mine['id']}"
    before = await stored(mine["id"])
    stale = {**org.headers, "If-Match": '"7"'}
    assert_problem(
        await client.post(f"{url}/rotate-secret-key", headers=stale), 412, "PRECONDITION_FAILED"
    )
    assert_problem(await client.delete(url, headers=stale), 412, "PRECONDITION_FAILED")
    assert await stored(mine["id"]) == before
    rotated = await client.post(
        f"{url}/rotate-secret-key", headers={**org.headers, "If-Match": '"1"'}
    )
    assert rotated.status_code == 200
    assert rotated.headers["etag"] == '"2"'
    deleted = await client.delete(url, headers={**org.headers, "If-Match": '"2"'})
    assert deleted.status_code == 204
    assert (await client.get(url, headers=org.headers)).status_code == 404


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
async def test_rest_patch_415(client, org, mine, stored, content_type):
    headers = {**org.headers, **({"content-type": content_type} if content_type else {})}
    url = f"/orgs/c/assistants/{mine['id']}"
    response = await client.patch(url, content=b'{"name": "x"}', headers=headers)
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert (await stored(mine["id"]))["name"] == "Mine"


async def test_graphql_parse_and_validation_errors(gql, org):
    parse = await gql("{ assistant(orgId: ", org=org)
    assert (parse["data"], graphql_code(parse)) == (None, "GRAPHQL_PARSE_FAILED")
    invalid = await gql('{ assistant(orgId: "c") { nope } }', org=org)
    codes = {e["extensions"]["code"] for e in invalid["errors"]}
    assert codes == {"GRAPHQL_VALIDATION_FAILED"}


async def test_introspection_needs_no_key(gql):
    """It costs as a query of 2,000 items (20 points of the caller's address)."""
    body = await gql("{ __schema { queryType { name } mutationType { name } } }")
    assert body == answer(
        {"__schema": {"queryType": {"name": "Query"}, "mutationType": {"name": "Mutation"}}},
        2000,
    )


async def test_graphiql_is_served_to_a_browser(client):
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_mutation_over_get_is_refused(client, org, db):
    query = 'mutation { createAssistant(orgId: "c", input: {name: "x"}) { id } }'
    response = await client.get("/graphql", params={"query": query}, headers=org.headers)
    assert response.status_code in (400, 405)
    assert response.json()["errors"][0]["extensions"]["code"]
    assert await count_assistants(db) == 0


async def test_query_over_get_works(client, org, mine):
    query = f'{{ assistant(orgId: "c", id: "{mine["id"]}") {{ name }} }}'
    response = await client.get("/graphql", params={"query": query}, headers=org.headers)
    assert response.json() == answer({"assistant": {"name": "Mine"}}, 0)


def explode(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("secret internals: SELECT * FROM api_keys")


async def test_rest_unexpected_error_is_masked(client, org, mine, monkeypatch, caplog):
    monkeypatch.setattr("app.rest.assistants.update_assistant", explode)
    with caplog.at_level(logging.ERROR):
        response = await client.patch(
            f"/orgs/c/assistants/{mine['id']}",
            json={"name": "x"},
            headers={**org.headers, "X-Request-ID": "req-42"},
        )
    body = assert_problem(response, 500, "INTERNAL_SERVER_ERROR")
    assert response.headers["x-request-id"] == "req-42"
    assert "secret internals" not in response.text
    assert body["error_id"] in body["detail"]
    assert body["error_id"] in caplog.text


async def test_graphql_unexpected_error_is_masked(gql, org, mine, monkeypatch, caplog):
    monkeypatch.setattr("app.graphql.assistants.update_assistant", explode)
    with caplog.at_level(logging.ERROR):
        body = await gql(
            UPDATE_ASSISTANT, {"org": "c", "id": mine["id"], "input": {"name": "x"}}, org
        )
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "secret internals" not in str(body)
    assert error["extensions"]["errorId"] in error["message"]
    assert error["extensions"]["errorId"] in caplog.text
