"""Managing API keys over REST and GraphQL: make, list, read, revoke, the caller's own key; bad
input, escalation, the cap, expiry, and when a key was last used."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.domain.documents import rfc3339
from app.models import ApiKey
from app.store import Store
from app.store.records import ApiKeyRecord
from tests.helpers.factories import Org
from tests.helpers.keys import ALL, MANAGE, READ, WRITE, everything, make_key, make_target

KEYS = ApiKey.__table__
CREATE = """
mutation($input: CreateApiKeyInput!) {
  createApiKey(orgId: "c", input: $input) {
    apiKey { id name prefix scopes assistantIds expiresAt createdAt lastUsedAt revokedAt }
    secret
  }
}"""
LIST = """
query($first: Int, $after: String) {
  apiKeys(orgId: "c", first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name } }
  }
}"""


def later(**delta: float) -> str:
    return rfc3339(datetime.now(UTC) + timedelta(**delta))


async def stored_keys(db: Store, org_id: str) -> list[Any]:
    async with db.read() as tx:
        return await tx.all(select(KEYS).where(KEYS.c.org_id == org_id), None, ApiKeyRecord)


async def test_make_a_key_and_use_it(client: httpx.AsyncClient, org: Org, db: Store) -> None:
    target = await make_target(client, org)
    expires = later(days=30)
    body = {
        "name": "  Conversation worker ",
        "scopes": [READ, READ],
        "assistant_ids": [target.assistant_id],
        "expires_at": expires,
    }
    response = await client.post("/orgs/c/api-keys", json=body, headers=org.headers)
    assert response.status_code == 201, response.text
    made = response.json()
    secret = made.pop("api_key")
    assert response.headers["location"] == f"/orgs/c/api-keys/{made['id']}"
    assert made == {
        "id": made["id"],
        "org_id": org.org_id,
        "name": "Conversation worker",
        "prefix": secret[:8],
        "scopes": [READ],
        "assistant_ids": [target.assistant_id],
        "expires_at": expires,
        "created_at": made["created_at"],
        "last_used_at": None,
        "revoked_at": None,
    }
    assert secret.startswith("ak_")
    [row] = [r for r in await stored_keys(db, org.org_id) if r.id == made["id"]]
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(row)  # only its hash is kept

    key = Org(org.org_id, made["id"], secret)
    read = await client.get(f"/orgs/c/assistants/{target.assistant_id}", headers=key.headers)
    assert read.status_code == 200
    one = await client.get(f"/orgs/c/api-keys/{made['id']}", headers=org.headers)
    assert one.status_code == 200
    assert "api_key" not in one.json()  # the secret is shown once, never again
    assert {k: v for k, v in one.json().items() if k != "last_used_at"} == {
        k: v for k, v in made.items() if k != "last_used_at"
    }


async def test_list_and_pages(client: httpx.AsyncClient, org: Org) -> None:
    made = [await make_key(client, org, [READ], name=f"key {n}") for n in range(3)]
    response = await client.get("/orgs/c/api-keys?take=2&page=2", headers=org.headers)
    assert response.status_code == 200
    assert (response.headers["pagination-count"], response.headers["pagination-page"]) == ("4", "2")
    assert response.headers["pagination-take"] == "2"
    assert [k["name"] for k in response.json()] == ["key 1", "key 2"]
    assert all("api_key" not in k for k in response.json())
    bad = await client.get("/orgs/c/api-keys?take=101", headers=org.headers)
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["path"] == "take"
    ids = [org.key_id, *(key.key_id for key in made)]
    assert [
        k["id"] for k in (await client.get("/orgs/c/api-keys", headers=org.headers)).json()
    ] == ids


async def test_graphql_list_and_make(gql: Any, org: Org, client: httpx.AsyncClient) -> None:
    await make_key(client, org, [READ], name="second")
    first = await gql(LIST, {"first": 1}, org)
    connection = first["data"]["apiKeys"]
    assert connection["totalCount"] == 2
    assert connection["pageInfo"]["hasNextPage"] is True
    after = await gql(LIST, {"first": 1, "after": connection["pageInfo"]["endCursor"]}, org)
    assert [e["node"]["name"] for e in after["data"]["apiKeys"]["edges"]] == ["second"]
    assert after["data"]["apiKeys"]["pageInfo"]["hasNextPage"] is False

    made = await gql(CREATE, {"input": {"name": "Worker", "scopes": [WRITE, READ]}}, org)
    created = made["data"]["createApiKey"]
    assert created["apiKey"]["scopes"] == [READ, WRITE]
    assert created["apiKey"]["prefix"] == created["secret"][:8]
    assert created["apiKey"]["assistantIds"] is None
    assert created["apiKey"]["expiresAt"] is None
    key = Org(org.org_id, created["apiKey"]["id"], created["secret"])
    viewer = await gql("{ viewer { orgId apiKey { id name scopes } } }", None, key)
    assert viewer["data"]["viewer"] == {
        "orgId": org.org_id,
        "apiKey": {"id": key.key_id, "name": "Worker", "scopes": [READ, WRITE]},
    }


async def test_the_current_key_with_any_scope(client: httpx.AsyncClient, org: Org) -> None:
    for scopes in ([READ], [WRITE], [MANAGE]):
        key = await make_key(client, org, scopes)
        current = await client.get("/orgs/c/api-keys/current", headers=key.headers)
        assert current.status_code == 200
        assert (current.json()["id"], current.json()["scopes"]) == (key.key_id, scopes)
        assert current.json()["last_used_at"] is not None  # this very use
    anonymous = await client.get("/orgs/c/api-keys/current")
    assert anonymous.status_code == 401


BAD_INPUT = [
    ({"name": "x", "scopes": ["assistants:delete"]}, "scopes.0", ["scopes", 0]),
    ({"name": "", "scopes": [READ]}, "name", ["name"]),
    ({"name": "   ", "scopes": [READ]}, "name", ["name"]),
    ({"name": "n" * 201, "scopes": [READ]}, "name", ["name"]),
    ({"name": "x", "scopes": []}, "scopes", ["scopes"]),
    ({"name": "x", "scopes": [READ], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at",
     ["expiresAt"]),
    ({"name": "x", "scopes": [READ], "assistant_ids": []}, "assistant_ids", ["assistantIds"]),
    ({"name": "x", "scopes": [READ], "assistant_ids": ["{theirs}"]}, "assistant_ids.0",
     ["assistantIds", 0]),
    ({"name": "x", "scopes": [READ], "assistant_ids": ["{mine}"] + [f"a{n}" for n in range(100)]},
     "assistant_ids", ["assistantIds"]),
]  # fmt: skip


def _filled(body: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    if "assistant_ids" in body:
        body = {**body, "assistant_ids": [i.format(**ids) for i in body["assistant_ids"]]}
    return body


@pytest.mark.parametrize(("body", "path", "graphql_path"), BAD_INPUT)
async def test_bad_input_names_the_field_and_makes_nothing(
    client: httpx.AsyncClient,
    gql: Any,
    db: Store,
    org: Org,
    other_org: Org,
    make_assistant: Any,
    body: dict[str, Any],
    path: str,
    graphql_path: list[Any],
) -> None:
    ids = {
        "mine": (await make_assistant(org))["id"],
        "theirs": (await make_assistant(other_org))["id"],
    }
    body = _filled(body, ids)
    before = await everything(db)
    response = await client.post("/orgs/c/api-keys", json=body, headers=org.headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"
    assert path in [e["path"] for e in response.json()["errors"]]

    names = {"name": "name", "scopes": "scopes", "assistant_ids": "assistantIds",
             "expires_at": "expiresAt"}  # fmt: skip
    answer = await gql(CREATE, {"input": {names[k]: v for k, v in body.items()}}, org)
    assert answer["data"] is None
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert graphql_path in [f["path"] for f in error["extensions"]["fields"]]
    assert await everything(db) == before


async def test_a_naive_or_malformed_expiry_is_refused(client: httpx.AsyncClient, org: Org) -> None:
    for value in ("2999-01-01T00:00:00", "tomorrow", 4102444800, "9999-12-31T23:59:59-23:59"):
        body = {"name": "x", "scopes": [READ], "expires_at": value}
        response = await client.post("/orgs/c/api-keys", json=body, headers=org.headers)
        assert response.status_code == 400, value
        assert response.json()["errors"][0]["path"] == "expires_at"


async def test_no_escalation(client: httpx.AsyncClient, gql: Any, db: Store, org: Org) -> None:
    mine = await make_target(client, org, "Mine")
    other = await make_target(client, org, "Other")
    expiry = later(days=1)
    reader = await make_key(client, org, [READ, MANAGE])
    bound = await make_key(client, org, ALL, assistant_ids=[mine.assistant_id])
    expiring = await make_key(client, org, ALL, expires_at=expiry)
    attempts = [
        (reader, {"scopes": [READ, WRITE]}, WRITE),
        (reader, {"scopes": [MANAGE, WRITE]}, WRITE),
        (bound, {"scopes": [READ]}, None),
        (bound, {"scopes": [READ], "assistant_ids": [mine.assistant_id, other.assistant_id]}, None),
        (bound, {"scopes": [READ], "assistant_ids": [other.assistant_id]}, None),
        (expiring, {"scopes": [READ]}, None),
        (expiring, {"scopes": [READ], "expires_at": later(days=2)}, None),
    ]
    before = await everything(db)
    for key, body, scope in attempts:
        response = await client.post(
            "/orgs/c/api-keys", json={"name": "more", **body}, headers=key.headers
        )
        assert (response.status_code, response.json()["code"]) == (403, "INSUFFICIENT_SCOPE"), body
        assert response.json().get("required_scope") == scope
        graphql_input = {"name": "more", "scopes": body["scopes"]}
        if "assistant_ids" in body:
            graphql_input["assistantIds"] = body["assistant_ids"]
        if "expires_at" in body:
            graphql_input["expiresAt"] = body["expires_at"]
        answer = await gql(CREATE, {"input": graphql_input}, key)
        assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert answer["errors"][0]["extensions"].get("requiredScope") == scope
    assert await everything(db) == before

    within = [
        (reader, {"scopes": [READ]}),
        (bound, {"scopes": [READ], "assistant_ids": [mine.assistant_id]}),
        (expiring, {"scopes": [WRITE], "expires_at": expiry}),
        (expiring, {"scopes": [WRITE], "expires_at": later(hours=1)}),
    ]
    for key, body in within:
        response = await client.post(
            "/orgs/c/api-keys", json={"name": "less", **body}, headers=key.headers
        )
        assert response.status_code == 201, (body, response.text)


async def test_at_most_100_unrevoked_keys(
    client: httpx.AsyncClient, gql: Any, db: Store, org: Org
) -> None:
    made = [await make_key(client, org, [READ]) for _ in range(99)]  # the first key is the 100th
    before = await everything(db)
    response = await client.post(
        "/orgs/c/api-keys", json={"name": "101st", "scopes": [READ]}, headers=org.headers
    )
    assert (response.status_code, response.json()["code"]) == (400, "VALIDATION_FAILED")
    [error] = response.json()["errors"]
    assert error["path"] == "api_keys"
    assert "at most 100 unrevoked API keys" in error["message"]
    answer = await gql(CREATE, {"input": {"name": "101st", "scopes": [READ]}}, org)
    assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert answer["errors"][0]["extensions"]["fields"][0]["path"] == ["apiKeys"]
    assert await everything(db) == before

    revoked = await client.delete(f"/orgs/c/api-keys/{made[0].key_id}", headers=org.headers)
    assert revoked.status_code == 204
    again = await client.post(
        "/orgs/c/api-keys", json={"name": "in its place", "scopes": [READ]}, headers=org.headers
    )
    assert again.status_code == 201


async def test_revoke(client: httpx.AsyncClient, gql: Any, org: Org, other_org: Org) -> None:
    doomed = await make_key(client, org, ALL)
    assert (await client.get("/orgs/c/assistants", headers=doomed.headers)).status_code == 200
    response = await client.delete(f"/orgs/c/api-keys/{doomed.key_id}", headers=org.headers)
    assert response.status_code == 204
    refused = await client.get("/orgs/c/assistants", headers=doomed.headers)
    assert (refused.status_code, refused.json()["code"]) == (401, "UNAUTHENTICATED")
    assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    shown = (await client.get(f"/orgs/c/api-keys/{doomed.key_id}", headers=org.headers)).json()
    assert shown["revoked_at"] is not None
    again = await client.delete(f"/orgs/c/api-keys/{doomed.key_id}", headers=org.headers)
    assert again.status_code == 204  # revoking a revoked key changes nothing
    after = (await client.get(f"/orgs/c/api-keys/{doomed.key_id}", headers=org.headers)).json()
    assert after["revoked_at"] == shown["revoked_at"]

    theirs = await client.delete(f"/orgs/c/api-keys/{other_org.key_id}", headers=org.headers)
    assert (theirs.status_code, theirs.json()["code"]) == (404, "NOT_FOUND")
    elsewhere = await client.get(f"/orgs/{other_org.org_id}/api-keys", headers=org.headers)
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (403, "FORBIDDEN")
    assert (await client.get("/orgs/c/assistants", headers=other_org.headers)).status_code == 200

    victim = await make_key(client, org, [READ])
    mutation = 'mutation($id: ID!) { revokeApiKey(orgId: "c", keyId: $id) { id revokedAt } }'
    answer = await gql(mutation, {"id": victim.key_id}, org)
    assert answer["data"]["revokeApiKey"]["id"] == victim.key_id
    assert answer["data"]["revokeApiKey"]["revokedAt"] is not None
    assert (await client.get("/orgs/c/assistants", headers=victim.headers)).status_code == 401
    missing = await gql(mutation, {"id": "no-such-key"}, org)
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_key_may_revoke_itself(client: httpx.AsyncClient, org: Org) -> None:
    key = await make_key(client, org, [MANAGE])
    response = await client.delete(f"/orgs/c/api-keys/{key.key_id}", headers=key.headers)
    assert response.status_code == 204
    assert (await client.get("/orgs/c/api-keys/current", headers=key.headers)).status_code == 401


async def expire(db: Store, key_id: str) -> None:
    """As if the key's time had come (its expiry set a second in the past)."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with db.write() as tx:
        await tx.execute(update(KEYS).where(KEYS.c.id == key_id).values(expires_at=past))


