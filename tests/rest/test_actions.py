"""REST: `/orgs/{org_id}/assistants/{assistant_id}/actions`, including reorder."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import Action
from tests.helpers.rows import mark_deleted, stored_child, stored_children


def base(org: Any, assistant: dict[str, Any]) -> str:
    return f"/orgs/{org.org_id}/assistants/{assistant['id']}/actions"


@pytest.fixture
def make_action(client):
    async def make(org: Any, assistant: dict[str, Any], **body: Any) -> dict[str, Any]:
        body.setdefault("action_id", "TOOLS:HTTP_REQUEST")
        body.setdefault("name", "Call the CRM")
        response = await client.post(base(org, assistant), json=body, headers=org.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    return make


def paths(response: Any) -> list[str]:
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "VALIDATION_FAILED"
    return [e["path"] for e in problem["errors"]]


async def test_create_with_defaults(client, org, make_assistant, db):
    assistant = await make_assistant(org)
    response = await client.post(
        base(org, assistant),
        json={"action_id": "TOOLS:HTTP_REQUEST", "name": "  Fetch  "},
        headers=org.headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "enabled": True,
        "name": "Fetch",
        "instructions": "",
        "action_id": "TOOLS:HTTP_REQUEST",
        "assistant_id": assistant["id"],
        "connection_id": None,
        "config": {"input": {}, "definitions": []},
        "position": 100,
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
    }
    row = await stored_child(db, Action, body["id"])
    assert row is not None
    assert (row["org_id"], row["name"], row["position"]) == (org.org_id, "Fetch", 100)
    assert row["config"] == {"input": {}, "definitions": []}


async def test_create_every_field_then_read(client, org, make_assistant, make_action):
    assistant = await make_assistant(org)
    config = {
        "input": {"url": "https://example.com", "method": "GET"},
        "definitions": [{"path": "body", "definition": {"type": "object"}}],
    }
    created = await make_action(
        org,
        assistant,
        action_id="CRM",
        name="n" * 64,
        instructions="i" * 2048,
        enabled=False,
        connection_id="conn",
        config=config,
    )
    assert (created["enabled"], created["connection_id"], created["config"]) == (
        False,
        "conn",
        config,
    )
    one = await client.get(f"{base(org, assistant)}/{created['id']}", headers=org.headers)
    assert one.status_code == 200
    assert one.json() == created
    whole = await client.get(
        f"/orgs/{org.org_id}/assistants/{assistant['id']}", headers=org.headers
    )
    assert whole.json()["actions"] == [created]


async def test_positions_step_by_100_and_list_in_order(
    client, org, make_assistant, make_action, db
):
    assistant = await make_assistant(org)
    other = await make_assistant(org, name="Other")
    created = [await make_action(org, assistant, name=f"a{n}") for n in range(3)]
    assert [a["position"] for a in created] == [100, 200, 300]
    assert (await make_action(org, other))["position"] == 100  # per assistant
    listed = await client.get(base(org, assistant), headers=org.headers)
    assert listed.status_code == 200
    assert listed.json() == created
    rows = await stored_children(db, Action, assistant["id"])
    assert sorted(r["position"] for r in rows) == [100, 200, 300]


async def test_new_action_goes_after_the_highest_position(client, org, make_assistant, make_action):
    assistant = await make_assistant(org)
    first = await make_action(org, assistant, name="first")
    second = await make_action(org, assistant, name="second")
    response = await client.patch(
        f"{base(org, assistant)}/reorder",
        json={"positions": [{"id": first["id"], "position": 1000}]},
        headers=org.headers,
    )
    assert response.status_code == 200
    third = await make_action(org, assistant, name="third")
    assert third["position"] == 1100
    await client.delete(f"{base(org, assistant)}/{third['id']}", headers=org.headers)
    await client.delete(f"{base(org, assistant)}/{first['id']}", headers=org.headers)
    assert (await make_action(org, assistant, name="fourth"))["position"] == 300
    assert second["position"] == 200


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "x"}, ["action_id"]),
        ({"action_id": "TOOLS:HTTP_REQUEST"}, ["name"]),
        ({"action_id": "tools:http", "name": "x"}, ["action_id"]),
        ({"action_id": "TOOLS::X", "name": "x"}, ["action_id"]),
        ({"action_id": "A" * 129, "name": "x"}, ["action_id"]),
        ({"action_id": "A", "name": ""}, ["name"]),
        ({"action_id": "A", "name": "   "}, ["name"]),
        ({"action_id": "A", "name": "n" * 65}, ["name"]),
        ({"action_id": "A", "name": "a\nb"}, ["name"]),
        ({"action_id": "A", "name": None}, ["name"]),
        ({"action_id": "A", "name": "x", "instructions": "i" * 2049}, ["instructions"]),
        ({"action_id": "A", "name": "x", "instructions": None}, ["instructions"]),
        ({"action_id": "A", "name": "x", "connection_id": "c" * 201}, ["connection_id"]),
        ({"action_id": "A", "name": "x", "config": []}, ["config"]),
        ({"action_id": "A", "name": "x", "config": None}, ["config"]),
        ({"action_id": "A", "name": "x", "config": {"input": [1]}}, ["config.input"]),
        ({"action_id": "A", "name": "x", "config": {"extra": 1}}, ["config.extra"]),
        (
            {"action_id": "A", "name": "x", "config": {"definitions": [{"path": "p"}]}},
            ["config.definitions.0.definition"],
        ),
        (
            {
                "action_id": "A",
                "name": "x",
                "config": {"definitions": [{"path": "p", "definition": "s"}]},
            },
            ["config.definitions.0.definition"],
        ),
        ({"action_id": "A", "name": "x", "position": 5}, ["position"]),
        ({"action_id": "A", "name": "x", "id": "mine"}, ["id"]),
        ({"action_id": "A", "name": "x", "assistant_id": "a"}, ["assistant_id"]),
        ({"action_id": "A", "name": "x", "updated_at": "2020-01-01T00:00:00Z"}, ["updated_at"]),
        ({"action_id": "A", "name": "x", "colour": "red"}, ["colour"]),
        ({"action_id": 1, "name": "n" * 65, "position": 1}, ["action_id", "name", "position"]),
    ],
)
async def test_create_validation(client, org, make_assistant, db, body, expected):
    assistant = await make_assistant(org)
    response = await client.post(base(org, assistant), json=body, headers=org.headers)
    assert sorted(paths(response)) == sorted(expected)
    assert await stored_children(db, Action, assistant["id"]) == []


async def test_position_is_named_read_only(client, org, make_assistant):
    assistant = await make_assistant(org)
    response = await client.post(
        base(org, assistant),
        json={"action_id": "A", "name": "x", "position": 5},
        headers=org.headers,
    )
    assert response.json()["errors"] == [{"path": "position", "message": "'position' is read-only"}]


async def test_update_changes_sent_keys_and_replaces_config(
    client, org, make_assistant, make_action, db
):
    assistant = await make_assistant(org)
    created = await make_action(
        org,
        assistant,
        instructions="old",
        connection_id="c1",
        config={"input": {"a": 1}, "definitions": [{"path": "p", "definition": {}}]},
    )
    response = await client.patch(
        f"{base(org, assistant)}/{created['id']}",
        json={"name": "Renamed", "enabled": False, "config": {"input": {"b": 2}}},
        headers=org.headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert body == {
        **created,
        "name": "Renamed",
        "enabled": False,
        "config": {"input": {"b": 2}, "definitions": []},
        "updated_at": body["updated_at"],
    }
    assert body["updated_at"] > created["updated_at"]
    row = await stored_child(db, Action, created["id"])
    assert row is not None
    assert row["config"] == {"input": {"b": 2}, "definitions": []}
    assert (row["name"], row["instructions"], row["position"]) == ("Renamed", "old", 100)


async def test_update_without_change_keeps_updated_at(client, org, make_assistant, make_action):
    assistant = await make_assistant(org)
    created = await make_action(org, assistant, config={"input": {"a": 1}})
    for body in ({}, {"name": "Call the CRM", "config": {"input": {"a": 1}, "definitions": []}}):
        response = await client.patch(
            f"{base(org, assistant)}/{created['id']}", json=body, headers=org.headers
        )
        assert response.status_code == 200
        assert response.json() == created


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ({"action_id": "OTHER"}, "action_id", "'action_id' is fixed at creation"),
        ({"position": 1}, "position", "'position' is read-only"),
        ({"name": "n" * 65}, "name", None),
        ({"name": None}, "name", "may not be null"),
        ({"instructions": "i" * 2049}, "instructions", None),
        ({"config": None}, "config", "may not be null"),
        ({"config": {"input": "x"}}, "config.input", "must be a JSON object"),
        ({"created_at": "x"}, "created_at", "'created_at' is read-only"),
        ({"colour": "red"}, "colour", "unknown field 'colour'"),
    ],
)
async def test_update_validation_stores_nothing(
    client, org, make_assistant, make_action, db, body, path, message
):
    assistant = await make_assistant(org)
    created = await make_action(org, assistant)
    before = await stored_child(db, Action, created["id"])
    response = await client.patch(
        f"{base(org, assistant)}/{created['id']}",
        json={"enabled": False, **body},
        headers=org.headers,
    )
    assert paths(response) == [path]
    if message:
        assert response.json()["errors"][0]["message"] == message
    assert await stored_child(db, Action, created["id"]) == before


async def test_reorder(client, org, make_assistant, make_action, db):
    assistant = await make_assistant(org)
    a, b, c = [await make_action(org, assistant, name=n) for n in "abc"]
    response = await client.patch(
        f"{base(org, assistant)}/reorder",
        json={"positions": [{"id": c["id"], "position": 0}, {"id": a["id"], "position": 250}]},
        headers=org.headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert [(x["name"], x["position"]) for x in body] == [("c", 0), ("b", 200), ("a", 250)]
    assert body[1] == b  # untouched
    assert body[0]["updated_at"] > c["updated_at"]
    listed = await client.get(base(org, assistant), headers=org.headers)
    assert listed.json() == body
    rows = {r["id"]: r["position"] for r in await stored_children(db, Action, assistant["id"])}
    assert rows == {a["id"]: 250, b["id"]: 200, c["id"]: 0}


async def test_reorder_to_same_position_keeps_updated_at(client, org, make_assistant, make_action):
    assistant = await make_assistant(org)
    a = await make_action(org, assistant)
    response = await client.patch(
        f"{base(org, assistant)}/reorder",
        json={"positions": [{"id": a["id"], "position": 100}]},
        headers=org.headers,
    )
    assert response.json() == [a]


@pytest.mark.parametrize(
    ("positions", "expected"),
    [
        ([], ["positions"]),
        ([{"id": "X", "position": 1}] * 26, ["positions"]),
        ([{"id": "A", "position": -1}], ["positions.0.position"]),
        ([{"id": "A", "position": 1.5}], ["positions.0.position"]),
        ([{"id": "A", "position": "1"}], ["positions.0.position"]),
        ([{"id": "A", "position": True}], ["positions.0.position"]),
        ([{"id": "A", "position": 1_000_000_001}], ["positions.0.position"]),
        ([{"id": "A"}], ["positions.0.position"]),
        ([{"id": "A", "position": 1, "name": "x"}], ["positions.0.name"]),
        ([{"id": "nope", "position": 1}], ["positions.0.id"]),
        ([{"id": "A", "position": 1}, {"id": "A", "position": 2}], ["positions.1.id"]),
        (
            [{"id": "B", "position": 1}, {"id": "gone", "position": 2}, {"id": "B", "position": 3}],
            ["positions.1.id", "positions.2.id"],
        ),
    ],
)
async def test_reorder_validation_moves_nothing(
    client, org, make_assistant, make_action, db, positions, expected
):
    assistant = await make_assistant(org)
    made = {"A": await make_action(org, assistant), "B": await make_action(org, assistant)}
    body = [{**p, "id": made[p["id"]]["id"]} if p.get("id") in made else p for p in positions]
    before = await stored_children(db, Action, assistant["id"])
    response = await client.patch(
        f"{base(org, assistant)}/reorder", json={"positions": body}, headers=org.headers
    )
    assert paths(response) == expected
    assert await stored_children(db, Action, assistant["id"]) == before


async def test_reorder_25_pairs_is_the_limit(client, org, make_assistant, make_action):
    assistant = await make_assistant(org)
    made = [await make_action(org, assistant, name=f"a{n}") for n in range(25)]
    pairs = [{"id": a["id"], "position": 1000 - n} for n, a in enumerate(made)]
    response = await client.patch(
        f"{base(org, assistant)}/reorder", json={"positions": pairs}, headers=org.headers
    )
    assert response.status_code == 200
    assert [a["name"] for a in response.json()] == [f"a{n}" for n in reversed(range(25))]


@pytest.mark.parametrize("body", [{}, {"positions": None}, {"positions": {}}, {"order": []}])
async def test_reorder_body_shape(client, org, make_assistant, body):
    assistant = await make_assistant(org)
    response = await client.patch(f"{base(org, assistant)}/reorder", json=body, headers=org.headers)
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_FAILED"


async def test_reorder_with_anothers_action_is_400_and_moves_nothing(
    client, org, other_org, make_assistant, make_action, db
):
    mine = await make_assistant(org)
    sibling = await make_assistant(org, name="Sibling")
    theirs = await make_assistant(other_org)
    own = await make_action(org, mine)
    sibling_action = await make_action(org, sibling)
    their_action = await make_action(other_org, theirs)
    before = [await stored_children(db, Action, a["id"]) for a in (mine, sibling, theirs)]
    for index, foreign in enumerate((sibling_action, their_action)):
        response = await client.patch(
            f"{base(org, mine)}/reorder",
            json={
                "positions": [
                    {"id": own["id"], "position": 7},
                    {"id": foreign["id"], "position": 1},
                ]
            },
            headers=org.headers,
        )
        assert paths(response) == ["positions.1.id"], index
    after = [await stored_children(db, Action, a["id"]) for a in (mine, sibling, theirs)]
    assert after == before


async def test_delete_then_404(client, org, make_assistant, make_action, db):
    assistant = await make_assistant(org)
    kept = await make_action(org, assistant, name="kept")
    gone = await make_action(org, assistant, name="gone")
    url = f"{base(org, assistant)}/{gone['id']}"
    response = await client.delete(url, headers=org.headers)
    assert response.status_code == 204
    assert await stored_child(db, Action, gone["id"]) is None
    assert (await client.get(url, headers=org.headers)).status_code == 404
    assert (await client.patch(url, json={}, headers=org.headers)).status_code == 404
    assert (await client.delete(url, headers=org.headers)).status_code == 404
    assert (await client.get(base(org, assistant), headers=org.headers)).json() == [kept]
    reorder = await client.patch(
        f"{base(org, assistant)}/reorder",
        json={"positions": [{"id": gone["id"], "position": 1}]},
        headers=org.headers,
    )
    assert paths(reorder) == ["positions.0.id"]


async def test_another_organisations_action_is_404(
    client, org, other_org, make_assistant, make_action, db
):
    mine = await make_assistant(org)
    theirs = await make_assistant(other_org)
    target = await make_action(other_org, theirs, instructions="their secret")
    before = await stored_children(db, Action, theirs["id"])
    foreign_parent = f"/orgs/{org.org_id}/assistants/{theirs['id']}/actions"
    assert (await client.get(foreign_parent, headers=org.headers)).status_code == 404
    post = await client.post(
        foreign_parent, json={"action_id": "A", "name": "x"}, headers=org.headers
    )
    assert post.status_code == 404
    reorder = await client.patch(
        f"{foreign_parent}/reorder",
        json={"positions": [{"id": target["id"], "position": 1}]},
        headers=org.headers,
    )
    assert reorder.status_code == 404
    for url in (f"{base(org, mine)}/{target['id']}", f"{foreign_parent}/{target['id']}"):
        for method, kwargs in (
            ("GET", {}),
            ("PATCH", {"json": {"name": "hijacked"}}),
            ("DELETE", {}),
        ):
            response = await client.request(method, url, headers=org.headers, **kwargs)
            assert response.status_code == 404, (method, url)
            assert "their secret" not in response.text
    their_url = f"{base(other_org, theirs)}/{target['id']}"
    assert (await client.delete(their_url, headers=org.headers)).status_code == 403
    forbidden = await client.patch(
        f"{base(other_org, theirs)}/reorder",
        json={"positions": [{"id": target["id"], "position": 1}]},
        headers=org.headers,
    )
    assert forbidden.status_code == 403
    assert await stored_children(db, Action, theirs["id"]) == before
    assert await stored_children(db, Action, mine["id"]) == []


async def test_action_of_another_assistant_is_404(client, org, make_assistant, make_action, db):
    first = await make_assistant(org)
    second = await make_assistant(org, name="Second")
    target = await make_action(org, first)
    before = await stored_child(db, Action, target["id"])
    url = f"{base(org, second)}/{target['id']}"
    assert (await client.get(url, headers=org.headers)).status_code == 404
    assert (await client.patch(url, json={"name": "x"}, headers=org.headers)).status_code == 404
    assert (await client.delete(url, headers=org.headers)).status_code == 404
    assert await stored_child(db, Action, target["id"]) == before


async def test_deleted_assistant_hides_its_actions(client, org, make_assistant, make_action, db):
    assistant = await make_assistant(org)
    target = await make_action(org, assistant)
    before = await stored_children(db, Action, assistant["id"])
    await mark_deleted(db, assistant["id"])
    url = f"{base(org, assistant)}/{target['id']}"
    responses = [
        await client.get(base(org, assistant), headers=org.headers),
        await client.post(
            base(org, assistant), json={"action_id": "A", "name": "x"}, headers=org.headers
        ),
        await client.patch(
            f"{base(org, assistant)}/reorder",
            json={"positions": [{"id": target["id"], "position": 1}]},
            headers=org.headers,
        ),
        await client.get(url, headers=org.headers),
        await client.patch(url, json={"name": "x"}, headers=org.headers),
        await client.delete(url, headers=org.headers),
    ]
    assert [r.status_code for r in responses] == [404] * 6
    assert await stored_children(db, Action, assistant["id"]) == before
