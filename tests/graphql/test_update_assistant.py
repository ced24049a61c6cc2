"""updateAssistant: the update rules over GraphQL, with the REST tables in camelCase."""

from __future__ import annotations

from typing import Any

import pytest
from strawberry.utils.str_converters import to_camel_case

from tests.helpers.assistant_cases import (
    CHANGES,
    FULL,
    INVALID,
    NOT_NULLABLE,
    READ_ONLY,
    UNKNOWN,
    VOLATILE,
    nest,
    without,
)
from tests.helpers.graphql_operations import UPDATE_ASSISTANT, gql_path, to_input
from tests.helpers.rows import insert_avatar


@pytest.fixture
async def full(org: Any, make_assistant: Any) -> dict[str, Any]:
    created: dict[str, Any] = await make_assistant(org, **FULL)
    return created


@pytest.fixture
def update(gql: Any, org: Any) -> Any:
    async def send(assistant_id: str, patch: Any, expected: int | None = None) -> dict[str, Any]:
        variables = {"org": "c", "id": assistant_id, "input": patch, "expected": expected}
        body: dict[str, Any] = await gql(UPDATE_ASSISTANT, variables, org)
        return body

    return send


def assert_bad_input(body: dict[str, Any], paths: list[list[str | int]]) -> None:
    assert body["data"] is None, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert [f["path"] for f in error["extensions"]["fields"]] == paths
    assert all(f["message"] for f in error["extensions"]["fields"])
    names = ", ".join(".".join(str(p) for p in path) for path in paths)
    if not error["message"].startswith("Variable '$input' has invalid value"):  # graphql-core's
        assert error["message"] == f"invalid input: {names}"  # ours, spelt as in GraphQL


@pytest.mark.parametrize(("body", "changes"), CHANGES)
async def test_change_merges_and_bumps_version(full, update, stored, body, changes):
    before = await stored(full["id"])
    result = await update(full["id"], to_input(body))
    assert "errors" not in result, result
    after = await stored(full["id"])
    assert without(after, *VOLATILE) == {**without(before, *VOLATILE), **changes}
    assert after["version"] == before["version"] + 1
    assert result["data"]["updateAssistant"]["version"] == after["version"]
    assert after["updated_at"] > before["updated_at"]
    assert after["created_at"] == before["created_at"]
    assert result["data"]["updateAssistant"]["createdAt"] == full["created_at"]


@pytest.mark.parametrize(
    "body",
    [{}, {"config": {}}, {"config": {"tts": {}}}, {"name": "Full"}, FULL],
    ids=["empty", "empty-config", "empty-tts", "same-name", "everything-same"],
)
async def test_no_op_leaves_updated_at_and_version(full, update, stored, body):
    before = await stored(full["id"])
    result = await update(full["id"], to_input(body))
    assert "errors" not in result, result
    assert result["data"]["updateAssistant"]["version"] == full["version"]
    assert result["data"]["updateAssistant"]["updatedAt"] == full["updated_at"]
    assert await stored(full["id"]) == before


@pytest.mark.parametrize("path", NOT_NULLABLE, ids=".".join)
async def test_null_for_a_non_nullable_field_is_refused(full, update, stored, path):
    before = await stored(full["id"])
    result = await update(full["id"], to_input(nest(path, None)))
    assert_bad_input(result, [gql_path(".".join(path))])
    assert result["errors"][0]["extensions"]["fields"][0]["message"] == "may not be null"
    assert await stored(full["id"]) == before


@pytest.mark.parametrize("key", READ_ONLY)
async def test_read_only_key_is_refused(full, update, stored, key):
    before = await stored(full["id"])
    camel = to_camel_case(key)
    result = await update(full["id"], {camel: "x", "name": "Changed"})
    assert_bad_input(result, [[camel]])
    assert camel in result["errors"][0]["extensions"]["fields"][0]["message"]
    assert await stored(full["id"]) == before


@pytest.mark.parametrize("path", UNKNOWN, ids=".".join)
async def test_unknown_key_is_refused_at_every_depth(full, update, stored, path):
    before = await stored(full["id"])
    result = await update(full["id"], to_input(nest(path, "x")))
    assert_bad_input(result, [gql_path(".".join(path))])
    assert await stored(full["id"]) == before


@pytest.mark.parametrize(("body", "path"), INVALID)
async def test_invalid_value_is_refused_and_nothing_stored(full, update, stored, body, path):
    before = await stored(full["id"])
    result = await update(full["id"], to_input(body))
    assert_bad_input(result, [gql_path(path)])
    assert await stored(full["id"]) == before


async def test_all_or_nothing_reports_every_bad_field(full, update, stored):
    before = await stored(full["id"])
    patch = {
        "name": "Good name",
        "enabled": None,
        "config": {"tts": {"voiceId": "fine"}, "language": "english!", "timezone": "Nowhere"},
    }
    result = await update(full["id"], patch)
    paths = sorted(f["path"] for f in result["errors"][0]["extensions"]["fields"])
    assert paths == [["config", "language"], ["config", "timezone"], ["enabled"]]
    assert await stored(full["id"]) == before


async def test_avatar_of_the_same_org_is_set_and_null_clears_it(full, update, stored, db, org):
    avatar_id = await insert_avatar(db, org.org_id)
    result = await update(full["id"], {"avatarId": avatar_id})
    updated = result["data"]["updateAssistant"]
    assert (updated["avatarId"], updated["avatarUrl"]) == (
        avatar_id,
        f"https://api.test/avatars/{avatar_id}",
    )
    assert (await stored(full["id"]))["avatar_id"] == avatar_id
    result = await update(full["id"], {"avatarId": None})
    assert result["data"]["updateAssistant"]["avatarUrl"] is None
    assert (await stored(full["id"]))["avatar_id"] is None


async def test_avatar_of_another_org_is_refused(full, update, stored, db, other_org):
    avatar_id = await insert_avatar(db, other_org.org_id)
    before = await stored(full["id"])
    result = await update(full["id"], {"avatarId": avatar_id, "name": "x"})
    assert_bad_input(result, [["avatarId"]])
    assert await stored(full["id"]) == before


async def test_expected_version(full, update, stored):
    stale = await update(full["id"], {"name": "Stale"}, expected=full["version"] + 1)
    assert stale["data"] is None
    assert stale["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert (await stored(full["id"]))["name"] == "Full"
    fresh = await update(full["id"], {"name": "Fresh"}, expected=full["version"])
    assert fresh["data"]["updateAssistant"]["version"] == full["version"] + 1
    assert (await stored(full["id"]))["name"] == "Fresh"
