"""A list with nested integrations and actions costs the same number of SQL statements for one
assistant as for fifty (children are loaded in batches, never one query per assistant)."""

from __future__ import annotations

from tests.helpers.rows import insert_children
from tests.helpers.statements import statements

GRAPHQL_LIST = """
{ assistants(orgId: "c", first: 100) {
    totalCount
    nodes { id name integrations { id integrationId } actions { id name position } }
} }
"""


async def make_assistants(client, db, org, count: int) -> None:
    for n in range(count):
        response = await client.post(
            "/orgs/c/assistants", json={"name": f"a{n}"}, headers=org.headers
        )
        assert response.status_code == 201
        await insert_children(db, org.org_id, response.json()["id"])


async def rest_cost(client, db, org, expected: int) -> int:
    with statements(db) as seen:
        response = await client.get("/orgs/c/assistants", headers=org.headers)
    assert response.status_code == 200
    listed = response.json()
    assert len(listed) == expected
    assert all(len(a["integrations"]) == 2 and len(a["actions"]) == 2 for a in listed)
    return len(seen)


async def graphql_cost(client, db, org, expected: int) -> int:
    with statements(db) as seen:
        response = await client.post("/graphql", json={"query": GRAPHQL_LIST}, headers=org.headers)
    body = response.json()
    assert "errors" not in body, body
    nodes = body["data"]["assistants"]["nodes"]
    assert len(nodes) == expected
    assert all(len(a["integrations"]) == 2 and len(a["actions"]) == 2 for a in nodes)
    return len(seen)


async def test_list_cost_does_not_grow_with_assistants(client, db, make_org):
    small, large = await make_org("one"), await make_org("fifty")
    await make_assistants(client, db, small, 1)
    await make_assistants(client, db, large, 50)

    rest = (await rest_cost(client, db, small, 1), await rest_cost(client, db, large, 50))
    graphql = (
        await graphql_cost(client, db, small, 1),
        await graphql_cost(client, db, large, 50),
    )
    print(f"\nSQL statements for a list of 1 / 50 assistants: REST {rest}, GraphQL {graphql}")
    assert rest[0] == rest[1]
    assert graphql[0] == graphql[1]
    assert rest[1] < 50
    assert graphql[1] < 50


async def test_a_page_keeps_each_assistants_children_in_order(client, db, org):
    """The GraphQL page sorts its children in Python: each assistant's integrations by
    creation and actions by position, as the REST document (sorted by SQL) lists them."""
    ids = []
    for n in range(4):
        created = await client.post(
            "/orgs/c/assistants", json={"name": f"o{n}"}, headers=org.headers
        )
        ids.append(created.json()["id"])
        _, actions = await insert_children(db, org.org_id, ids[-1], integrations=3, actions=3)
        moved = [{"id": a, "position": 1000 - 100 * i} for i, a in enumerate(actions[: n + 1])]
        reordered = await client.patch(
            f"/orgs/c/assistants/{ids[-1]}/actions/reorder",
            json={"positions": moved},
            headers=org.headers,
        )
        assert reordered.status_code == 200, reordered.text
    response = await client.post("/graphql", json={"query": GRAPHQL_LIST}, headers=org.headers)
    nodes = {node["id"]: node for node in response.json()["data"]["assistants"]["nodes"]}
    for assistant_id in ids:
        rest = (await client.get(f"/orgs/c/assistants/{assistant_id}", headers=org.headers)).json()
        node = nodes[assistant_id]
        assert [i["id"] for i in node["integrations"]] == [i["id"] for i in rest["integrations"]]
        assert [a["id"] for a in node["actions"]] == [a["id"] for a in rest["actions"]]
        assert [a["position"] for a in node["actions"]] == sorted(
            a["position"] for a in rest["actions"]
        )