async def test_an_expired_key_is_401(
    client: httpx.AsyncClient, gql: Any, db: Store, org: Org
) -> None:
    key = await make_key(client, org, ALL, expires_at=later(days=1))
    assert (await client.get("/orgs/c/assistants", headers=key.headers)).status_code == 200
    await expire(db, key.key_id)
    for response in [
        await client.get("/orgs/c/assistants", headers=key.headers),
        await client.post("/orgs/c/assistants", json={"name": "x"}, headers=key.headers),
        await client.get("/orgs/c/api-keys/current", headers=key.headers),
    ]:
        assert (response.status_code, response.json()["code"]) == (401, "UNAUTHENTICATED")
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert response.json()["detail"] == "the API key has expired"
    answer = await gql('{ assistants(orgId: "c") { totalCount } }', None, key)
    assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    missing = await client.get("/orgs/c/assistants")
    assert missing.headers["www-authenticate"] == 'Bearer realm="assistants-api"'


async def test_last_used_at_is_written_once_a_minute_at_most(
    client: httpx.AsyncClient, db: Store, org: Org, make_client: Any
) -> None:
    async def stored(key_id: str) -> datetime | None:
        async with db.read() as tx:
            value: datetime | None = await tx.scalar(
                select(KEYS.c.last_used_at).where(KEYS.c.id == key_id)
            )
            return value

    async def written(key_id: str) -> datetime:
        for _ in range(1000):  # written off the request, by a task of its own
            if (value := await stored(key_id)) is not None:
                return value
            await asyncio.sleep(0.01)
        raise AssertionError("last_used_at never written")

    key = await make_key(client, org, [READ])
    await written(org.key_id)  # the maker's own use
    other_process = await make_client()  # another app on the database: its own memo
    other_db: Store = other_process._transport.app.state.db  # type: ignore[attr-defined]
    statements: list[str] = []
    for store in (db, other_db):
        store.statement_listeners.append(statements.append)
    for _ in range(20):
        assert (await client.get("/orgs/c/assistants", headers=key.headers)).status_code == 200
    first = await written(key.key_id)
    for _ in range(5):  # the other process reads "just used" with the key: it writes nothing
        response = await other_process.get("/orgs/c/assistants", headers=key.headers)
        assert response.status_code == 200
    touches = [s for s in statements if s.startswith("UPDATE api_keys")]
    assert len(touches) == 1, touches
    assert await stored(key.key_id) == first
    shown = await client.get(f"/orgs/c/api-keys/{key.key_id}", headers=org.headers)
    assert shown.json()["last_used_at"] == rfc3339(first)


