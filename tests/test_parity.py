"""The same patch sent as REST and as GraphQL to two identical assistants ends the same way."""

from __future__ import annotations

from typing import Any

import pytest
from strawberry.utils.str_converters import to_snake_case

from app.domain.documents import rfc3339
from tests.helpers.assistant_cases import FULL
from tests.helpers.graphql_operations import ENUM_KEYS, UPDATE_ASSISTANT, gql_path, to_input

IGNORED = {"id", "seq", "created_at", "updated_at"}

PATCHES: list[dict[str, Any]] = [
    {"config": {"tts": {"voice_id": "v-2"}}},
    {
        "name": "  Both  ",
        "enabled": False,
        "config": {
            "language": "pt-BR",
            "knowledge_scope": "none",
            "timezone": "Asia/Tokyo",
            "stt": {"model": None},
            "tts": {"model": "t-9"},
            "conversation": {
                "thread_mode": "new",
                "suggested_messages": ["x", "y", "z"],
                "welcome_banner": None,
                "enable_auto_follow_ups": True,
            },
        },
    },
    {},
    FULL,
]

INVALID: list[dict[str, Any]] = [
    {"name": None, "config": {"tts": {"voice_id": ""}, "language": "english!"}},
    {"config": {"conversation": {"suggested_messages": ["ok", ""], "enable_memories": None}}},
]


def from_graphql(value: Any, key: str = "") -> Any:
    """A GraphQL answer in the REST spelling: snake_case keys, lower-case enum values."""
    if isinstance(value, dict):
        return {to_snake_case(k): from_graphql(v, to_snake_case(k)) for k, v in value.items()}
    if key in ENUM_KEYS:
        return value.lower()
    return value


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in IGNORED}


@pytest.fixture
async def pair(org: Any, make_assistant: Any) -> tuple[str, str]:
    first = await make_assistant(org, **FULL)
    second = await make_assistant(org, **FULL)
    return first["id"], second["id"]


async def send_both(
    client: Any, gql: Any, org: Any, pair: tuple[str, str], patch: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    rest = await client.patch(f"/orgs/c/assistants/{pair[0]}", json=patch, headers=org.headers)
    variables = {"org": "c", "id": pair[1], "input": to_input(patch)}
    graphql = await gql(UPDATE_ASSISTANT, variables, org)
    return rest, graphql


@pytest.mark.parametrize("patch", PATCHES)
async def test_same_patch_same_stored_row_and_answer(client, gql, org, stored, pair, patch):
    rest, graphql = await send_both(client, gql, org, pair, patch)
    assert rest.status_code == 200, rest.text
    assert "errors" not in graphql, graphql
    rest_row, graphql_row = await stored(pair[0]), await stored(pair[1])
    assert comparable(rest_row) == comparable(graphql_row)
    answer = from_graphql(graphql["data"]["updateAssistant"])
    assert comparable(rest.json()) == comparable(answer)
    assert rest.json()["updated_at"] == rfc3339(rest_row["updated_at"])
    assert answer["updated_at"] == rfc3339(graphql_row["updated_at"])


@pytest.mark.parametrize("patch", INVALID)
async def test_same_bad_patch_same_errors_and_nothing_stored(client, gql, org, stored, pair, patch):
    before = [await stored(pair[0]), await stored(pair[1])]
    rest, graphql = await send_both(client, gql, org, pair, patch)
    assert rest.status_code == 400
    rest_paths = sorted(gql_path(e["path"]) for e in rest.json()["errors"])
    [error] = graphql["errors"]
    graphql_paths = sorted(f["path"] for f in error["extensions"]["fields"])
    assert rest_paths == graphql_paths
    assert len(rest_paths) >= 2
    assert [await stored(pair[0]), await stored(pair[1])] == before
