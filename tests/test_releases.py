"""Releases and environments (docs/releases.md), over REST and GraphQL, on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select

from app.models import AssistantEnvironment, AssistantRelease, AssistantRevision
from app.store import Store
from tests.helpers.factories import Org
from tests.helpers.keys import READ, WRITE, make_key, make_target

RELEASES = AssistantRelease.__table__  # type: ignore[attr-defined]
ENVIRONMENTS = AssistantEnvironment.__table__  # type: ignore[attr-defined]
REVISIONS = AssistantRevision.__table__  # type: ignore[attr-defined]


def url(assistant_id: str, tail: str = "") -> str:
    return f"/orgs/c/assistants/{assistant_id}{tail}"


async def publish(
    client: httpx.AsyncClient, org: Org, assistant_id: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(url(assistant_id, "/releases"), json=body, headers=org.headers)
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


async def stored_counts(db: Store, assistant_id: str) -> tuple[int, int, int]:
    """(releases, environments, published events) stored for the assistant."""
    async with db.read() as tx:
        releases = await tx.scalar(
            select(func.count())
            .select_from(RELEASES)
            .where(RELEASES.c.assistant_id == assistant_id)
        )
        environments = await tx.scalar(
            select(func.count())
            .select_from(ENVIRONMENTS)
            .where(ENVIRONMENTS.c.assistant_id == assistant_id)
        )
        events = await tx.scalar(
            select(func.count())
            .select_from(REVISIONS)
            .where(REVISIONS.c.assistant_id == assistant_id, REVISIONS.c.change_type == "published")
        )
    return int(releases or 0), int(environments or 0), int(events or 0)


async def test_publish_freezes_the_whole_assistant(client, org, db):
    target = await make_target(client, org)
    before = (await client.get(url(target.assistant_id), headers=org.headers)).json()
    release = await publish(client, org, target.assistant_id, note="first")
    assert release["number"] == 1
    assert release["assistant_id"] == target.assistant_id
    assert release["version"] == before["version"]
    assert release["note"] == "first"
    assert release["created_by_key_id"] == org.key_id
    frozen = release["assistant"]
    assert "secret_key" not in frozen
    for key in ("name", "enabled", "avatar_url", "config", "integrations", "actions"):
        assert frozen[key] == before[key], key
    assert [i["id"] for i in frozen["integrations"]] == [target.integration_id]
    assert [a["id"] for a in frozen["actions"]] == [target.action_id]
    # the draft's version is untouched, the history holds no new revision
    after = (await client.get(url(target.assistant_id), headers=org.headers)).json()
    assert after["version"] == before["version"]
    history = await client.get(url(target.assistant_id, "/revisions"), headers=org.headers)
    assert [r["version"] for r in history.json()] == list(range(before["version"], 0, -1))
    assert await stored_counts(db, target.assistant_id) == (1, 0, 1)


async def test_releases_are_immutable_listed_newest_first(client, org):
    created = (
        await client.post("/orgs/c/assistants", json={"name": "A"}, headers=org.headers)
    ).json()
    first = await publish(client, org, created["id"])
    patched = await client.patch(url(created["id"]), json={"name": "B"}, headers=org.headers)
    assert patched.status_code == 200
    second = await publish(client, org, created["id"])
    assert (first["assistant"]["name"], second["assistant"]["name"]) == ("A", "B")
    one = await client.get(url(created["id"], "/releases/1"), headers=org.headers)
    assert one.status_code == 200
    assert one.json() == first
    assert one.headers["etag"] == '"1"'
    listed = await client.get(url(created["id"], "/releases?take=1"), headers=org.headers)
    assert [r["number"] for r in listed.json()] == [2]
    assert listed.headers["pagination-count"] == "2"
    page2 = await client.get(url(created["id"], "/releases?take=1&page=2"), headers=org.headers)
    assert page2.json() == [first]
    missing = await client.get(url(created["id"], "/releases/3"), headers=org.headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")


async def test_pin_read_roll_back_with_etags(client, org, db):
    created = (
        await client.post("/orgs/c/assistants", json={"name": "A"}, headers=org.headers)
    ).json()
    aid = created["id"]
    await publish(client, org, aid, environment="production")
    await client.patch(url(aid), json={"name": "B"}, headers=org.headers)
    await publish(client, org, aid, environment="production")
    read = await client.get(url(aid, "/environments/production"), headers=org.headers)
    assert read.status_code == 200
    assert read.headers["etag"] == '"2"'
    assert (read.json()["number"], read.json()["assistant"]["name"]) == (2, "B")
    again = await client.get(
        url(aid, "/environments/production"), headers={**org.headers, "If-None-Match": '"2"'}
    )
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", '"2"')
    # a stale If-Match changes nothing
    stale = await client.put(
        url(aid, "/environments/production"),
        json={"release": 1},
        headers={**org.headers, "If-Match": '"1"'},
    )
    assert (stale.status_code, stale.json()["code"]) == (412, "PRECONDITION_FAILED")
    # roll back
    back = await client.put(
        url(aid, "/environments/production"),
        json={"release": 1},
        headers={**org.headers, "If-Match": '"2"'},
    )
    assert back.status_code == 200, back.text
    assert (back.json()["name"], back.json()["release"], back.json()["number"]) == (
        "production",
        1,
        1,
    )
    read = await client.get(
        url(aid, "/environments/production"), headers={**org.headers, "If-None-Match": '"2"'}
    )
    assert (read.status_code, read.headers["etag"], read.json()["assistant"]["name"]) == (
        200,
        '"1"',
        "A",
    )
    listed = await client.get(url(aid, "/environments"), headers=org.headers)
    assert [(e["name"], e["release"]) for e in listed.json()] == [("production", 1)]
    unknown = await client.put(
        url(aid, "/environments/staging"), json={"release": 9}, headers=org.headers
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
    bad = await client.put(
        url(aid, "/environments/Bad_Name"), json={"release": 1}, headers=org.headers
    )
    assert bad.status_code == 400
    assert "environment" in bad.text
    assert await stored_counts(db, aid) == (2, 1, 3)
    gone = await client.delete(url(aid, "/environments/production"), headers=org.headers)
    assert gone.status_code == 204
    missing = await client.get(url(aid, "/environments/production"), headers=org.headers)
    assert missing.status_code == 404
    assert await stored_counts(db, aid) == (2, 0, 3)


async def test_stale_if_match_on_publish_changes_nothing(client, org, db):
    created = (
        await client.post("/orgs/c/assistants", json={"name": "A"}, headers=org.headers)
    ).json()
    stale = await client.post(
        url(created["id"], "/releases"),
        json={"environment": "production"},
        headers={**org.headers, "If-Match": '"7"'},
    )
    assert stale.status_code == 412
    assert await stored_counts(db, created["id"]) == (0, 0, 0)
    fresh = await client.post(
        url(created["id"], "/releases"),
        json={"environment": "production"},
        headers={**org.headers, "If-Match": '"1"'},
    )
    assert fresh.status_code == 201
    assert fresh.headers["location"].endswith("/releases/1")


async def test_diff_against_draft_release_and_environment(client, org):
    target = await make_target(client, org)
    aid = target.assistant_id
    await publish(client, org, aid, environment="production")
    await client.patch(
        url(aid),
        json={"name": "Renamed", "config": {"tts": {"voice_id": "v9"}}},
        headers=org.headers,
    )
    await client.patch(
        url(aid, f"/integrations/{target.integration_id}"),
        json={"enabled": False},
        headers=org.headers,
    )
    second = await client.post(
        url(aid, "/actions"),
        json={"action_id": "TOOLS:HTTP_REQUEST", "name": "two"},
        headers=org.headers,
    )
    assert second.status_code == 201, second.text
    await publish(client, org, aid)
    diff = await client.get(url(aid, "/releases/2/diff?against=1"), headers=org.headers)
    assert diff.status_code == 200, diff.text
    changes = {c["path"]: (c["from"], c["to"]) for c in diff.json()["changes"]}
    assert changes["name"] == ("Target 2", "Renamed")
    assert changes["config.tts.voice_id"] == (None, "v9")
    assert changes[f"integrations.{target.integration_id}.enabled"] == (True, False)
    assert changes["actions.order"] == ([target.action_id], [target.action_id, second.json()["id"]])
    by_env = await client.get(url(aid, "/releases/2/diff?against=production"), headers=org.headers)
    assert by_env.json()["changes"] == diff.json()["changes"]
    draft = await client.get(url(aid, "/releases/2/diff?against=draft"), headers=org.headers)
    assert draft.json()["changes"] == []
    for against in ("9", "nowhere", "Bad!"):
        missing = await client.get(
            url(aid, f"/releases/2/diff?against={against}"), headers=org.headers
        )
        assert missing.status_code == 404, against


async def test_restricted_keys_and_scopes(client, org, db):
    mine = (
        await client.post("/orgs/c/assistants", json={"name": "Mine"}, headers=org.headers)
    ).json()
    other = (
        await client.post("/orgs/c/assistants", json={"name": "Other"}, headers=org.headers)
    ).json()
    await publish(client, org, other["id"], environment="production")
    bound = await make_key(client, org, [READ, WRITE], assistant_ids=[mine["id"]])
    reader = await make_key(client, org, [READ])
    ok = await client.post(url(mine["id"], "/releases"), json={}, headers=bound.headers)
    assert ok.status_code == 201
    for method, tail, body in (
        ("POST", "/releases", {}),
        ("GET", "/releases", None),
        ("GET", "/releases/1", None),
        ("GET", "/environments", None),
        ("GET", "/environments/production", None),
        ("PUT", "/environments/production", {"release": 1}),
        ("DELETE", "/environments/production", None),
    ):
        refused = await client.request(
            method, url(other["id"], tail), json=body, headers=bound.headers
        )
        assert refused.status_code == 404, (method, tail)
    read = await client.get(url(other["id"], "/environments/production"), headers=reader.headers)
    assert read.status_code == 200
    refused = await client.post(url(other["id"], "/releases"), json={}, headers=reader.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "INSUFFICIENT_SCOPE")
    assert await stored_counts(db, other["id"]) == (1, 1, 1)


async def test_deleting_the_assistant_deletes_its_releases(client, org, db):
    created = (
        await client.post("/orgs/c/assistants", json={"name": "A"}, headers=org.headers)
    ).json()
    await publish(client, org, created["id"], environment="production")
    assert (await stored_counts(db, created["id"]))[:2] == (1, 1)
    deleted = await client.delete(url(created["id"]), headers=org.headers)
    assert deleted.status_code in (200, 204)
    assert (await stored_counts(db, created["id"]))[:2] == (0, 0)
    gone = await client.get(url(created["id"], "/environments/production"), headers=org.headers)
    assert gone.status_code == 404


PUBLISH = """
mutation($id: ID!, $env: String, $note: String, $expected: Int) {
  publishAssistant(orgId: "c", assistantId: $id, environment: $env, note: $note,
                   expectedVersion: $expected) {
    number assistantId version note createdByKeyId assistant
  }
}
"""
PIN = """
mutation($id: ID!, $env: String!, $release: Int!, $expected: Int) {
  pinEnvironment(orgId: "c", assistantId: $id, environment: $env, release: $release,
                 expectedRelease: $expected) {
    name updatedAt release { number assistant }
  }
}
"""
READ_ALL = """
query($id: ID!, $first: Int, $after: String) {
  assistant(orgId: "c", id: $id) {
    releases(first: $first, after: $after) {
      totalCount pageInfo { hasNextPage endCursor } nodes { number note }
    }
    release(number: 1) { number assistant diff(against: "draft") { path from to } }
    environments { name release { number } }
    environment(name: "production") { name release { number version } }
  }
}
"""


async def test_graphql_publish_pin_read_and_diff(client, org, gql, db):
    created = (
        await client.post("/orgs/c/assistants", json={"name": "A"}, headers=org.headers)
    ).json()
    aid = created["id"]
    first = await gql(PUBLISH, {"id": aid, "env": "production", "note": "n1"}, org)
    assert "errors" not in first, first
    release = first["data"]["publishAssistant"]
    assert (release["number"], release["version"], release["note"]) == (1, 1, "n1")
    assert release["createdByKeyId"] == org.key_id
    assert release["assistant"]["name"] == "A"
    assert "secret_key" not in release["assistant"]
    await client.patch(url(aid), json={"name": "B"}, headers=org.headers)
    stale = await gql(PUBLISH, {"id": aid, "expected": 1}, org)
    assert stale["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert await stored_counts(db, aid) == (1, 1, 1)
    second = await gql(PUBLISH, {"id": aid, "expected": 2}, org)
    assert second["data"]["publishAssistant"]["number"] == 2

    pinned = await gql(PIN, {"id": aid, "env": "production", "release": 2, "expected": 1}, org)
    assert "errors" not in pinned, pinned
    assert pinned["data"]["pinEnvironment"]["release"]["number"] == 2
    conflict = await gql(PIN, {"id": aid, "env": "production", "release": 1, "expected": 1}, org)
    assert conflict["errors"][0]["extensions"]["code"] == "CONFLICT"
    unknown = await gql(PIN, {"id": aid, "env": "production", "release": 7}, org)
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    read = await gql(READ_ALL, {"id": aid, "first": 1}, org)
    assert "errors" not in read, read
    assistant = read["data"]["assistant"]
    assert assistant["releases"]["totalCount"] == 2
    assert assistant["releases"]["nodes"] == [{"number": 2, "note": None}]
    assert assistant["releases"]["pageInfo"]["hasNextPage"] is True
    assert assistant["release"]["diff"] == [{"path": "name", "from": "B", "to": "A"}]
    assert assistant["environments"] == [{"name": "production", "release": {"number": 2}}]
    assert assistant["environment"] == {
        "name": "production",
        "release": {"number": 2, "version": 2},
    }
    after = assistant["releases"]["pageInfo"]["endCursor"]
    page2 = await gql(READ_ALL, {"id": aid, "first": 1, "after": after}, org)
    assert page2["data"]["assistant"]["releases"]["nodes"] == [{"number": 1, "note": "n1"}]

    removed = await gql(
        'mutation($id: ID!) { removeEnvironment(orgId: "c", assistantId: $id, '
        'environment: "production") }',
        {"id": aid},
        org,
    )
    assert removed["data"] == {"removeEnvironment": True}
    missing = await gql(READ_ALL, {"id": aid}, org)
    assert missing["data"]["assistant"]["environment"] is None
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert await stored_counts(db, aid) == (2, 0, 3)


async def test_invalid_input_names_the_field_and_stores_nothing(client, org, db):
    created = (
        await client.post("/orgs/c/assistants", json={"name": "A"}, headers=org.headers)
    ).json()
    aid = created["id"]
    for body, field in (
        ({"environment": "Prod!"}, "environment"),
        ({"environment": "x" * 33}, "environment"),
        ({"note": "n" * 1025}, "note"),
        ({"note": 5}, "note"),
        ({"extra": 1}, "extra"),
    ):
        refused = await client.post(url(aid, "/releases"), json=body, headers=org.headers)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["errors"][0]["path"] == field, refused.json()
    for body, field in (
        ({"release": 0}, "release"),
        ({"release": "1"}, "release"),
        ({}, "release"),
    ):
        refused = await client.put(url(aid, "/environments/prod"), json=body, headers=org.headers)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["errors"][0]["path"] == field, refused.json()
    assert await stored_counts(db, aid) == (0, 0, 0)
    # no body at all is a release without environment or note
    bare = await client.post(url(aid, "/releases"), headers=org.headers)
    assert (bare.status_code, bare.json()["note"]) == (201, None)


async def test_at_most_ten_environments(client, org, db):
    created = (
        await client.post("/orgs/c/assistants", json={"name": "A"}, headers=org.headers)
    ).json()
    aid = created["id"]
    await publish(client, org, aid)
    for index in range(10):
        pinned = await client.put(
            url(aid, f"/environments/env-{index}"), json={"release": 1}, headers=org.headers
        )
        assert pinned.status_code == 200, pinned.text
    refused = await client.put(
        url(aid, "/environments/one-more"), json={"release": 1}, headers=org.headers
    )
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["path"] == "environment"
    again = await client.put(
        url(aid, "/environments/env-3"), json={"release": 1}, headers=org.headers
    )
    assert again.status_code == 200  # re-pinning an existing one is no new environment
    assert await stored_counts(db, aid) == (1, 10, 11)


async def test_concurrent_publishes_get_every_number_once(client, org, db):
    created = (
        await client.post("/orgs/c/assistants", json={"name": "A"}, headers=org.headers)
    ).json()
    aid = created["id"]

    async def one(index: int) -> int:
        response = await client.post(
            url(aid, "/releases"), json={"environment": "production"}, headers=org.headers
        )
        assert response.status_code == 201, response.text
        number: int = response.json()["number"]
        return number

    numbers = await asyncio.gather(*(one(i) for i in range(8)))
    assert sorted(numbers) == list(range(1, 9))
    listed = await client.get(url(aid, "/releases"), headers=org.headers)
    assert [r["number"] for r in listed.json()] == list(range(8, 0, -1))
    assert await stored_counts(db, aid) == (8, 1, 8)
