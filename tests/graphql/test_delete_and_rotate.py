"""`deleteAssistant` and `rotateAssistantSecretKey`."""

from __future__ import annotations

import base64

from tests.helpers.graphql_answers import answer
from tests.helpers.rows import count_children, insert_children

DELETE = """
mutation($org: ID!, $id: ID!) { deleteAssistant(orgId: $org, assistantId: $id) }
"""
READ = 'query($id: ID!) { assistant(orgId: "c", id: $id) { id } }'
ROTATE = """
mutation($org: ID!, $id: ID!) {
  rotateAssistantSecretKey(orgId: $org, assistantId: $id) { id secretKey version updatedAt }
}
"""


def code(body):
    return body["errors"][0]["extensions"]["code"]


async def test_delete(gql, client, org, db, make_assistant, stored):
    created = await make_assistant(org)
    kept = await make_assistant(org, name="kept")
    await insert_children(db, org.org_id, created["id"])
    body = await gql(DELETE, {"org": "c", "id": created["id"]}, org)
    assert body == answer({"deleteAssistant": created["id"]}, 0)
    row = await stored(created["id"])
    assert (row["deleted"], row["version"]) == (True, 2)
    assert row["updated_at"] > row["created_at"]
    assert await count_children(db, created["id"]) == (0, 0)

    again = await gql(DELETE, {"org": "c", "id": created["id"]}, org)
    assert again["data"] is None
    assert code(again) == "NOT_FOUND"
    read = await gql(READ, {"id": created["id"]}, org)
    assert read["data"] == {"assistant": None}
    assert code(read) == "NOT_FOUND"
    rest = await client.get(f"/orgs/c/assistants/{created['id']}", headers=org.headers)
    assert rest.status_code == 404
    listed = await gql('{ assistants(orgId: "c") { totalCount nodes { id } } }', org=org)
    assert listed["data"]["assistants"] == {"totalCount": 1, "nodes": [{"id": kept["id"]}]}


async def test_delete_isolation(gql, org, other_org, db, make_assistant, stored):
    theirs = await make_assistant(other_org)
    await insert_children(db, other_org.org_id, theirs["id"])
    before = await stored(theirs["id"])
    assert code(await gql(DELETE, {"org": "c", "id": theirs["id"]}, org)) == "NOT_FOUND"
    other = await gql(DELETE, {"org": other_org.org_id, "id": theirs["id"]}, org)
    assert code(other) == "FORBIDDEN"
    assert code(await gql(DELETE, {"org": "c", "id": theirs["id"]})) == "UNAUTHENTICATED"
    assert await stored(theirs["id"]) == before
    assert await count_children(db, theirs["id"]) == (2, 2)


async def test_rotate(gql, org, make_assistant, stored):
    created = await make_assistant(org, generate_secret_key=True)
    keys = {created["secret_key"]}
    for version in (2, 3):
        body = await gql(ROTATE, {"org": org.org_id, "id": created["id"]}, org)
        assert "errors" not in body, body
        rotated = body["data"]["rotateAssistantSecretKey"]
        assert (rotated["id"], rotated["version"]) == (created["id"], version)
        key = rotated["secretKey"]
        assert len(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))) >= 32
        assert key not in keys
        keys.add(key)
        row = await stored(created["id"])
        assert (row["secret_key"], row["version"]) == (key, version)


async def test_rotate_unknown_and_isolation(gql, org, other_org, make_assistant, stored):
    theirs = await make_assistant(other_org, generate_secret_key=True)
    before = await stored(theirs["id"])
    assert code(await gql(ROTATE, {"org": "c", "id": "nope"}, org)) == "NOT_FOUND"
    assert code(await gql(ROTATE, {"org": "c", "id": theirs["id"]}, org)) == "NOT_FOUND"
    other = await gql(ROTATE, {"org": other_org.org_id, "id": theirs["id"]}, org)
    assert code(other) == "FORBIDDEN"
    assert code(await gql(ROTATE, {"org": "c", "id": theirs["id"]})) == "UNAUTHENTICATED"
    assert await stored(theirs["id"]) == before


async def test_rotate_a_deleted_assistant_is_not_found(gql, org, make_assistant, stored):
    created = await make_assistant(org)
    await gql(DELETE, {"org": "c", "id": created["id"]}, org)
    assert code(await gql(ROTATE, {"org": "c", "id": created["id"]}, org)) == "NOT_FOUND"
    assert (await stored(created["id"]))["secret_key"] is None
