"""`GET /orgs/{org_id}/assistants`: oldest first, page/take, pagination headers, isolation."""

from __future__ import annotations

import pytest

from tests.helpers.rows import insert_children


async def list_page(client, org, **params):
    return await client.get(f"/orgs/{org.org_id}/assistants", params=params, headers=org.headers)


def headers_of(response):
    return {
        name: response.headers[name]
        for name in ("pagination-count", "pagination-page", "pagination-take")
    }


async def test_empty_list_has_headers(client, org):
    response = await list_page(client, org)
    assert response.status_code == 200
    assert response.json() == []
    assert headers_of(response) == {
        "pagination-count": "0",
        "pagination-page": "1",
        "pagination-take": "100",
    }


async def test_lists_whole_assistants_oldest_first(client, org, db, make_assistant):
    first = await make_assistant(org, name="first")
    second = await make_assistant(org, name="second", generate_secret_key=True)
    integration_ids, action_ids = await insert_children(db, org.org_id, second["id"])
    response = await list_page(client, org)
    assert response.status_code == 200
    listed = response.json()
    one = await client.get(f"/orgs/c/assistants/{second['id']}", headers=org.headers)
    assert listed == [first, one.json()]
    assert [i["id"] for i in listed[1]["integrations"]] == integration_ids
    assert [a["id"] for a in listed[1]["actions"]] == action_ids
    assert listed[0]["integrations"] == listed[0]["actions"] == []
    assert headers_of(response)["pagination-count"] == "2"


async def test_page_and_take_slice_the_list(client, org, make_assistant):
    ids = [(await make_assistant(org, name=f"a{n}"))["id"] for n in range(5)]
    pages = []
    for page in (1, 2, 3, 4):
        response = await list_page(client, org, page=page, take=2)
        assert response.status_code == 200
        assert headers_of(response) == {
            "pagination-count": "5",
            "pagination-page": str(page),
            "pagination-take": "2",
        }
        pages.append([a["id"] for a in response.json()])
    assert pages == [ids[0:2], ids[2:4], ids[4:5], []]


async def test_own_org_alias_and_default_take(client, org, make_assistant):
    created = await make_assistant(org)
    response = await client.get("/orgs/c/assistants?page=1", headers=org.headers)
    assert [a["id"] for a in response.json()] == [created["id"]]
    assert headers_of(response)["pagination-take"] == "100"


@pytest.mark.parametrize(
    ("query", "paths"),
    [
        ("page=0", ["page"]),
        ("page=-1", ["page"]),
        ("page=abc", ["page"]),
        ("page=1.5", ["page"]),
        ("page=", ["page"]),
        ("page=99999999999", ["page"]),
        ("take=0", ["take"]),
        ("take=101", ["take"]),
        ("take=ten", ["take"]),
        ("take=%EF%BC%95", ["take"]),  # a full-width digit five
        ("page=0&take=1000", ["page", "take"]),
    ],
)
async def test_out_of_range_parameters_are_400(client, org, query, paths):
    response = await client.get(f"/orgs/c/assistants?{query}", headers=org.headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "VALIDATION_FAILED"
    assert [e["path"] for e in problem["errors"]] == paths


async def test_take_bounds_are_accepted(client, org, make_assistant):
    await make_assistant(org)
    for take in (1, 100):
        response = await list_page(client, org, take=take)
        assert response.status_code == 200
        assert headers_of(response)["pagination-take"] == str(take)


async def test_organisations_are_isolated(client, org, other_org, make_assistant):
    mine = await make_assistant(org, name="mine")
    theirs = await make_assistant(other_org, name="theirs")
    response = await list_page(client, org)
    assert [a["id"] for a in response.json()] == [mine["id"]]
    assert headers_of(response)["pagination-count"] == "1"
    other = await list_page(client, other_org)
    assert [a["id"] for a in other.json()] == [theirs["id"]]
    forbidden = await client.get(f"/orgs/{other_org.org_id}/assistants", headers=org.headers)
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "FORBIDDEN"


async def test_list_needs_a_key(client, org):
    response = await client.get(f"/orgs/{org.org_id}/assistants")
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"


async def test_walk_pages_while_assistants_are_added(client, org, make_assistant):
    """Every assistant that existed when the walk began is seen exactly once, in order;
    those created during the walk are seen once too, after them (they join the end)."""
    before = [(await make_assistant(org, name=f"old{n}"))["id"] for n in range(7)]
    seen: list[str] = []
    added: list[str] = []
    page = 1
    while True:
        response = await list_page(client, org, page=page, take=3)
        assert response.status_code == 200
        batch = [a["id"] for a in response.json()]
        seen += batch
        if len(batch) < 3:  # a short page is the last one
            break
        if len(added) < 4:
            added.append((await make_assistant(org, name=f"new{page}"))["id"])
        page += 1
    assert len(seen) == len(set(seen))
    assert seen[: len(before)] == before
    assert seen == before + added
