"""`assistants(orgId, first, after)`: a Relay connection, oldest first."""

from __future__ import annotations

import base64

import pytest

from tests.helpers.graphql_answers import answer
from tests.helpers.rows import insert_children

LIST = """
query($org: ID!, $first: Int, $after: String) {
  assistants(orgId: $org, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id name } }
    nodes { id }
  }
}
"""


async def page(gql, org, first=None, after=None, org_id="c"):
    variables = {"org": org_id, "after": after}
    if first is not None:
        variables["first"] = first
    return await gql(LIST, variables, org)


def code(body):
    return body["errors"][0]["extensions"]["code"]


async def test_empty_connection(gql, org):
    body = await page(gql, org)
    assert body == answer(
        {
            "assistants": {
                "totalCount": 0,
                "pageInfo": {"hasNextPage": False, "endCursor": None},
                "edges": [],
                "nodes": [],
            }
        },
        20,
    )


async def test_pages_oldest_first(gql, org, make_assistant):
    ids = [(await make_assistant(org, name=f"a{n}"))["id"] for n in range(5)]
    first = (await page(gql, org, first=2))["data"]["assistants"]
    assert first["totalCount"] == 5
    assert [e["node"]["id"] for e in first["edges"]] == ids[:2]
    assert [n["id"] for n in first["nodes"]] == ids[:2]
    assert first["pageInfo"] == {"hasNextPage": True, "endCursor": first["edges"][-1]["cursor"]}
    second = (await page(gql, org, first=2, after=first["pageInfo"]["endCursor"]))["data"]
    assert [n["id"] for n in second["assistants"]["nodes"]] == ids[2:4]
    third = await page(gql, org, first=2, after=second["assistants"]["pageInfo"]["endCursor"])
    last = third["data"]["assistants"]
    assert [n["id"] for n in last["nodes"]] == ids[4:]
    assert last["pageInfo"]["hasNextPage"] is False
    # a cursor in the middle: what follows that edge
    middle = first["edges"][0]["cursor"]
    after_first = (await page(gql, org, first=10, after=middle))["data"]["assistants"]
    assert [n["id"] for n in after_first["nodes"]] == ids[1:]


async def test_default_first_is_20(gql, org, make_assistant):
    for n in range(21):
        await make_assistant(org, name=f"a{n}")
    for first in (None, 20):
        body = (await page(gql, org, first=first))["data"]["assistants"]
        assert len(body["nodes"]) == 20
        assert body["pageInfo"]["hasNextPage"] is True
        assert body["totalCount"] == 21
    explicit_null = await gql(LIST, {"org": "c", "first": None}, org)
    assert len(explicit_null["data"]["assistants"]["nodes"]) == 20


async def test_full_assistants_with_children(gql, org, db, make_assistant):
    created = await make_assistant(org, name="with children")
    integration_ids, action_ids = await insert_children(db, org.org_id, created["id"])
    body = await gql(
        """{ assistants(orgId: "c") { nodes { id secretKey config { language }
             integrations { id integrationId config } actions { id position } } } }""",
        org=org,
    )
    [node] = body["data"]["assistants"]["nodes"]
    assert node["id"] == created["id"]
    assert node["config"] == {"language": "auto"}
    assert [i["id"] for i in node["integrations"]] == integration_ids
    assert [i["config"] for i in node["integrations"]] == [{"n": 0}, {"n": 1}]
    assert node["actions"] == [
        {"id": action_ids[0], "position": 100},
        {"id": action_ids[1], "position": 200},
    ]


@pytest.mark.parametrize("first", [0, -1, 101, 1000])
async def test_first_out_of_range(gql, org, first):
    body = await page(gql, org, first=first)
    assert body["data"] is None
    assert code(body) == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["fields"][0]["path"] == ["first"]


async def test_first_bounds_accepted(gql, org, make_assistant):
    await make_assistant(org)
    for first in (1, 100):
        body = await page(gql, org, first=first)
        assert len(body["data"]["assistants"]["nodes"]) == 1


@pytest.mark.parametrize(
    "after",
    [
        "garbage!",
        "",
        base64.urlsafe_b64encode(b"assistant:x").decode(),
        base64.urlsafe_b64encode(b"revision:3").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_malformed_cursor(gql, org, after):
    body = await page(gql, org, after=after)
    assert body["data"] is None
    assert code(body) == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["fields"][0]["path"] == ["after"]


async def test_isolation(gql, org, other_org, make_assistant):
    mine = await make_assistant(org, name="mine")
    await make_assistant(other_org, name="theirs")
    body = (await page(gql, org))["data"]["assistants"]
    assert (body["totalCount"], [n["id"] for n in body["nodes"]]) == (1, [mine["id"]])
    forbidden = await page(gql, org, org_id=other_org.org_id)
    assert code(forbidden) == "FORBIDDEN"
    anonymous = await gql(LIST, {"org": "c"})
    assert code(anonymous) == "UNAUTHENTICATED"


async def test_walk_while_assistants_are_added(gql, org, make_assistant):
    """Cursors stay valid while rows are added: every assistant is seen once, in order."""
    expected = [(await make_assistant(org, name=f"old{n}"))["id"] for n in range(7)]
    seen: list[str] = []
    after = None
    while True:
        body = (await page(gql, org, first=3, after=after))["data"]["assistants"]
        seen += [n["id"] for n in body["nodes"]]
        if not body["pageInfo"]["hasNextPage"]:
            break
        after = body["pageInfo"]["endCursor"]
        if len(expected) < 11:
            expected.append((await make_assistant(org, name=f"new{len(seen)}"))["id"])
    assert len(seen) == len(set(seen))
    assert seen == expected


async def test_cursor_survives_deleting_its_assistant(client, gql, org, make_assistant):
    ids = [(await make_assistant(org, name=f"a{n}"))["id"] for n in range(3)]
    first = (await page(gql, org, first=1))["data"]["assistants"]
    deleted = await client.delete(f"/orgs/c/assistants/{ids[0]}", headers=org.headers)
    assert deleted.status_code == 204
    rest = await page(gql, org, after=first["pageInfo"]["endCursor"])
    assert [n["id"] for n in rest["data"]["assistants"]["nodes"]] == ids[1:]
    assert rest["data"]["assistants"]["totalCount"] == 2
