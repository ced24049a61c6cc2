"""The cheap reads of environments (docs/releases.md), on both databases: the runtime's read is
one statement with no transaction around it, its 304 never reads the document; GraphQL's
`Assistant.environments` costs one statement for a whole page of assistants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from app.models import ApiKey
from app.store import Store
from tests.helpers.factories import Org
from tests.helpers.keys import READ, WRITE, make_key
from tests.helpers.statements import statements

KEYS = ApiKey.__table__  # type: ignore[attr-defined]


def url(assistant_id: str, tail: str = "") -> str:
    return f"/orgs/c/assistants/{assistant_id}{tail}"


async def assistant_with_releases(client: httpx.AsyncClient, org: Org, name: str) -> str:
    """An assistant with releases 1 and 2, `production` at 2 and `staging` at 1."""
    created = await client.post("/orgs/c/assistants", json={"name": name}, headers=org.headers)
    assistant_id: str = created.json()["id"]
    for environment in ("staging", "production"):
        body = {"environment": environment, "note": f"{name} {environment}"}
        made = await client.post(url(assistant_id, "/releases"), json=body, headers=org.headers)
        assert made.status_code == 201, made.text
        await client.patch(url(assistant_id), json={"name": f"{name}+"}, headers=org.headers)
    return assistant_id


async def test_the_runtime_read_is_one_statement_answering_the_stored_document(client, org, db):
    aid = await assistant_with_releases(client, org, "A")
    release = await client.get(url(aid, "/releases/2"), headers=org.headers)
    with statements(db) as seen:
        read = await client.get(url(aid, "/environments/production"), headers=org.headers)
    assert read.status_code == 200
    assert read.content == release.content  # the stored text, byte for byte
    assert read.headers["etag"] == '"2"'
    assert read.headers["content-type"] == "application/json"
    assert read.headers["cache-control"] == "no-store"
    assert read.headers["x-content-type-options"] == "nosniff"
    assert len(seen) == 1, seen  # the key and the environment together; no BEGIN, no COMMIT
    assert "api_keys" in seen[0]
    assert "assistant_environments" in seen[0]


async def test_if_none_match_answers_304_with_one_statement(client, org, db):
    aid = await assistant_with_releases(client, org, "A")
    for header in ('"2"', 'W/"2"', '"1", "2"', "*", ' "2" '):
        with statements(db) as seen:
            read = await client.get(
                url(aid, "/environments/production"),
                headers={**org.headers, "If-None-Match": header},
            )
        assert (read.status_code, read.content) == (304, b""), header
        assert read.headers["etag"] == '"2"'
        assert len(seen) == 1
    for header in ('"1"', '"3"', 'W/"1"', '"x"', '"99999999999"', ""):
        read = await client.get(
            url(aid, "/environments/production"), headers={**org.headers, "If-None-Match": header}
        )
        assert read.status_code == 200, header
        assert read.json()["number"] == 2
    staging = await client.get(
        url(aid, "/environments/staging"), headers={**org.headers, "If-None-Match": '"2"'}
    )
    assert (staging.status_code, staging.json()["number"]) == (200, 1)


async def test_the_runtime_read_refuses_in_order(client, org, other_org, db):
    aid = await assistant_with_releases(client, org, "A")
    path = url(aid, "/environments/production")

    async def code(headers: dict[str, str], at: str = path) -> tuple[int, str]:
        refused = await client.get(at, headers=headers)
        return refused.status_code, refused.json()["code"]

    assert await code({}) == (401, "UNAUTHENTICATED")
    assert await code({"Authorization": "Bearer nope"}) == (401, "UNAUTHENTICATED")
    assert await code(other_org.headers, f"/orgs/{org.org_id}/assistants/{aid}/environments/x") == (
        403,
        "FORBIDDEN",
    )
    writer = await make_key(client, org, [WRITE])
    assert await code(writer.headers) == (403, "INSUFFICIENT_SCOPE")
    # another organisation's assistant, a restricted key's other assistant, unknown names
    assert await code(other_org.headers) == (404, "NOT_FOUND")
    bound = await make_key(client, org, [READ], assistant_ids=[await make_assistant(client, org)])
    assert await code(bound.headers) == (404, "NOT_FOUND")
    for name in ("qa", "Bad_Name", "x" * 40):
        assert await code(org.headers, url(aid, f"/environments/{name}")) == (404, "NOT_FOUND")
    reader = await make_key(client, org, [READ])
    ok = await client.get(path, headers={**reader.headers, "If-None-Match": '"2"'})
    assert ok.status_code == 304
    await expire(db, reader.key_id)
    assert await code(reader.headers) == (401, "UNAUTHENTICATED")
    revoked = await client.delete(f"/orgs/c/api-keys/{writer.key_id}", headers=org.headers)
    assert revoked.status_code in (200, 204)
    assert await code(writer.headers) == (401, "UNAUTHENTICATED")


async def make_assistant(client: httpx.AsyncClient, org: Org) -> str:
    created = await client.post("/orgs/c/assistants", json={"name": "B"}, headers=org.headers)
    assistant_id: str = created.json()["id"]
    return assistant_id


async def expire(db: Store, key_id: str) -> None:
    async with db.write() as tx:
        past = datetime.now(UTC) - timedelta(minutes=1)
        await tx.execute(update(KEYS).where(KEYS.c.id == key_id).values(expires_at=past))


LIST = """
query($first: Int!) {
  assistants(orgId: "c", first: $first) {
    nodes {
      id
      environments { name updatedAt release { number version note assistant } }
      environment(name: "staging") { name release { number } }
    }
  }
}
"""


async def listed(
    client: httpx.AsyncClient, db: Store, org: Org, first: int
) -> tuple[dict[str, Any], int]:
    with statements(db) as seen:
        response = await client.post(
            "/graphql", json={"query": LIST, "variables": {"first": first}}, headers=org.headers
        )
    body = response.json()
    return body, sum("assistant_environments" in s for s in seen)


async def test_graphql_environments_of_a_page_are_one_statement(client, org, db):
    ids = [await assistant_with_releases(client, org, f"A{n}") for n in range(6)]
    bare = await make_assistant(client, org)
    one, cost_of_one = await listed(client, db, org, 1)
    body, cost_of_all = await listed(client, db, org, 10)
    nodes = body["data"]["assistants"]["nodes"]
    assert len(one["data"]["assistants"]["nodes"]) == 1
    assert len(nodes) == 7
    assert cost_of_one == cost_of_all == 1  # `environment(name)` shares that read too
    by_id = {node["id"]: node for node in nodes}
    assert by_id[bare]["environments"] == []
    assert by_id[bare]["environment"] is None  # without `staging`: null, and NOT_FOUND
    [error] = body["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["path"] == ["assistants", "nodes", nodes.index(by_id[bare]), "environment"]
    for aid in ids:
        rest = (await client.get(url(aid, "/environments"), headers=org.headers)).json()
        expected = [
            {
                "name": environment["name"],
                "updatedAt": environment["updated_at"],
                "release": {
                    "number": environment["number"],
                    "version": environment["version"],
                    "note": environment["note"],
                    "assistant": environment["assistant"],
                },
            }
            for environment in rest
        ]
        assert by_id[aid]["environments"] == expected
        assert [e["name"] for e in expected] == ["production", "staging"]
        assert by_id[aid]["environment"] == {"name": "staging", "release": {"number": 1}}
