"""A first end-to-end check of the PATCH route and updateAssistant."""

from __future__ import annotations

UPDATE = """
mutation($org: ID!, $id: ID!, $input: UpdateAssistantInput!) {
  updateAssistant(orgId: $org, assistantId: $id, input: $input) {
    id name version config { tts { voiceId model } conversation { threadMode welcomeBanner } }
  }
}
"""


async def test_patch_deep_merges_one_value(client, org, make_assistant, stored):
    created = await make_assistant(org, config={"tts": {"model": "m1", "voice_id": "v1"}})
    response = await client.patch(
        f"/orgs/{org.org_id}/assistants/{created['id']}",
        json={"config": {"tts": {"voice_id": "v2"}}},
        headers=org.headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["config"]["tts"] == {"model": "m1", "voice_id": "v2"}
    assert body["version"] == 2
    assert response.headers["etag"] == '"2"'
    row = await stored(created["id"])
    assert (row["tts_model"], row["tts_voice_id"], row["version"]) == ("m1", "v2", 2)


async def test_graphql_update_and_null_clears(gql, org, make_assistant, stored):
    created = await make_assistant(org, config={"conversation": {"welcome_banner": "hi"}})
    body = await gql(
        UPDATE,
        {
            "org": "c",
            "id": created["id"],
            "input": {
                "config": {"conversation": {"threadMode": "CONTINUE", "welcomeBanner": None}}
            },
        },
        org,
    )
    assert "errors" not in body, body
    conversation = body["data"]["updateAssistant"]["config"]["conversation"]
    assert conversation == {"threadMode": "CONTINUE", "welcomeBanner": None}
    row = await stored(created["id"])
    assert (row["thread_mode"], row["welcome_banner"]) == ("continue", None)
