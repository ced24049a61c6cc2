"""Bundles over HTTP (docs/bundles.md): `POST /orgs/{org_id}/bundles/apply` and
`applyBundle`, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.helpers.bundles import bundle, seed
from tests.helpers.keys import everything, make_key

APPLY = """mutation($bundle: JSON!, $dry: Boolean!, $prune: Boolean!) {
  applyBundle(orgId: "c", bundle: $bundle, dryRun: $dry, prune: $prune) }"""
SUPPORT = {
    "ref": "support",
    "name": "Support",
    "config": {"tts": {"voice_id": "v1"}, "conversation": {"thread_mode": "continue"}},
    "integrations": [{"integration_id": "whatsapp", "config": {"phone": "1"}}],
    "actions": [
        {"action_id": "TOOLS:HTTP_REQUEST", "name": "First"},
        {"action_id": "TOOLS:HTTP_REQUEST", "name": "Second"},
    ],
}


async def apply(client: Any, org: Any, document: Any, query: str = "") -> Any:
    return await client.post(
        f"/orgs/{org.org_id}/bundles/apply{query}", json=document, headers=org.headers
    )


async def test_apply_creates_then_finds_nothing_to_do(client, org, db):
    answer = await apply(client, org, bundle(SUPPORT, {"ref": "other", "name": "Other"}))
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert plan["applied"] is True
    assert plan["summary"] == {"create": 2, "update": 0, "unchanged": 0, "delete": 0}
    [support, _other] = plan["assistants"]
    assert (support["ref"], support["action"]) == ("support", "create")
    assert {"path": "config.tts.voice_id", "from": None, "to": "v1"} in support["changes"]
    assert {"path": "actions.Second", "from": None, "to": SUPPORT["actions"][1] | {
        "enabled": True, "instructions": "", "connection_id": None,
        "config": {"input": {}, "definitions": []},
    }} in support["changes"]  # fmt: skip
    url = f"/orgs/{org.org_id}/assistants/{support['id']}"
    read = (await client.get(url, headers=org.headers)).json()
    assert read["ref"] == "support"
    assert read["config"]["conversation"]["thread_mode"] == "continue"
    assert [i["config"] for i in read["integrations"]] == [{"phone": "1"}]
    assert [a["name"] for a in read["actions"]] == ["First", "Second"]
    [revision] = (await client.get(f"{url}/revisions", headers=org.headers)).json()
    assert (revision["source"], revision["actor_key_id"]) == ("bundle", org.key_id)
    before = await everything(db)
    again = await apply(client, org, bundle(SUPPORT, {"ref": "other", "name": "Other"}))
    assert again.json()["summary"] == {"create": 0, "update": 0, "unchanged": 2, "delete": 0}
    assert await everything(db) == before


async def test_a_dry_run_answers_the_plan_and_stores_nothing(client, org, db):
    await apply(client, org, bundle(SUPPORT))
    changed = {**SUPPORT, "enabled": False, "actions": SUPPORT["actions"][::-1]}
    before = await everything(db)
    answer = await apply(client, org, bundle(changed), "?dry_run=true")
    assert answer.status_code == 200
    assert answer.json()["applied"] is False
    assert answer.json()["assistants"][0]["changes"] == [
        {"path": "enabled", "from": True, "to": False},
        {"path": "actions.order", "from": ["First", "Second"], "to": ["Second", "First"]},
    ]
    assert await everything(db) == before


async def test_children_are_matched_by_key_and_changed_through_their_use_cases(client, org):
    created = (await apply(client, org, bundle(SUPPORT))).json()["assistants"][0]
    url = f"/orgs/{org.org_id}/assistants/{created['id']}"
    first_ids = [a["id"] for a in (await client.get(url, headers=org.headers)).json()["actions"]]
    changed = {
        **SUPPORT,
        "integrations": [
            {"integration_id": "whatsapp", "enabled": False, "config": {"phone": "1"}}
        ],
        "actions": [
            {"action_id": "TOOLS:EMAIL", "name": "Second"},  # another kind: replaced
            {"action_id": "TOOLS:HTTP_REQUEST", "name": "First", "instructions": "Go."},
            {"action_id": "TOOLS:HTTP_REQUEST", "name": "First"},  # First~2: new
        ],
    }
    plan = (await apply(client, org, bundle(changed))).json()
    paths = [c["path"] for c in plan["assistants"][0]["changes"]]
    assert paths == [
        "integrations.whatsapp.enabled",
        "actions.First.instructions",
        "actions.Second",
        "actions.First~2",
        "actions.order",
    ]
    read = (await client.get(url, headers=org.headers)).json()
    assert read["integrations"][0]["enabled"] is False
    assert [(a["name"], a["action_id"]) for a in read["actions"]] == [
        ("Second", "TOOLS:EMAIL"),
        ("First", "TOOLS:HTTP_REQUEST"),
        ("First", "TOOLS:HTTP_REQUEST"),
    ]
    assert read["actions"][1]["id"] == first_ids[0]  # the same action, updated
    assert read["version"] == 1  # children are not the assistant's own leaves
    again = (await apply(client, org, bundle(changed))).json()
    assert again["summary"]["unchanged"] == 1


async def test_prune_over_http(client, org):
    made = await seed(client, org)
    answer = await apply(client, org, bundle(SUPPORT), "?prune=true")
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert plan["summary"] == {"create": 0, "update": 1, "unchanged": 0, "delete": 1}
    assert [step["ref"] for step in plan["assistants"]] == ["support", "sales"]
    gone = await client.get(f"/orgs/{org.org_id}/assistants/{made[1]['id']}", headers=org.headers)
    assert gone.status_code == 404


async def test_env_references_are_refused_over_http_naming_entry_and_field(client, org, db):
    before = await everything(db)
    entry = {"ref": "e", "name": "E", "config": {"tts": {"voice_id": "${env:VOICE}"}}}
    answer = await apply(client, org, bundle({"ref": "ok", "name": "Fine"}, entry))
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "VALIDATION_FAILED"
    [error] = body["errors"]
    assert error["path"] == "assistants.1.config.tts.voice_id"
    assert error["message"].startswith("entry 1 (ref 'e'): ")
    assert "command line" in error["message"]
    assert await everything(db) == before


async def test_bad_input_is_400_naming_each_field_and_nothing_is_applied(client, org, db):
    before = await everything(db)
    document = bundle(
        {"ref": "fine", "name": "Fine"},
        {"ref": "bad", "name": "", "config": {"conversation": {"thread_mode": "sideways"}}},
    )
    answer = await apply(client, org, document)
    assert answer.status_code == 400
    assert [e["path"] for e in answer.json()["errors"]] == [
        "assistants.1.name",
        "assistants.1.config.conversation.thread_mode",
    ]
    assert (await apply(client, org, [1, 2])).status_code == 400
    not_json = await client.post(
        f"/orgs/{org.org_id}/bundles/apply", content=b"{", headers=org.headers
    )
    assert not_json.status_code in (400, 415)
    assert await everything(db) == before


async def test_a_bundle_holds_at_most_1000_assistants_and_5_mib(client, org, db):
    before = await everything(db)
    many = bundle(*({"ref": f"a{i}", "name": f"A{i}"} for i in range(1001)))
    answer = await apply(client, org, many)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["path"] == "assistants"
    # bigger than the 1 MiB of other bodies is fine; beyond 5 MiB is 413
    padded = bundle({"ref": "big", "name": "Big", "config": {"instructions": "x" * 90_000}})
    padded["pad"] = "x" * (2 * 1024 * 1024)
    assert (await apply(client, org, padded)).status_code == 400  # read: unknown key `pad`
    padded["pad"] = "x" * (5 * 1024 * 1024)
    assert (await apply(client, org, padded)).status_code == 413
    assert await everything(db) == before


async def test_scopes_an_unrestricted_writer_applies(client, org, db, make_assistant):
    target = await make_assistant(org)
    reader = await make_key(client, org, ["assistants:read"])
    bound = await make_key(
        client, org, ["assistants:read", "assistants:write"], assistant_ids=[target["id"]]
    )
    before = await everything(db)
    for key, scope in ((reader, "assistants:write"), (bound, None)):
        answer = await apply(client, key, bundle(SUPPORT))
        assert answer.status_code == 403
        assert answer.json()["code"] == "INSUFFICIENT_SCOPE"
        assert answer.json().get("required_scope") == scope
    assert await everything(db) == before


async def test_graphql_apply_bundle_with_dry_run_and_prune(client, gql, org, db):
    dry = await gql(APPLY, {"bundle": bundle(SUPPORT), "dry": True, "prune": False}, org)
    assert "errors" not in dry, dry
    assert dry["data"]["applyBundle"]["summary"]["create"] == 1
    assert dry["data"]["applyBundle"]["applied"] is False
    done = await gql(APPLY, {"bundle": bundle(SUPPORT), "dry": False, "prune": True}, org)
    assert done["data"]["applyBundle"]["assistants"][0]["action"] == "create"
    before = await everything(db)
    env = {**SUPPORT, "name": "${env:NAME}"}
    refused = await gql(APPLY, {"bundle": bundle(env), "dry": False, "prune": False}, org)
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["fields"][0]["path"] == ["assistants", 0, "name"]
    assert await everything(db) == before
