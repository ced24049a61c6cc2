"""CSRF and CORS: nothing a cross-site form or a GET can send executes a mutation; CORS is closed
unless origins are allowed by CORS_ALLOW_ORIGINS."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.models import Assistant
from app.settings import Settings
from tests.helpers.graphql_answers import answer

CREATE = 'mutation { createAssistant(orgId: "c", input: {name: "csrf"}) { id } }'


async def count_assistants(db) -> int:
    async with db.read() as tx:
        return int(await tx.scalar(select(func.count()).select_from(Assistant)) or 0)


async def test_no_mutation_over_get(client, org, db):
    response = await client.get("/graphql", params={"query": CREATE}, headers=org.headers)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error == {
        "message": "mutations are not allowed when using GET",
        "extensions": {"code": "BAD_REQUEST"},
    }
    assert await count_assistants(db) == 0


async def test_several_operations_need_an_operation_name(client, org, db):
    document = CREATE.replace("mutation {", "mutation Make {") + " query Look { __typename }"
    response = await client.post("/graphql", json={"query": document}, headers=org.headers)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert "operationName" in error["message"]
    assert await count_assistants(db) == 0
    chosen = {"query": document, "operationName": "Look"}
    response = await client.post("/graphql", json=chosen, headers=org.headers)
    assert response.json() == answer({"__typename": "Query"}, 0)
    assert await count_assistants(db) == 0


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_subscriptions_run_only_over_the_websocket(client, org, method):
    query = 'subscription { assistantChanged(orgId: "c") { id } }'
    if method == "GET":
        response = await client.get("/graphql", params={"query": query}, headers=org.headers)
    else:
        response = await client.post("/graphql", json={"query": query}, headers=org.headers)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error == {
        "message": f"subscriptions are not allowed when using {method}",
        "extensions": {"code": "BAD_REQUEST"},
    }


async def test_queries_over_get_still_work(client, org):
    query = '{ assistants(orgId: "c") { totalCount } }'
    response = await client.get("/graphql", params={"query": query}, headers=org.headers)
    assert response.json() == answer({"assistants": {"totalCount": 0}}, 20)


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("text/plain", json.dumps({"query": CREATE})),
        ("text/plain;charset=UTF-8", json.dumps({"query": CREATE})),
        ("application/x-www-form-urlencoded", "query=" + CREATE),
        ("application/graphql", CREATE),
        (None, json.dumps({"query": CREATE})),
    ],
)
async def test_non_json_posts_execute_nothing(client, org, db, content_type, content):
    headers = {**org.headers, **({"content-type": content_type} if content_type else {})}
    response = await client.post("/graphql", content=content, headers=headers)
    assert response.status_code == 415
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "UNSUPPORTED_MEDIA_TYPE"}
    assert error["message"].startswith("send the request as application/json")
    assert await count_assistants(db) == 0


async def test_multipart_uploads_are_off(client, org, db):
    operations = json.dumps({"query": CREATE, "variables": {}})
    response = await client.post(
        "/graphql",
        files={"operations": (None, operations), "map": (None, "{}")},
        headers=org.headers,
    )
    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert await count_assistants(db) == 0


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_rest_refuses_form_and_text_bodies(client, org, db, make_assistant, content_type):
    created = await make_assistant(org)
    for method, url in [
        ("POST", "/orgs/c/assistants"),
        ("PATCH", f"/orgs/c/assistants/{created['id']}"),
    ]:
        response = await client.request(
            method,
            url,
            content=json.dumps({"name": "csrf"}),
            headers={**org.headers, "content-type": content_type},
        )
        assert response.status_code == 415, (method, response.text)
        assert response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert await count_assistants(db) == 1


# --- CORS -----------------------------------------------------------------------------------


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


def test_cors_is_closed_by_default():
    assert Settings(_env_file=None).cors_origins == []  # type: ignore[call-arg]


async def test_no_cors_headers_without_an_allow_list(client, org):
    response = await client.get(
        "/orgs/c/assistants", headers={**org.headers, "Origin": "https://evil.example"}
    )
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    response = await client.options("/orgs/c/assistants", headers=preflight("https://evil.example"))
    assert "access-control-allow-origin" not in response.headers
    assert response.status_code in (400, 405)


async def test_allowed_origins_get_cors_headers(make_client, org):
    http = await make_client(cors_allow_origins="https://app.example, https://admin.example")
    response = await http.options("/orgs/c/assistants/x", headers=preflight("https://app.example"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "PATCH" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers
    response = await http.get(
        "/orgs/c/assistants", headers={**org.headers, "Origin": "https://admin.example"}
    )
    assert response.headers["access-control-allow-origin"] == "https://admin.example"
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


async def test_other_origins_stay_closed_with_an_allow_list(make_client, org):
    http = await make_client(cors_allow_origins="https://app.example")
    response = await http.options("/orgs/c/assistants", headers=preflight("https://evil.example"))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    response = await http.get(
        "/orgs/c/assistants", headers={**org.headers, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in response.headers
