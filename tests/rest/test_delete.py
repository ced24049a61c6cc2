"""`DELETE /orgs/{org_id}/assistants/{id}`: soft delete, children removed, 404 afterwards."""

from __future__ import annotations

from tests.helpers.rows import count_children, insert_children


async def test_delete_then_everything_is_404(client, org, db, make_assistant, stored):
    keep = await make_assistant(org, name="keep")
    gone = await make_assistant(org, name="gone")
    await insert_children(db, org.org_id, gone["id"])
    await insert_children(db, org.org_id, keep["id"], integrations=1, actions=1)
    url = f"/orgs/{org.org_id}/assistants/{gone['id']}"

    response = await client.delete(url, headers=org.headers)
    assert response.status_code == 204
    assert response.content == b""

    for method, kwargs in (("GET", {}), ("PATCH", {"json": {"name": "x"}}), ("DELETE", {})):
        again = await client.request(method, url, headers=org.headers, **kwargs)
        assert again.status_code == 404, method
        assert again.json()["code"] == "NOT_FOUND"
    rotate = await client.post(f"{url}/rotate-secret-key", headers=org.headers)
    assert rotate.status_code == 404

    listed = await client.get("/orgs/c/assistants", headers=org.headers)
    assert [a["id"] for a in listed.json()] == [keep["id"]]
    assert listed.headers["pagination-count"] == "1"

    row = await stored(gone["id"])
    assert row["deleted"] is True
    assert row["version"] == gone["version"] + 1
    assert row["updated_at"] > row["created_at"]
    assert row["name"] == "gone"  # soft: the row stays, hidden
    assert await count_children(db, gone["id"]) == (0, 0)
    assert await count_children(db, keep["id"]) == (1, 1)


async def test_delete_unknown_is_404(client, org):
    response = await client.delete("/orgs/c/assistants/nope", headers=org.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def test_delete_needs_a_key(client, org, make_assistant, stored):
    created = await make_assistant(org)
    response = await client.delete(f"/orgs/{org.org_id}/assistants/{created['id']}")
    assert response.status_code == 401
    assert (await stored(created["id"]))["deleted"] is False


async def test_another_orgs_assistant_is_untouched(
    client, org, other_org, db, make_assistant, stored
):
    theirs = await make_assistant(other_org)
    await insert_children(db, other_org.org_id, theirs["id"])
    before = await stored(theirs["id"])
    as_mine = await client.delete(f"/orgs/c/assistants/{theirs['id']}", headers=org.headers)
    assert as_mine.status_code == 404
    in_theirs = await client.delete(
        f"/orgs/{other_org.org_id}/assistants/{theirs['id']}", headers=org.headers
    )
    assert in_theirs.status_code == 403
    assert await stored(theirs["id"]) == before
    assert await count_children(db, theirs["id"]) == (2, 2)
