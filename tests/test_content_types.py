"""The one reading of `Content-Type` (app/http/content.py), as both transports see it: the media
type decides, whatever its case and parameters; anything else is 415 naming what was sent, and
nothing is stored."""

from __future__ import annotations

import orjson
import pytest

from tests.helpers.graphql_operations import UPDATE_ASSISTANT

SPELLINGS = ["application/json", "Application/JSON; charset=UTF-8", " application/json ;x=1"]


@pytest.mark.parametrize("content_type", SPELLINGS)
async def test_json_in_any_spelling_is_json_on_both_transports(
    client, org, make_assistant, stored, content_type
):
    mine = await make_assistant(org, name="Mine")
    headers = {**org.headers, "Content-Type": content_type}
    url = f"/orgs/{org.org_id}/assistants/{mine['id']}"
    rest = await client.patch(url, content=b'{"name": "over REST"}', headers=headers)
    assert rest.status_code == 200, rest.text
    assert (await stored(mine["id"]))["name"] == "over REST"
    variables = {"org": org.org_id, "id": mine["id"], "input": {"name": "over GraphQL"}}
    body = orjson.dumps({"query": UPDATE_ASSISTANT, "variables": variables})
    graphql = await client.post("/graphql", content=body, headers=headers)
    assert graphql.status_code == 200, graphql.text
    assert graphql.json()["data"]["updateAssistant"]["name"] == "over GraphQL"
    assert (await stored(mine["id"]))["name"] == "over GraphQL"


async def test_another_media_type_is_415_naming_it_on_both_transports(
    client, org, make_assistant, stored
):
    mine = await make_assistant(org, name="Mine")
    headers = {**org.headers, "Content-Type": "Text/Plain; charset=UTF-8"}
    url = f"/orgs/{org.org_id}/assistants/{mine['id']}"
    rest = await client.patch(url, content=b'{"name": "x"}', headers=headers)
    assert rest.status_code == 415
    assert rest.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert rest.json()["detail"] == (
        "send the body as application/json or application/merge-patch+json, not 'text/plain'"
    )
    variables = {"org": org.org_id, "id": mine["id"], "input": {"name": "x"}}
    body = orjson.dumps({"query": UPDATE_ASSISTANT, "variables": variables})
    graphql = await client.post("/graphql", content=body, headers=headers)
    assert graphql.status_code == 415
    [error] = graphql.json()["errors"]
    assert error == {
        "message": "send the request as application/json, not 'text/plain'",
        "extensions": {"code": "UNSUPPORTED_MEDIA_TYPE"},
    }
    missing = await client.patch(url, content=b'{"name": "x"}', headers=org.headers)
    assert missing.status_code == 415
    assert missing.json()["detail"].endswith("not 'nothing'")
    assert (await stored(mine["id"]))["name"] == "Mine"
