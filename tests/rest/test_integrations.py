"""REST: `/orgs/{org_id}/assistants/{assistant_id}/integrations`."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import Integration
from tests.helpers.rows import mark_deleted, stored_child, stored_children

ANY_ID, ANY_TIME = object(), object()


def base(org: Any, assistant: dict[str, Any]) -> str:
    return f"/orgs/{org.org_id}/assistants/{assistant['id']}/integrations"


@pytest.fixture
def make_integration(client):
    async def make(org: Any, assistant: dict[str, Any], **body: Any) -> dict[str, Any]:
        body.setdefault("integration_id", "whatsapp")
        response = await client.post(base(org, assistant), json=body, headers=org.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    return make


def paths(response: Any) -> list[str]:
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "VALIDATION_FAILED"
    assert response.headers["content-type"] == "application/problem+json"
    return [e["path"] for e in problem["errors"]]


async def test_create_with_defaults(client, org, make_assistant, db):
    assistant = await make_assistant(org)
    response = await client.post(
        base(org, assistant), json={"integration_id": "internal"}, headers=org.headers
    )
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "enabled": True,
        "integration_id": "internal",
        "assistant_id": assistant["id"],
        "connection_id": None,
        "config": {},
        "error": None,
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
    }
    assert body["created_at"].endswith("Z")
    row = await stored_child(db, Integration, body["id"])
    assert row is not None
    assert (row["org_id"], row["integration_id"], row["enabled"], row["config"]) == (
        org.org_id,
        "internal",
        True,
        {},
    )


async def test_create_with_every_field_then_read_and_list(client, org, make_assistant):
    assistant = await make_assistant(org)
    first = await client.post(
        base(org, assistant),
        json={
            "integration_id": "whatsapp",
            "enabled": False,
            "connection_id": "conn-1",
            "config": {"phone": "+33", "nested": {"list": [1, True, None]}},
        },
        headers=org.headers,
    )
    second = await client.post(
        base(org, assistant), json={"integration_id": "web-chat"}, headers=org.headers
    )
    created = first.json()
    assert (created["enabled"], created["connection_id"]) == (False, "conn-1")
    assert created["config"] == {"phone": "+33", "nested": {"list": [1, True, None]}}

    one = await client.get(f"{base(org, assistant)}/{created['id']}", headers=org.headers)
    assert one.status_code == 200
    assert one.json() == created
    listed = await client.get(base(org, assistant), headers=org.headers)
    assert listed.status_code == 200
    assert listed.json() == [created, second.json()]  # oldest first


async def test_assistant_document_carries_integrations(
    client, org, make_assistant, make_integration
):
    assistant = await make_assistant(org)
    created = await make_integration(org, assistant)
    response = await client.get(
        f"/orgs/{org.org_id}/assistants/{assistant['id']}", headers=org.headers
    )
    assert response.json()["integrations"] == [created]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, ["integration_id"]),
        ({"integration_id": "WhatsApp"}, ["integration_id"]),
        ({"integration_id": "what sapp"}, ["integration_id"]),
        ({"integration_id": ""}, ["integration_id"]),
        ({"integration_id": "a" * 65}, ["integration_id"]),
        ({"integration_id": "x", "config": []}, ["config"]),
        ({"integration_id": "x", "config": "{}"}, ["config"]),
        ({"integration_id": "x", "config": None}, ["config"]),
        ({"integration_id": "x", "config": {"k": "a\u0000b"}}, ["config"]),
        ({"integration_id": "x", "enabled": None}, ["enabled"]),
        ({"integration_id": "x", "enabled": "yes"}, ["enabled"]),
        ({"integration_id": "x", "connection_id": ""}, ["connection_id"]),
        ({"integration_id": "x", "connection_id": "c" * 201}, ["connection_id"]),
        ({"integration_id": "x", "error": "boom"}, ["error"]),
        ({"integration_id": "x", "id": "mine"}, ["id"]),
        ({"integration_id": "x", "assistant_id": "a"}, ["assistant_id"]),
        ({"integration_id": "x", "created_at": "2020-01-01T00:00:00Z"}, ["created_at"]),
        ({"integration_id": "x", "colour": "red"}, ["colour"]),
        (
            {"integration_id": 3, "error": None, "surprise": 1},
            ["integration_id", "error", "surprise"],
        ),
    ],
)
async def test_create_validation(client, org, make_assistant, db, body, expected):
    assistant = await make_assistant(org)
    response = await client.post(base(org, assistant), json=body, headers=org.headers)
    assert sorted(paths(response)) == sorted(expected)
    assert await stored_children(db, Integration, assistant["id"]) == []


async def test_read_only_and_unknown_keys_are_named(client, org, make_assistant):
    assistant = await make_assistant(org)
    response = await client.post(
        base(org, assistant),
        json={"integration_id": "x", "error": "e", "colour": "red"},
        headers=org.headers,
    )
    errors = {e["path"]: e["message"] for e in response.json()["errors"]}
    assert errors == {"error": "'error' is read-only", "colour": "unknown field 'colour'"}


async def test_create_says_what_is_wrong_with_the_slug(client, org, make_assistant):
    assistant = await make_assistant(org)
    missing = await client.post(base(org, assistant), json={}, headers=org.headers)
    bad = await client.post(
        base(org, assistant), json={"integration_id": "Wa"}, headers=org.headers
    )
    [missing_error], [bad_error] = missing.json()["errors"], bad.json()["errors"]
    assert missing_error["path"] == bad_error["path"] == "integration_id"
    assert "required" in missing_error["message"]
    assert "fixed at creation" not in bad_error["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"'])
async def test_body_not_a_json_object(client, org, make_assistant, raw):
    assistant = await make_assistant(org)
    response = await client.post(
        base(org, assistant),
        content=raw,
        headers={**org.headers, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "BAD_REQUEST"


async def test_update_changes_sent_keys_and_replaces_config(
    client, org, make_assistant, make_integration, db
):
    assistant = await make_assistant(org)
    created = await make_integration(
        org, assistant, connection_id="c1", config={"a": 1, "b": {"c": 2}}
    )
    response = await client.patch(
        f"{base(org, assistant)}/{created['id']}",
        json={"enabled": False, "config": {"b": {"d": 3}}},
        headers=org.headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert body == {
        **created,
        "enabled": False,
        "config": {"b": {"d": 3}},
        "updated_at": body["updated_at"],
    }
    assert body["updated_at"] > created["updated_at"]
    row = await stored_child(db, Integration, created["id"])
    assert row is not None
    assert (row["enabled"], row["connection_id"], row["config"]) == (False, "c1", {"b": {"d": 3}})


async def test_update_null_clears_connection(client, org, make_assistant, make_integration, db):
    assistant = await make_assistant(org)
    created = await make_integration(org, assistant, connection_id="c1")
    response = await client.patch(
        f"{base(org, assistant)}/{created['id']}",
        json={"connection_id": None},
        headers={**org.headers, "content-type": "application/merge-patch+json"},
    )
    assert response.status_code == 200
    assert response.json()["connection_id"] is None
    row = await stored_child(db, Integration, created["id"])
    assert row is not None
    assert row["connection_id"] is None


async def test_update_without_change_keeps_updated_at(
    client, org, make_assistant, make_integration
):
    assistant = await make_assistant(org)
    created = await make_integration(org, assistant, config={"a": 1, "b": 2})
    for body in ({}, {"enabled": True, "config": {"b": 2, "a": 1}}):
        response = await client.patch(
            f"{base(org, assistant)}/{created['id']}", json=body, headers=org.headers
        )
        assert response.status_code == 200
        assert response.json() == created


async def test_update_true_is_not_one(client, org, make_assistant, make_integration):
    assistant = await make_assistant(org)
    created = await make_integration(org, assistant, config={"a": 1})
    response = await client.patch(
        f"{base(org, assistant)}/{created['id']}",
        json={"config": {"a": True}},
        headers=org.headers,
    )
    assert response.json()["config"] == {"a": True}
    assert response.json()["updated_at"] > created["updated_at"]


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ({"integration_id": "telegram"}, "integration_id", "'integration_id' is fixed at creation"),
        ({"error": None}, "error", "'error' is read-only"),
        ({"id": "x"}, "id", "'id' is read-only"),
        ({"enabled": None}, "enabled", "may not be null"),
        ({"config": None}, "config", "may not be null"),
        ({"config": [1]}, "config", "must be a JSON object"),
        ({"connection_id": "x" * 201}, "connection_id", None),
        ({"colour": "red"}, "colour", "unknown field 'colour'"),
    ],
)
async def test_update_validation_stores_nothing(
    client, org, make_assistant, make_integration, db, body, path, message
):
    assistant = await make_assistant(org)
    created = await make_integration(org, assistant, config={"keep": True})
    before = await stored_child(db, Integration, created["id"])
    response = await client.patch(
        f"{base(org, assistant)}/{created['id']}",
        json={"enabled": False, **body},
        headers=org.headers,
    )
    errors = response.json()["errors"]
    assert paths(response) == [path]
    if message:
        assert errors[0]["message"] == message
    assert await stored_child(db, Integration, created["id"]) == before


async def test_delete_then_404(client, org, make_assistant, make_integration, db):
    assistant = await make_assistant(org)
    kept = await make_integration(org, assistant, integration_id="kept")
    gone = await make_integration(org, assistant)
    url = f"{base(org, assistant)}/{gone['id']}"
    response = await client.delete(url, headers=org.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert await stored_child(db, Integration, gone["id"]) is None
    assert (await client.get(url, headers=org.headers)).status_code == 404
    assert (await client.patch(url, json={}, headers=org.headers)).status_code == 404
    assert (await client.delete(url, headers=org.headers)).status_code == 404
    listed = await client.get(base(org, assistant), headers=org.headers)
    assert listed.json() == [kept]


async def test_another_organisations_integration_is_404(
    client, org, other_org, make_assistant, make_integration, db
):
    mine = await make_assistant(org)
    theirs = await make_assistant(other_org)
    target = await make_integration(other_org, theirs, config={"secret": 1})
    before = await stored_children(db, Integration, theirs["id"])
    # Their assistant id under my organisation: the parent is not found.
    foreign_parent = f"/orgs/{org.org_id}/assistants/{theirs['id']}/integrations"
    assert (await client.get(foreign_parent, headers=org.headers)).status_code == 404
    post = await client.post(foreign_parent, json={"integration_id": "x"}, headers=org.headers)
    assert post.status_code == 404
    # Their integration id under my own assistant and under their assistant id.
    for url in (f"{base(org, mine)}/{target['id']}", f"{foreign_parent}/{target['id']}"):
        for method, kwargs in (
            ("GET", {}),
            ("PATCH", {"json": {"enabled": False, "config": {}}}),
            ("DELETE", {}),
        ):
            response = await client.request(method, url, headers=org.headers, **kwargs)
            assert response.status_code == 404, (method, url)
            assert response.json()["code"] == "NOT_FOUND"
            assert "secret" not in response.text
    # Their organisation's URL with my key: forbidden.
    their_url = f"{base(other_org, theirs)}/{target['id']}"
    response = await client.patch(their_url, json={"enabled": False}, headers=org.headers)
    assert response.status_code == 403
    assert (await client.get(base(other_org, theirs), headers=org.headers)).status_code == 403
    assert await stored_children(db, Integration, theirs["id"]) == before
    assert await stored_children(db, Integration, mine["id"]) == []


async def test_integration_of_another_assistant_is_404(
    client, org, make_assistant, make_integration, db
):
    first = await make_assistant(org)
    second = await make_assistant(org, name="Second")
    target = await make_integration(org, first)
    before = await stored_child(db, Integration, target["id"])
    url = f"{base(org, second)}/{target['id']}"
    assert (await client.get(url, headers=org.headers)).status_code == 404
    assert (
        await client.patch(url, json={"enabled": False}, headers=org.headers)
    ).status_code == 404
    assert (await client.delete(url, headers=org.headers)).status_code == 404
    assert await stored_child(db, Integration, target["id"]) == before


async def test_deleted_assistant_hides_its_integrations(
    client, org, make_assistant, make_integration, db
):
    assistant = await make_assistant(org)
    target = await make_integration(org, assistant)
    before = await stored_child(db, Integration, target["id"])
    await mark_deleted(db, assistant["id"])
    url = f"{base(org, assistant)}/{target['id']}"
    responses = [
        await client.get(base(org, assistant), headers=org.headers),
        await client.post(base(org, assistant), json={"integration_id": "x"}, headers=org.headers),
        await client.get(url, headers=org.headers),
        await client.patch(url, json={"enabled": False}, headers=org.headers),
        await client.delete(url, headers=org.headers),
    ]
    assert [r.status_code for r in responses] == [404] * 5
    assert await stored_child(db, Integration, target["id"]) == before
    assert len(await stored_children(db, Integration, assistant["id"])) == 1


async def test_needs_an_api_key(client, org, make_assistant):
    assistant = await make_assistant(org)
    response = await client.get(base(org, assistant))
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"
