"""An assistant's `ref` (docs/bundles.md): set on create and update over REST and GraphQL,
validated, unique among the live assistants of an organisation, in the revisions' changes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

UPDATE = """mutation($org: ID!, $id: ID!, $input: UpdateAssistantInput!) {
  updateAssistant(orgId: $org, assistantId: $id, input: $input) { id ref version } }"""
CREATE = """mutation($org: ID!, $input: CreateAssistantInput!) {
  createAssistant(orgId: $org, input: $input) { id ref } }"""


async def test_a_ref_is_set_on_create_and_update_and_returned(client, org, make_assistant):
    created = await make_assistant(org, ref="support")
    assert created["ref"] == "support"
    url = f"/orgs/{org.org_id}/assistants/{created['id']}"
    patched = await client.patch(url, json={"ref": "support.v2"}, headers=org.headers)
    assert patched.status_code == 200, patched.text
    assert patched.json()["ref"] == "support.v2"
    assert patched.json()["version"] == 2
    revisions = await client.get(f"{url}/revisions", headers=org.headers)
    newest, first = revisions.json()
    assert newest["changes"] == [{"path": "ref", "from": "support", "to": "support.v2"}]
    assert {"path": "ref", "from": None, "to": "support"} in first["changes"]
    cleared = await client.patch(url, json={"ref": None}, headers=org.headers)
    assert cleared.json()["ref"] is None
    assert (await client.get(url, headers=org.headers)).json()["ref"] is None


async def test_an_assistant_has_no_ref_by_default(make_assistant, org):
    assert (await make_assistant(org))["ref"] is None


@pytest.mark.parametrize(
    "ref", ["", "Upper", "-dash-first", ".dot", "a b", "x" * 65, "é", "a/b", 5, "a\x00"]
)
async def test_a_bad_ref_is_a_validation_error_naming_it(client, org, make_assistant, stored, ref):
    answer = await client.post(
        f"/orgs/{org.org_id}/assistants", json={"name": "X", "ref": ref}, headers=org.headers
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "VALIDATION_FAILED"
    assert [e["path"] for e in answer.json()["errors"]] == ["ref"]
    created = await make_assistant(org, ref="kept")
    url = f"/orgs/{org.org_id}/assistants/{created['id']}"
    answer = await client.patch(url, json={"ref": ref, "name": "New"}, headers=org.headers)
    assert answer.status_code == 400
    row = await stored(created["id"])
    assert row is not None
    assert (row["ref"], row["name"], row["version"]) == ("kept", "Support bot", 1)


async def test_a_ref_of_64_characters_of_every_allowed_kind_is_taken(make_assistant, org):
    ref = "0a._-" + "z" * 59
    assert (await make_assistant(org, ref=ref))["ref"] == ref


async def test_a_taken_ref_is_a_conflict_naming_the_field(client, org, make_assistant, stored):
    first = await make_assistant(org, ref="sales")
    answer = await client.post(
        f"/orgs/{org.org_id}/assistants", json={"name": "Y", "ref": "sales"}, headers=org.headers
    )
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["code"] == "REF_TAKEN"
    assert body["errors"][0]["path"] == "ref"
    second = await make_assistant(org, name="Second")
    url = f"/orgs/{org.org_id}/assistants/{second['id']}"
    answer = await client.patch(url, json={"ref": "sales", "name": "Z"}, headers=org.headers)
    assert answer.status_code == 409
    row = await stored(second["id"])
    assert row is not None
    assert (row["ref"], row["name"], row["version"]) == (None, "Second", 1)
    # its own ref again is no change and no conflict
    url = f"/orgs/{org.org_id}/assistants/{first['id']}"
    same = await client.patch(url, json={"ref": "sales"}, headers=org.headers)
    assert same.status_code == 200
    assert same.json()["version"] == 1


async def test_refs_are_per_organisation_and_free_again_once_deleted(
    client, org, other_org, make_assistant
):
    first = await make_assistant(org, ref="shared")
    assert (await make_assistant(other_org, ref="shared"))["ref"] == "shared"
    deleted = await client.delete(
        f"/orgs/{org.org_id}/assistants/{first['id']}", headers=org.headers
    )
    assert deleted.status_code == 204
    assert (await make_assistant(org, ref="shared"))["ref"] == "shared"


async def test_many_assistants_have_no_ref(make_assistant, org):
    for _ in range(3):
        assert (await make_assistant(org))["ref"] is None


async def test_graphql_sets_and_answers_the_ref_and_names_a_taken_one(gql, org):
    made = await gql(CREATE, {"org": org.org_id, "input": {"name": "A", "ref": "alpha"}}, org)
    assert made["data"]["createAssistant"]["ref"] == "alpha"
    other = await gql(CREATE, {"org": org.org_id, "input": {"name": "B"}}, org)
    assistant_id = other["data"]["createAssistant"]["id"]
    variables = {"org": org.org_id, "id": assistant_id, "input": {"ref": "alpha"}}
    taken = await gql(UPDATE, variables, org)
    [error] = taken["errors"]
    assert error["extensions"]["code"] == "REF_TAKEN"
    assert error["extensions"]["fields"][0]["path"] == ["ref"]
    bad = await gql(UPDATE, {"org": org.org_id, "id": assistant_id, "input": {"ref": "B!"}}, org)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert bad["errors"][0]["extensions"]["fields"][0]["path"] == ["ref"]
    done = await gql(UPDATE, {"org": org.org_id, "id": assistant_id, "input": {"ref": "beta"}}, org)
    assert done["data"]["updateAssistant"] == {"id": assistant_id, "ref": "beta", "version": 2}


async def test_a_restore_leaves_the_ref_alone(client, org, make_assistant):
    created: dict[str, Any] = await make_assistant(org, name="One")
    url = f"/orgs/{org.org_id}/assistants/{created['id']}"
    await client.patch(url, json={"name": "Two", "ref": "two"}, headers=org.headers)
    restored = await client.post(f"{url}/revisions/1/restore", headers=org.headers)
    assert restored.status_code == 200, restored.text
    assert (restored.json()["name"], restored.json()["ref"]) == ("One", "two")


async def test_concurrent_creates_with_one_ref_make_one_assistant(client, org):
    async def create(name: str) -> Any:
        body = {"name": name, "ref": "raced"}
        return await client.post(f"/orgs/{org.org_id}/assistants", json=body, headers=org.headers)

    answers = await asyncio.gather(*(create(f"N{i}") for i in range(4)))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    listed = await client.get(f"/orgs/{org.org_id}/assistants", headers=org.headers)
    assert [a["ref"] for a in listed.json()] == ["raced"]
