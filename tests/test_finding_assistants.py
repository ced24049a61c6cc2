"""Finding assistants: `assistants(filter, orderBy)` and `GET …/assistants?search=&…&sort=`, on
both databases; GraphQL and REST answer the same assistants in the same order."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from app.models import Assistant
from tests.helpers.graphql_answers import answer
from tests.helpers.keys import READ, make_key

TABLE = Assistant.__table__
FIND = """
query($org: ID!, $first: Int, $after: String, $filter: AssistantFilter, $order: AssistantOrder) {
  assistants(orgId: $org, first: $first, after: $after, filter: $filter, orderBy: $order) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id name } }
  }
}
"""
SORTS = [
    (field, direction)
    for field in ("CREATED_AT", "UPDATED_AT", "NAME")
    for direction in ("ASC", "DESC")
]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def rest_sort(field: str, direction: str) -> str:
    return ("-" if direction == "DESC" else "") + field.lower()


async def gql_page(gql, org, *, first=100, after=None, filter=None, order=None):  # noqa: A002
    variables = {"org": "c", "first": first, "after": after, "filter": filter, "order": order}
    return await gql(FIND, variables, org)


async def gql_ids(gql, org, **arguments):
    body = await gql_page(gql, org, **arguments)
    assert "errors" not in body, body
    return [edge["node"]["id"] for edge in body["data"]["assistants"]["edges"]]


async def rest_list(client, org, **params):
    return await client.get("/orgs/c/assistants", params=params, headers=org.headers)


async def rest_ids(client, org, **params):
    response = await rest_list(client, org, **params)
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()]


async def set_times(db, assistant_id, *, created=None, updated=None):
    values = {}
    if created is not None:
        values["created_at"] = created
    if updated is not None:
        values["updated_at"] = updated
    async with db.write() as tx:
        await tx.execute(update(TABLE).where(TABLE.c.id == assistant_id).values(**values))


@pytest.fixture
async def crowd(org, make_assistant, db):
    """Nine assistants with ties on every sort key: (id, name, created_at, updated_at) in the
    order they were made."""
    names = ["b", "a", "b", "C", "a", "b", "é", "a", "B"]
    created = [0, 1, 1, 2, 2, 2, 3, 4, 4]  # minutes after T0: ties
    updated = [5, 5, 1, 0, 9, 5, 2, 2, 7]
    made = []
    for n, name in enumerate(names):
        row = await make_assistant(org, name=name)
        at_created = T0 + timedelta(minutes=created[n])
        at_updated = T0 + timedelta(hours=1, minutes=updated[n])
        await set_times(db, row["id"], created=at_created, updated=at_updated)
        made.append((row["id"], name, at_created, at_updated))
    return made


def expected(crowd, field, direction):
    """Sorted by the key, ties in the order of creation; DESC is the exact reverse."""
    column = {"NAME": 1, "CREATED_AT": 2, "UPDATED_AT": 3}[field]
    ordered = sorted(range(len(crowd)), key=lambda n: (crowd[n][column], n))
    if direction == "DESC":
        ordered.reverse()
    return [crowd[n][0] for n in ordered]


@pytest.mark.parametrize(("field", "direction"), SORTS)
async def test_each_sort_pages_every_row_once_in_order(gql, client, org, crowd, field, direction):
    want = expected(crowd, field, direction)
    order = {"field": field, "direction": direction}
    assert await gql_ids(gql, org, order=order) == want
    seen, after, pages = [], None, 0
    while True:
        body = (await gql_page(gql, org, first=2, after=after, order=order))["data"]["assistants"]
        assert body["totalCount"] == 9
        seen += [edge["node"]["id"] for edge in body["edges"]]
        pages += 1
        if not body["pageInfo"]["hasNextPage"]:
            break
        after = body["pageInfo"]["endCursor"]
        assert after == body["edges"][-1]["cursor"]
    assert (seen, pages) == (want, 5)
    rest_pages = []
    for page in (1, 2, 3, 4, 5):
        sort = rest_sort(field, direction)
        response = await rest_list(client, org, sort=sort, page=page, take=2)
        assert response.headers["pagination-count"] == "9"
        rest_pages += [a["id"] for a in response.json()]
    assert rest_pages == want


async def test_without_order_the_oldest_first_with_todays_cursors(gql, client, org, crowd):
    ids = [row[0] for row in crowd]
    body = (await gql_page(gql, org, first=3, filter={}))["data"]["assistants"]
    cursor = body["pageInfo"]["endCursor"]
    assert base64.urlsafe_b64decode(cursor).decode().startswith("assistant:")
    rest = await gql_ids(gql, org, after=cursor, filter={"search": ""})
    assert [e["node"]["id"] for e in body["edges"]] + rest == ids
    assert await rest_ids(client, org, search="") == ids


async def test_each_filter(gql, client, org, make_assistant, db):
    made = {}
    for key, name, language, model, enabled, ref in [
        ("support", "Support Bot", "en", "gpt-4o", True, None),
        ("sales", "sales helper", "fr", "gpt-4o-mini", False, "billing-desk"),
        ("shout", "SUPPORT fr", "fr", "gpt-4o", True, None),
        ("unicode", "Ünïcode Straße", "de", "claude", True, "strasse"),
        ("percent", "50%_off", "en", "claude", True, "promo.support"),
    ]:
        config = {"language": language, "model": model}
        body = {"name": name, "enabled": enabled, "config": config}
        if ref is not None:
            body["ref"] = ref
        made[key] = await make_assistant(org, **body)
    since = datetime.now(UTC)
    for key in ("sales", "percent"):
        patched = await client.patch(
            f"/orgs/c/assistants/{made[key]['id']}", json={"name": key}, headers=org.headers
        )
        assert patched.status_code == 200
        made[key] = patched.json()
    cases = [
        ({"search": "support"}, {}, ["support", "shout", "percent"]),
        ({"search": "PPOR"}, {}, ["support", "shout", "percent"]),
        ({"search": "üNÏ"}, {}, ["unicode"]),
        ({"search": "STRASSE"}, {}, ["unicode"]),
        ({"search": "BILLING-"}, {}, ["sales"]),
        ({"ref": "billing-desk"}, {}, ["sales"]),
        ({"ref": "billing"}, {}, []),
        ({"search": "%"}, {}, []),
        ({"search": "_"}, {}, []),
        ({"enabled": False}, {"enabled": "false"}, ["sales"]),
        ({"enabled": True}, {"enabled": "1"}, ["support", "shout", "unicode", "percent"]),
        ({"language": "fr"}, {}, ["sales", "shout"]),
        ({"model": "gpt-4o"}, {}, ["support", "shout"]),
        ({"model": "gpt"}, {}, []),
        (
            {"updatedSince": since.isoformat()},
            {"updated_since": since.isoformat()},
            ["sales", "percent"],
        ),
        ({"language": "fr", "enabled": True}, {"enabled": "true"}, ["shout"]),
        ({"search": "s", "model": "claude"}, {}, ["unicode", "percent"]),
    ]
    for graphql_filter, rest_params, keys in cases:
        params = {k: v for k, v in graphql_filter.items() if k not in ("enabled", "updatedSince")}
        params.update(rest_params)
        want = [made[key]["id"] for key in keys]
        body = await gql_page(gql, org, filter=graphql_filter)
        assert body["data"]["assistants"]["totalCount"] == len(want), graphql_filter
        assert [e["node"]["id"] for e in body["data"]["assistants"]["edges"]] == want
        response = await rest_list(client, org, **params)
        assert response.status_code == 200, response.text
        one_by_one = [
            (await client.get(f"/orgs/c/assistants/{i}", headers=org.headers)).json() for i in want
        ]
        assert response.json() == one_by_one, params
        assert response.headers["pagination-count"] == str(len(want))


async def test_filter_and_sort_together_and_a_restricted_key(gql, client, org, make_assistant):
    ids = []
    for name in ("delta", "alpha", "charlie", "bravo"):
        ids.append((await make_assistant(org, name=name, config={"language": "it"}))["id"])
    await make_assistant(org, name="aaa other language", config={"language": "en"})
    key = await make_key(client, org, [READ], assistant_ids=ids[1:3])
    order = {"field": "NAME", "direction": "DESC"}
    assert await gql_ids(gql, org, filter={"language": "it"}, order=order) == [
        ids[0],
        ids[2],
        ids[3],
        ids[1],
    ]
    assert await gql_ids(gql, key, filter={"language": "it"}, order=order) == [ids[2], ids[1]]
    assert await rest_ids(client, key, language="it", sort="-name") == [ids[2], ids[1]]
    response = await rest_list(client, key, language="it", sort="name")
    assert response.headers["pagination-count"] == "2"


async def test_cursors_stay_valid_while_rows_are_added(gql, org, make_assistant):
    for name in ("b", "d", "f", "h"):
        await make_assistant(org, name=name)
    order = {"field": "NAME", "direction": "ASC"}
    first = (await gql_page(gql, org, first=2, order=order))["data"]["assistants"]
    assert [e["node"]["name"] for e in first["edges"]] == ["b", "d"]
    for name in ("a", "c", "d", "e", "z"):
        await make_assistant(org, name=name)
    after = first["pageInfo"]["endCursor"]
    rest = (await gql_page(gql, org, after=after, order=order))["data"]["assistants"]
    # after the cursor: what sorts after (d, its seq), the new "d" (made later) included
    assert [e["node"]["name"] for e in rest["edges"]] == ["d", "e", "f", "h", "z"]
    newest = {"field": "CREATED_AT", "direction": "DESC"}
    top = (await gql_page(gql, org, first=3, order=newest))["data"]["assistants"]
    await make_assistant(org, name="newer still")
    below = await gql_page(gql, org, after=top["pageInfo"]["endCursor"], order=newest)
    names = [e["node"]["name"] for e in below["data"]["assistants"]["edges"]]
    assert names == ["c", "a", "h", "f", "d", "b"]


async def test_bad_input_names_the_field(gql, client, org, make_assistant):
    await make_assistant(org, name="x")
    for params, names in [
        ({"sort": "size"}, ["sort"]),
        ({"sort": ""}, ["sort"]),
        ({"enabled": "yes"}, ["enabled"]),
        ({"updated_since": "yesterday"}, ["updated_since"]),
        ({"language": "e\x00n"}, ["language"]),
        ({"model": ""}, ["model"]),
        ({"search": "x" * 1025, "sort": "-size", "enabled": "2"}, ["sort", "enabled", "search"]),
    ]:
        response = await rest_list(client, org, **params)
        assert response.status_code == 400, params
        problem = response.json()
        assert problem["code"] == "VALIDATION_FAILED"
        assert [e["path"] for e in problem["errors"]] == names, params
    by_name = {"field": "NAME", "direction": "ASC"}
    default_cursor = (await gql_page(gql, org, first=1))["data"]["assistants"]["pageInfo"][
        "endCursor"
    ]
    name_cursor = (await gql_page(gql, org, first=1, order=by_name))["data"]["assistants"]
    name_cursor = name_cursor["pageInfo"]["endCursor"]
    for arguments in [
        {"after": default_cursor, "order": by_name},
        {"after": name_cursor},
        {"after": name_cursor, "order": {"field": "NAME", "direction": "DESC"}},
        {"after": name_cursor, "order": {"field": "UPDATED_AT"}},
        {"after": "bm90IGEgY3Vyc29y", "order": by_name},
        {"after": base64.urlsafe_b64encode(b'assistant.name:["a",-1]').decode(), "order": by_name},
    ]:
        body = await gql_page(gql, org, **arguments)
        assert body["data"] is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", arguments
        assert [f["path"] for f in error["extensions"]["fields"]] == [["after"]]
        assert "'after'" in error["message"]
    body = await gql_page(gql, org, filter={"search": "a\x00", "language": ""})
    assert [f["path"] for f in body["errors"][0]["extensions"]["fields"]] == [
        ["filter", "search"],
        ["filter", "language"],
    ]
    body = await gql_page(gql, org, filter={"updatedSince": "not a time"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "updatedSince" in body["errors"][0]["message"]


async def test_the_cost_is_unchanged_by_filter_and_order(gql, org):
    body = await gql_page(gql, org, first=7, filter={"enabled": True}, order={"field": "NAME"})
    empty = {"totalCount": 0, "pageInfo": {"hasNextPage": False, "endCursor": None}, "edges": []}
    assert body == answer({"assistants": empty}, 7)
