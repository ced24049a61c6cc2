"""Revisions, restore and dry runs, over REST and GraphQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

TEN_PATCHES: list[dict[str, Any]] = [
    {"name": "One"},
    {"config": {"tts": {"voice_id": "v2", "model": "tts-1"}}},
    {"enabled": False},
    {"config": {"conversation": {"suggested_messages": ["a", "b"]}}},
    {"config": {"language": "pt-BR", "timezone": "Europe/Lisbon"}},
    {"config": {"conversation": {"welcome_banner": "Hello", "thread_mode": "continue"}}},
    {"config": {"instructions": "Be brief."}},
    {"config": {"tts": {"voice_id": None}, "stt": {"model": "whisper"}}},
    {"config": {"conversation": {"suggested_messages": ["c"], "enable_auto_csat": True}}},
    {"name": "Ten", "config": {"knowledge_scope": "none"}},
]

REVISIONS = """
query($id: ID!, $first: Int, $after: String) {
  assistant(orgId: "c", id: $id) {
    revisions(first: $first, after: $after) {
      totalCount pageInfo { hasNextPage endCursor }
      edges { cursor node { version changeType source actorKeyId changedAt
        changes { path from to }
        snapshot { id version name enabled config { tts { voiceId } } } } }
    }
  }
}
"""


def url(org_id: str, assistant_id: str, tail: str = "") -> str:
    return f"/orgs/{org_id}/assistants/{assistant_id}{tail}"


def leaves(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"config.tts.voice_id": …} of the replayable part of an assistant or snapshot."""
    found: dict[str, Any] = {}
    for key, value in document.items():
        if not prefix and key not in ("name", "enabled", "avatar_id", "config"):
            continue
        if isinstance(value, dict):
            found.update(leaves(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return found


async def all_revisions(client, org, assistant_id) -> list[dict[str, Any]]:
    response = await client.get(url("c", assistant_id, "/revisions"), headers=org.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_ten_updates_replay_from_the_first_snapshot(client, org, make_assistant):
    created = await make_assistant(org, config={"tts": {"voice_id": "v1"}})
    for patch in TEN_PATCHES:
        response = await client.patch(url("c", created["id"]), json=patch, headers=org.headers)
        assert response.status_code == 200, response.text
    current = response.json()
    history = await all_revisions(client, org, created["id"])
    assert [r["version"] for r in history] == list(range(11, 0, -1))
    assert [r["change_type"] for r in history] == ["updated"] * 10 + ["created"]
    assert {(r["source"], r["actor_key_id"]) for r in history} == {("rest", org.key_id)}

    first = await client.get(url("c", created["id"], "/revisions/1"), headers=org.headers)
    state = leaves(first.json()["snapshot"])
    assert all(change["from"] is None for change in history[-1]["changes"])
    for revision in reversed(history[:-1]):
        for change in revision["changes"]:
            assert state[change["path"]] == change["from"], change
            state[change["path"]] = change["to"]
    assert state == leaves(current)


async def test_created_lists_every_leaf_and_rotation_hides_the_key(client, org, make_assistant):
    created = await make_assistant(org, generate_secret_key=True)
    rotated = await client.post(url("c", created["id"], "/rotate-secret-key"), headers=org.headers)
    history = await all_revisions(client, org, created["id"])
    assert history[0]["change_type"] == "secret_key_rotated"
    assert history[0]["changes"] == [{"path": "secret_key", "from": None, "to": None}]
    paths = {c["path"] for c in history[1]["changes"]}
    assert {"name", "config.tts.voice_id", "config.conversation.suggested_messages"} <= paths
    everything = json.dumps(history) + json.dumps(
        [
            (
                await client.get(url("c", created["id"], f"/revisions/{v}"), headers=org.headers)
            ).json()
            for v in (1, 2)
        ]
    )
    assert created["secret_key"] not in everything
    assert rotated.json()["secret_key"] not in everything


async def test_a_no_op_writes_no_revision(client, org, make_assistant):
    created = await make_assistant(org, name="Same")
    await client.patch(url("c", created["id"]), json={"name": "Same"}, headers=org.headers)
    assert len(await all_revisions(client, org, created["id"])) == 1


async def test_restore_brings_back_the_config_and_leaves_children(client, org, make_assistant):
    created = await make_assistant(
        org, config={"tts": {"voice_id": "v1"}}, generate_secret_key=True
    )
    integration = await client.post(
        url("c", created["id"], "/integrations"),
        json={"integration_id": "internal"},
        headers=org.headers,
    )
    assert integration.status_code == 201
    for patch in TEN_PATCHES[:4]:
        await client.patch(url("c", created["id"]), json=patch, headers=org.headers)
    snapshot = (
        await client.get(url("c", created["id"], "/revisions/2"), headers=org.headers)
    ).json()["snapshot"]
    stale = await client.post(
        url("c", created["id"], "/revisions/2/restore"), headers={**org.headers, "If-Match": '"4"'}
    )
    assert stale.status_code == 412
    restored = await client.post(
        url("c", created["id"], "/revisions/2/restore"), headers={**org.headers, "If-Match": '"5"'}
    )
    assert restored.status_code == 200, restored.text
    body = restored.json()
    assert body["config"] == snapshot["config"]
    assert (body["name"], body["enabled"], body["version"]) == (snapshot["name"], True, 6)
    assert body["secret_key"] == created["secret_key"]
    assert [i["id"] for i in body["integrations"]] == [integration.json()["id"]]
    latest = (await all_revisions(client, org, created["id"]))[0]
    assert latest["change_type"] == "restored"
    assert latest["version"] == 6
    missing = await client.post(
        url("c", created["id"], "/revisions/99/restore"), headers=org.headers
    )
    assert missing.status_code == 404


async def test_dry_run_stores_nothing(client, org, make_assistant, stored):
    created = await make_assistant(org)
    before_row = await stored(created["id"])
    before_history = await all_revisions(client, org, created["id"])
    response = await client.patch(
        url("c", created["id"], "?dry_run=true"),
        json={"name": "Would be", "config": {"tts": {"voice_id": "v9"}}},
        headers=org.headers,
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert (preview["name"], preview["config"]["tts"]["voice_id"]) == ("Would be", "v9")
    assert (preview["version"], preview["updated_at"]) == (
        created["version"],
        created["updated_at"],
    )
    assert await stored(created["id"]) == before_row
    assert await all_revisions(client, org, created["id"]) == before_history
    invalid = await client.patch(
        url("c", created["id"], "?dry_run=true"), json={"name": ""}, headers=org.headers
    )
    assert invalid.status_code == 400
    assert invalid.json()["errors"][0]["path"] == "name"
    bad_flag = await client.patch(
        url("c", created["id"], "?dry_run=maybe"), json={}, headers=org.headers
    )
    assert bad_flag.status_code == 400


async def test_history_is_invisible_to_another_organisation(client, org, other_org, make_assistant):
    created = await make_assistant(org)
    for tail in ("/revisions", "/revisions/1"):
        foreign = await client.get(url(org.org_id, created["id"], tail), headers=other_org.headers)
        assert foreign.status_code == 403
        own = await client.get(url("c", created["id"], tail), headers=other_org.headers)
        assert own.status_code == 404
    restore = await client.post(
        url("c", created["id"], "/revisions/1/restore"), headers=other_org.headers
    )
    assert restore.status_code == 404


async def test_revision_pages_and_huge_versions(client, org, make_assistant):
    created = await make_assistant(org)
    for n in range(4):
        await client.patch(url("c", created["id"]), json={"name": f"n{n}"}, headers=org.headers)
    page = await client.get(
        url("c", created["id"], "/revisions?page=2&take=2"), headers=org.headers
    )
    assert [r["version"] for r in page.json()] == [3, 2]
    assert page.headers["pagination-count"] == "5"
    huge = await client.get(url("c", created["id"], f"/revisions/{10**30}"), headers=org.headers)
    assert huge.status_code == 404


@pytest.mark.parametrize("keep", [3])
async def test_revisions_keep_prunes_the_oldest(client, org, make_assistant, app, keep):
    app.state.settings.revisions_keep = keep
    created = await make_assistant(org)
    for n in range(5):
        await client.patch(url("c", created["id"]), json={"name": f"n{n}"}, headers=org.headers)
    assert [r["version"] for r in await all_revisions(client, org, created["id"])] == [6, 5, 4]


async def test_graphql_history_dry_run_and_restore(gql, org, other_org, make_assistant, stored):
    created = await make_assistant(org, config={"tts": {"voice_id": "v1"}})
    update = """mutation($id: ID!, $dry: Boolean!) { updateAssistant(orgId: "c", assistantId: $id,
      input: {config: {tts: {voiceId: "v2"}}}, dryRun: $dry) {
        version config { tts { voiceId } } } }"""
    before = await stored(created["id"])
    dry = await gql(update, {"id": created["id"], "dry": True}, org)
    assert dry["data"]["updateAssistant"] == {"version": 1, "config": {"tts": {"voiceId": "v2"}}}
    assert await stored(created["id"]) == before
    real = await gql(update, {"id": created["id"], "dry": False}, org)
    assert real["data"]["updateAssistant"]["version"] == 2

    page = await gql(REVISIONS, {"id": created["id"], "first": 1}, org)
    connection = page["data"]["assistant"]["revisions"]
    assert connection["totalCount"] == 2
    assert connection["pageInfo"]["hasNextPage"] is True
    node = connection["edges"][0]["node"]
    assert node["changeType"] == "UPDATED"
    assert (node["source"], node["actorKeyId"]) == ("graphql", org.key_id)
    assert node["changes"] == [{"path": "config.tts.voiceId", "from": "v1", "to": "v2"}]
    assert node["snapshot"]["config"]["tts"]["voiceId"] == "v2"
    rest = await gql(
        REVISIONS,
        {"id": created["id"], "first": 5, "after": connection["pageInfo"]["endCursor"]},
        org,
    )
    older = rest["data"]["assistant"]["revisions"]["edges"]
    assert [e["node"]["version"] for e in older] == [1]
    assert older[0]["node"]["snapshot"]["config"]["tts"]["voiceId"] == "v1"

    restore = """mutation($id: ID!, $v: Int!, $e: Int) { restoreAssistantRevision(orgId: "c",
      assistantId: $id, version: $v, expectedVersion: $e) {
        version config { tts { voiceId } } } }"""
    conflict = await gql(restore, {"id": created["id"], "v": 1, "e": 1}, org)
    assert conflict["errors"][0]["extensions"]["code"] == "CONFLICT"
    done = await gql(restore, {"id": created["id"], "v": 1, "e": 2}, org)
    assert done["data"]["restoreAssistantRevision"] == {
        "version": 3,
        "config": {"tts": {"voiceId": "v1"}},
    }
    missing = await gql(restore, {"id": created["id"], "v": 42}, org)
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    foreign = await gql(restore, {"id": created["id"], "v": 1}, other_org)
    assert foreign["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert (await stored(created["id"]))["version"] == 3
