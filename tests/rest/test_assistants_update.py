"""PATCH /orgs/{org_id}/assistants/{id}: the update rules, rules 1-7 and the validation list.

The tables are in tests/helpers/assistant_cases.py (GraphQL tests send them too).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.assistant_cases import (
    CHANGES,
    CONV,
    FULL,
    INVALID,
    NOT_NULLABLE,
    READ_ONLY,
    UNKNOWN,
    VOLATILE,
    nest,
    without,
)
from tests.helpers.rows import insert_avatar

# REST only: GraphQL spells enums in upper case, types objects itself and (by the GraphQL
# spec's input coercion) takes a single string as a list of one.
REST_ONLY_INVALID = [
    (nest((*CONV, "suggested_messages"), "one"), "config.conversation.suggested_messages"),
    ({"enabled": 1}, "enabled"),
    (nest(("config", "knowledge_scope"), "ALL"), "config.knowledge_scope"),
    ({"config": "x"}, "config"),
    (nest(("config", "tts"), 5), "config.tts"),
]


@pytest.fixture
async def full(org: Any, make_assistant: Any) -> dict[str, Any]:
    created: dict[str, Any] = await make_assistant(org, **FULL)
    return created


@pytest.fixture
def patch(client: Any, org: Any) -> Any:
    async def send(assistant_id: str, body: Any, **headers: str) -> Any:
        return await client.patch(
            f"/orgs/c/assistants/{assistant_id}", json=body, headers={**org.headers, **headers}
        )

    return send


def assert_problem(response: Any, status: int, code: str, paths: list[str]) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= {"type", "title", "status", "detail", "code", "errors"}
    assert (body["status"], body["code"]) == (status, code)
    assert [e["path"] for e in body["errors"]] == paths
    assert all(isinstance(e["message"], str) and e["message"] for e in body["errors"])


@pytest.mark.parametrize(("body", "changes"), CHANGES)
async def test_change_merges_and_bumps_version(full, patch, stored, body, changes):
    before = await stored(full["id"])
    response = await patch(full["id"], body)
    assert response.status_code == 200, response.text
    after = await stored(full["id"])
    assert without(after, *VOLATILE) == {**without(before, *VOLATILE), **changes}
    assert after["version"] == before["version"] + 1 == response.json()["version"]
    assert after["updated_at"] > before["updated_at"]
    assert after["created_at"] == before["created_at"]
    assert response.json()["created_at"] == full["created_at"]
    assert response.headers["etag"] == f'"{after["version"]}"'


@pytest.mark.parametrize(
    "body",
    [{}, {"config": {}}, {"config": {"tts": {}}}, {"name": "Full"}, FULL],
    ids=["empty", "empty-config", "empty-tts", "same-name", "everything-same"],
)
async def test_no_op_leaves_updated_at_and_version(full, patch, stored, body):
    before = await stored(full["id"])
    response = await patch(full["id"], body)
    assert response.status_code == 200, response.text
    assert response.json() == full
    assert await stored(full["id"]) == before


@pytest.mark.parametrize("path", NOT_NULLABLE, ids=".".join)
async def test_null_for_a_non_nullable_field_is_refused(full, patch, stored, path):
    before = await stored(full["id"])
    response = await patch(full["id"], nest(path, None))
    assert_problem(response, 400, "VALIDATION_FAILED", [".".join(path)])
    assert response.json()["errors"][0]["message"] == "may not be null"
    assert await stored(full["id"]) == before


@pytest.mark.parametrize("key", READ_ONLY)
async def test_read_only_key_is_refused(full, patch, stored, key):
    before = await stored(full["id"])
    response = await patch(full["id"], {key: full.get(key), "name": "Changed"})
    assert_problem(response, 400, "VALIDATION_FAILED", [key])
    assert key in response.json()["errors"][0]["message"]
    assert await stored(full["id"]) == before


@pytest.mark.parametrize("path", UNKNOWN, ids=".".join)
async def test_unknown_key_is_refused_at_every_depth(full, patch, stored, path):
    before = await stored(full["id"])
    response = await patch(full["id"], nest(path, "x"))
    assert_problem(response, 400, "VALIDATION_FAILED", [".".join(path)])
    assert "colour" in response.json()["errors"][0]["message"]
    assert await stored(full["id"]) == before


@pytest.mark.parametrize(("body", "path"), INVALID + REST_ONLY_INVALID)
async def test_invalid_value_is_refused_and_nothing_stored(full, patch, stored, body, path):
    before = await stored(full["id"])
    response = await patch(full["id"], body)
    assert_problem(response, 400, "VALIDATION_FAILED", [path])
    assert await stored(full["id"]) == before


async def test_all_or_nothing_reports_every_bad_field(full, patch, stored):
    before = await stored(full["id"])
    body = {
        "name": "Good name",
        "enabled": None,
        "config": {"tts": {"voice_id": "fine"}, "language": "english!", "colour": 1},
    }
    response = await patch(full["id"], body)
    paths = sorted(e["path"] for e in response.json()["errors"])
    assert paths == ["config.colour", "config.language", "enabled"]
    assert response.status_code == 400
    assert await stored(full["id"]) == before


async def test_avatar_of_the_same_org_is_set_and_null_clears_it(full, patch, stored, db, org):
    avatar_id = await insert_avatar(db, org.org_id)
    response = await patch(full["id"], {"avatar_id": avatar_id})
    assert response.status_code == 200, response.text
    assert response.json()["avatar_url"] == f"https://api.test/avatars/{avatar_id}"
    assert (await stored(full["id"]))["avatar_id"] == avatar_id
    response = await patch(full["id"], {"avatar_id": None})
    assert response.json()["avatar_url"] is None
    assert (await stored(full["id"]))["avatar_id"] is None


async def test_avatar_of_another_org_is_refused(full, patch, stored, db, other_org):
    avatar_id = await insert_avatar(db, other_org.org_id)
    before = await stored(full["id"])
    response = await patch(full["id"], {"avatar_id": avatar_id, "name": "x"})
    assert_problem(response, 400, "VALIDATION_FAILED", ["avatar_id"])
    assert await stored(full["id"]) == before


async def test_merge_patch_content_type_works(full, client, org, stored):
    response = await client.patch(
        f"/orgs/{org.org_id}/assistants/{full['id']}",
        content=b'{"config": {"tts": {"voice_id": "mp"}}}',
        headers={**org.headers, "content-type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    assert (await stored(full["id"]))["tts_voice_id"] == "mp"
