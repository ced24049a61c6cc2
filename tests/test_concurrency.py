"""Many writers, many processes (the update rules, rules 8 and 9), against a real
`python -m app serve --workers 2` on SQLite and on PostgreSQL: no lost update, no response mixing
two writes, exactly one winner among writers holding one version, revocation seen by every worker.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.helpers.server_process import ROOT, Server

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
WRITERS = 20

# (path in the PATCH body and the document, new value, column): 24 different leaves, each a
# real change from the defaults of a new assistant. The avatar is added by the test.
CHANGES: list[tuple[tuple[str, ...], Any, str]] = [
    (("name",), "Renamed", "name"),
    (("enabled",), False, "enabled"),
    (("config", "language"), "pt-BR", "language"),
    (("config", "model"), "gpt-4o", "model"),
    (("config", "instructions"), "Answer in one sentence.", "instructions"),
    (("config", "knowledge_scope"), "assistant", "knowledge_scope"),
    (("config", "timezone"), "Europe/Paris", "timezone"),
    (("config", "stt", "model"), "whisper-1", "stt_model"),
    (("config", "tts", "model"), "tts-1", "tts_model"),
    (("config", "tts", "voice_id"), "alloy", "tts_voice_id"),
    (("config", "conversation", "thread_mode"), "continue", "thread_mode"),
    (("config", "conversation", "welcome_banner"), "Welcome!", "welcome_banner"),
    (("config", "conversation", "suggested_messages"), ["Hi", "Help"], "suggested_messages"),
    (("config", "conversation", "auto_intro_message"), "Hello there", "auto_intro_message"),
    *(
        (("config", "conversation", flag), True, flag)
        for flag in (
            "enable_memories",
            "enable_transfer_to_human_tool",
            "enable_end_conversation_tool",
            "enable_block_contact_tool",
            "enable_private_chats",
            "enable_auto_resolve",
            "enable_auto_follow_ups",
            "enable_auto_csat",
            "enable_update_contact_tool",
        )
    ),
]

UPDATE = """
mutation($id: ID!, $input: UpdateAssistantInput!, $expected: Int) {
  updateAssistant(orgId: "c", assistantId: $id, input: $input, expectedVersion: $expected) {
    id name version
  }
}
"""


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    with Server(settings, tmp_path, workers=2) as running:
        yield running


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        yield client


def nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body: Any = value
    for key in reversed(path):
        body = {key: body}
    result: dict[str, Any] = body
    return result


def lookup(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = document
    for key in path:
        value = value[key]
    return value


async def new_assistant(http: httpx.AsyncClient, org: Any) -> dict[str, Any]:
    response = await http.post("/orgs/c/assistants", json={"name": "Bot"}, headers=org.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["version"] == 1
    return created


async def test_24_concurrent_patches_of_different_fields_all_survive(http, org, stored):
    created = await new_assistant(http, org)
    upload = await http.post(
        "/orgs/c/avatars", content=PNG, headers={**org.headers, "Content-Type": "image/png"}
    )
    assert upload.status_code == 201, upload.text
    avatar = upload.json()
    changes = [*CHANGES, (("avatar_id",), avatar["id"], "avatar_id")]
    assert len(changes) == 24

    url = f"/orgs/c/assistants/{created['id']}"
    responses = await asyncio.gather(
        *(
            http.patch(url, json=nested(path, value), headers=org.headers)
            for path, value, _ in changes
        )
    )
    assert [r.status_code for r in responses] == [200] * 24, [r.text for r in responses]

    row = await stored(created["id"])
    assert {column: row[column] for *_, column in changes} == {
        column: value for _, value, column in changes
    }
    assert row["version"] == 1 + 24
    final = (await http.get(url, headers=org.headers)).json()
    assert final["version"] == 25
    assert final["avatar_url"] == avatar["url"]
    assert all(lookup(final, path) == value for path, value, _ in CHANGES)
    assert_each_response_is_one_state(responses, changes, avatar["url"])


def assert_each_response_is_one_state(
    responses: list[httpx.Response], changes: list[tuple[Any, ...]], avatar_url: str
) -> None:
    """No answer mixes two writes: the versions are 2..25, each answer shows its own change,
    the answer at version v shows exactly v - 1 changes, and each all those of the one before."""

    def has(document: dict[str, Any], path: tuple[str, ...], value: Any) -> bool:
        if path == ("avatar_id",):  # the document shows the avatar as its URL
            return bool(document["avatar_url"] == avatar_url)
        return bool(lookup(document, path) == value)

    def shown(document: dict[str, Any]) -> frozenset[int]:
        return frozenset(
            i for i, (path, value, _) in enumerate(changes) if has(document, path, value)
        )

    states = {}
    for i, response in enumerate(responses):
        document = response.json()
        assert response.headers["etag"] == f'"{document["version"]}"'
        states[document["version"]] = shown(document)
        assert i in states[document["version"]]
    assert sorted(states) == list(range(2, 26))
    previous: frozenset[int] = frozenset()
    for version in range(2, 26):
        assert len(states[version]) == version - 1
        assert previous < states[version]
        previous = states[version]


async def test_graphql_writers_holding_one_version_one_wins(http, org, stored):
    created = await new_assistant(http, org)
    names = [f"Writer {i}" for i in range(WRITERS)]
    responses = await asyncio.gather(
        *(
            http.post(
                "/graphql",
                json={
                    "query": UPDATE,
                    "variables": {"id": created["id"], "input": {"name": n}, "expected": 1},
                },
                headers=org.headers,
            )
            for n in names
        )
    )
    assert [r.status_code for r in responses] == [200] * WRITERS
    bodies = [r.json() for r in responses]
    wins = [b["data"]["updateAssistant"] for b in bodies if b.get("data")]
    conflicts = [b for b in bodies if b.get("errors")]
    assert len(wins) == 1, bodies
    assert wins[0]["version"] == 2
    assert wins[0]["name"] in names
    assert len(conflicts) == WRITERS - 1
    assert all(b["data"] is None for b in conflicts)
    assert {b["errors"][0]["extensions"]["code"] for b in conflicts} == {"CONFLICT"}
    row = await stored(created["id"])
    assert (row["name"], row["version"]) == (wins[0]["name"], 2)


async def test_rest_writers_holding_one_etag_one_wins(http, org, stored):
    created = await new_assistant(http, org)
    url = f"/orgs/c/assistants/{created['id']}"
    names = [f"Writer {i}" for i in range(WRITERS)]
    responses = await asyncio.gather(
        *(
            http.patch(url, json={"name": n}, headers={**org.headers, "If-Match": '"1"'})
            for n in names
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * (WRITERS - 1), [r.text for r in responses]
    [won] = [r for r in responses if r.status_code == 200]
    assert won.headers["etag"] == '"2"'
    assert won.json()["version"] == 2
    refused = [r for r in responses if r.status_code == 412]
    assert {r.headers["content-type"] for r in refused} == {"application/problem+json"}
    assert {r.json()["code"] for r in refused} == {"PRECONDITION_FAILED"}
    row = await stored(created["id"])
    assert (row["name"], row["version"]) == (won.json()["name"], 2)


async def cli(settings: Settings, *args: str) -> tuple[int, bytes]:
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout + stderr


async def statuses_on_fresh_connections(server: Server, key: str, count: int) -> list[int]:
    """`count` requests, each on a new connection, so that every worker answers some."""
    statuses = []
    for _ in range(count):
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as fresh:
            response = await fresh.get(
                "/orgs/c/assistants/none", headers={"Authorization": f"Bearer {key}"}
            )
            statuses.append(response.status_code)
    return statuses


async def test_key_revoked_from_the_cli_is_refused_by_every_worker(server, settings, org, new_key):
    doomed = await new_key(org)
    # Every worker has accepted the key before (a cache anywhere would now answer wrongly).
    assert await statuses_on_fresh_connections(server, doomed.api_key, 40) == [404] * 40

    code, output = await cli(settings, "keys", "revoke", doomed.key_id)
    assert code == 0, output

    assert await statuses_on_fresh_connections(server, doomed.api_key, 40) == [401] * 40
    assert await statuses_on_fresh_connections(server, org.api_key, 10) == [404] * 10
