"""`duplicateAssistant` (docs/duplicate.md), on both databases: the same use case as REST."""

from __future__ import annotations

from typing import Any

from tests.helpers.duplicates import make_source
from tests.helpers.graphql_answers import without_cost
from tests.helpers.graphql_operations import ASSISTANT_FIELDS
from tests.helpers.keys import READ, WRITE, everything, make_key

CHILDREN = """
integrations { id enabled integrationId assistantId connectionId config error }
actions { id enabled name instructions actionId assistantId connectionId position
  config { input definitions { path definition } } }
"""
FIELDS = ASSISTANT_FIELDS.replace("integrations { id } actions { id }", CHILDREN)
DUPLICATE = f"""
mutation($a: ID!, $input: DuplicateAssistantInput) {{
  duplicateAssistant(orgId: "c", assistantId: $a, input: $input) {{ {FIELDS} }}
}}
"""
READ_ONE = f'query($a: ID!) {{ assistant(orgId: "c", id: $a) {{ {FIELDS} }} }}'
HISTORY = """
query($a: ID!) { assistant(orgId: "c", id: $a) { revisions { nodes {
  version changeType source duplicatedFrom { assistantId version }
} } } }
"""
NEW = ("id", "secretKey", "createdAt", "updatedAt")
CHILD_NEW = ("id", "assistantId")


def same_content(copy: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """The source as its copy must read: what is new taken from the copy (checked apart)."""

    def child(original: dict[str, Any], made: dict[str, Any]) -> dict[str, Any]:
        return {**original, **{k: made[k] for k in CHILD_NEW}}

    return {
        **source,
        **{k: copy[k] for k in NEW},
        "name": f"{source['name']} (copy)",
        "version": 1,
        "integrations": [
            child(o, m) for o, m in zip(source["integrations"], copy["integrations"], strict=True)
        ],
        "actions": [child(o, m) for o, m in zip(source["actions"], copy["actions"], strict=True)],
    }


async def test_a_duplicate_reads_as_its_source_with_new_ids(client, db, org, gql):
    assert "integrationId" in FIELDS  # every field of the children too
    source_id = (await make_source(client, db, org))["id"]
    source = (await gql(READ_ONE, {"a": source_id}, org))["data"]["assistant"]
    body = await gql(DUPLICATE, {"a": source_id}, org)
    assert "errors" not in body, body
    copy = body["data"]["duplicateAssistant"]
    assert copy == same_content(copy, source)
    assert copy["id"] != source_id
    assert copy["secretKey"]
    assert copy["secretKey"] != source["secretKey"]
    assert {c["assistantId"] for c in copy["integrations"] + copy["actions"]} == {copy["id"]}
    assert not {c["id"] for c in copy["actions"]} & {c["id"] for c in source["actions"]}
    assert without_cost(await gql(READ_ONE, {"a": copy["id"]}, org)) == {
        "data": {"assistant": copy}
    }
    history = await gql(HISTORY, {"a": copy["id"]}, org)
    assert history["data"]["assistant"]["revisions"]["nodes"] == [
        {
            "version": 1,
            "changeType": "CREATED",
            "source": "graphql",
            "duplicatedFrom": {"assistantId": source_id, "version": 2},
        }
    ]
    history = await gql(HISTORY, {"a": source_id}, org)
    assert {
        n["duplicatedFrom"] is None for n in history["data"]["assistant"]["revisions"]["nodes"]
    } == {True}


async def test_the_input_chooses_name_children_and_release(client, db, org, gql):
    source_id = (await make_source(client, db, org))["id"]
    published = await client.post(f"/orgs/c/assistants/{source_id}/releases", headers=org.headers)
    assert published.status_code == 201
    renamed = await client.patch(
        f"/orgs/c/assistants/{source_id}", json={"name": "Later"}, headers=org.headers
    )
    assert renamed.status_code == 200
    variables = {
        "a": source_id,
        "input": {"name": " Trial ", "includeIntegrations": False, "fromRelease": 1},
    }
    copy = (await gql(DUPLICATE, variables, org))["data"]["duplicateAssistant"]
    assert (copy["name"], len(copy["integrations"]), len(copy["actions"])) == ("Trial", 0, 3)
    from_release = await gql(DUPLICATE, {"a": source_id, "input": {"fromRelease": 1}}, org)
    assert from_release["data"]["duplicateAssistant"]["name"] == "Support (copy)"
    from_draft = await gql(DUPLICATE, {"a": source_id, "input": {}}, org)
    assert from_draft["data"]["duplicateAssistant"]["name"] == "Later (copy)"
    history = await gql(HISTORY, {"a": copy["id"]}, org)
    [created] = history["data"]["assistant"]["revisions"]["nodes"]
    assert created["duplicatedFrom"] == {"assistantId": source_id, "version": 2}


async def test_errors_name_the_input_field_and_store_nothing(client, db, org, gql):
    source_id = (await make_source(client, db, org))["id"]
    long = await client.post("/orgs/c/assistants", json={"name": "n" * 1020}, headers=org.headers)
    before = await everything(db)
    for assistant_id, given, code, path in [
        (source_id, {"fromRelease": 0}, "BAD_USER_INPUT", ["fromRelease"]),
        (source_id, {"name": ""}, "BAD_USER_INPUT", ["name"]),
        (long.json()["id"], {}, "BAD_USER_INPUT", ["name"]),
        (source_id, {"fromRelease": 7}, "NOT_FOUND", None),
        ("nope", {}, "NOT_FOUND", None),
    ]:
        body = await gql(DUPLICATE, {"a": assistant_id, "input": given}, org)
        assert body["data"] is None, given
        [error] = body["errors"]
        assert error["extensions"]["code"] == code, given
        assert error["path"] == ["duplicateAssistant"]
        if path is not None:
            assert [f["path"] for f in error["extensions"]["fields"]] == [path]
    null = await gql(DUPLICATE, {"a": source_id, "input": {"includeActions": None}}, org)
    assert null["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"  # a non-null Boolean
    assert await everything(db) == before


async def test_scopes_and_restricted_keys_are_refused(client, db, org, gql):
    source_id = (await make_source(client, db, org))["id"]
    reader = await make_key(client, org, [READ])
    bound = await make_key(client, org, [READ, WRITE], assistant_ids=[source_id])
    before = await everything(db)
    [error] = (await gql(DUPLICATE, {"a": source_id}, reader))["errors"]
    assert (error["extensions"]["code"], error["extensions"]["requiredScope"]) == (
        "FORBIDDEN",
        WRITE,
    )
    [error] = (await gql(DUPLICATE, {"a": source_id}, bound))["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert await everything(db) == before