async def test_no_secret_in_the_logs(
    client: httpx.AsyncClient, org: Org, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = await make_key(client, org, [READ])
    await client.get("/orgs/c/assistants", headers=key.headers)
    await client.get("/orgs/c/assistants", headers={"Authorization": "Bearer ak_wrong"})
    assert key.api_key not in caplog.text
    assert "ak_wrong" not in caplog.text


async def test_a_write_only_key_sees_what_it_wrote_but_not_the_history(
    gql: Any, client: httpx.AsyncClient, org: Org
) -> None:
    """A write's answer may show what it wrote (the assistant, its integrations and actions);
    reading its revisions needs `assistants:read`."""
    target = await make_target(client, org)
    writer = await make_key(client, org, [WRITE])
    mutation = """
    mutation($id: ID!) {
      updateAssistant(orgId: "c", assistantId: $id, input: {name: "Written"}) {
        name integrations { id } actions { id } revisions { totalCount }
      }
    }"""
    answer = await gql(mutation, {"id": target.assistant_id}, writer)
    assert answer["data"] is None  # revisions is not null: the error bubbles up
    [error] = answer["errors"]
    assert error["path"] == ["updateAssistant", "revisions"]
    assert error["extensions"] == {"code": "FORBIDDEN", "requiredScope": READ}
    shown = await client.get(f"/orgs/c/assistants/{target.assistant_id}", headers=org.headers)
    assert shown.json()["name"] == "Written"  # the write itself happened

    without_history = mutation.replace("revisions { totalCount }", "")
    answer = await gql(without_history, {"id": target.assistant_id}, writer)
    assert answer["data"]["updateAssistant"] == {
        "name": "Written",
        "integrations": [{"id": target.integration_id}],
        "actions": [{"id": target.action_id}],
    }


async def test_a_bound_key_counts_and_lists_only_its_assistants(
    gql: Any, client: httpx.AsyncClient, org: Org
) -> None:
    mine = [await make_target(client, org, f"Mine {n}") for n in range(2)]
    await make_target(client, org, "Not mine")
    bound = await make_key(client, org, [READ], assistant_ids=[t.assistant_id for t in mine])
    answer = await gql(
        '{ assistants(orgId: "c", first: 1) { totalCount pageInfo { hasNextPage endCursor } '
        "nodes { id revisions { totalCount } } } }",
        None,
        bound,
    )
    connection = answer["data"]["assistants"]
    assert connection["totalCount"] == 2
    assert connection["nodes"] == [{"id": mine[0].assistant_id, "revisions": {"totalCount": 2}}]
    after = connection["pageInfo"]["endCursor"]
    rest = await gql(
        'query($after: String) { assistants(orgId: "c", after: $after) { nodes { id } } }',
        {"after": after},
        bound,
    )
    assert rest["data"]["assistants"]["nodes"] == [{"id": mine[1].assistant_id}]
    page = await client.get("/orgs/c/assistants?take=1&page=2", headers=bound.headers)
    assert [a["id"] for a in page.json()] == [mine[1].assistant_id]
    assert page.headers["pagination-count"] == "2"


async def test_the_worked_example_of_the_readme(
    client: httpx.AsyncClient, org: Org, make_assistant: Any
) -> None:
    """README, "Keys and scopes": a read-only key for a conversation worker bound to one
    assistant."""
    assistant = (await make_assistant(org, name="Support"))["id"]
    await make_assistant(org, name="Sales")
    body = {
        "name": "conversation worker",
        "scopes": [READ],
        "assistant_ids": [assistant],
        "expires_at": later(days=180),
    }
    made = await client.post("/orgs/c/api-keys", json=body, headers=org.headers)
    assert made.status_code == 201
    worker = {"Authorization": f"Bearer {made.json()['api_key']}"}
    assert (await client.get(f"/orgs/c/assistants/{assistant}", headers=worker)).status_code == 200
    listed = await client.get("/orgs/c/assistants", headers=worker)
    assert ([a["id"] for a in listed.json()], listed.headers["pagination-count"]) == (
        [assistant],
        "1",
    )
    refused = await client.patch(
        f"/orgs/c/assistants/{assistant}", json={"name": "x"}, headers=worker
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "INSUFFICIENT_SCOPE")
    assert refused.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="assistants:write"'
    )
    revoked = await client.delete(f"/orgs/c/api-keys/{made.json()['id']}", headers=org.headers)
    assert revoked.status_code == 204
    assert (await client.get(f"/orgs/c/assistants/{assistant}", headers=worker)).status_code == 401
