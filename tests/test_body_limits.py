"""Bodies over 1 MiB are 413 PAYLOAD_TOO_LARGE on both transports, without being read whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.helpers.graphql_operations import UPDATE_ASSISTANT
from tests.helpers.rows import count_assistants

LIMIT = 1024 * 1024
CHUNK = 64 * 1024


def padded(document: dict[str, Any], size: int) -> bytes:
    """Valid JSON of exactly `size` bytes (trailing whitespace is insignificant)."""
    raw = orjson.dumps(document)
    return raw + b" " * (size - len(raw))


class Chunks:
    """A request body sent chunked (no Content-Length) that counts what the server read."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.raw), CHUNK):
            self.sent += 1
            yield self.raw[start : start + CHUNK]


def graphql_body(assistant_id: str, name: str) -> dict[str, Any]:
    variables = {"org": "c", "id": assistant_id, "input": {"name": name}}
    return {"query": UPDATE_ASSISTANT, "variables": variables}


@pytest.fixture
async def mine(org: Any, make_assistant: Any) -> dict[str, Any]:
    created: dict[str, Any] = await make_assistant(org, name="Mine")
    return created


def targets(assistant_id: str, name: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("PATCH", f"/orgs/c/assistants/{assistant_id}", {"name": name}),
        ("POST", "/orgs/c/assistants", {"name": name}),
        ("POST", "/graphql", graphql_body(assistant_id, name)),
    ]


def assert_too_large(response: Any) -> None:
    """Problem details on REST; on /graphql a GraphQL body, whose every error has a code."""
    assert response.status_code == 413, response.text
    body = response.json()
    if response.request.url.path == "/graphql":
        assert response.headers["content-type"] == "application/json"
        code = body["errors"][0]["extensions"]["code"]
    else:
        assert response.headers["content-type"] == "application/problem+json"
        code = body["code"]
    assert code == "PAYLOAD_TOO_LARGE"


async def test_exactly_the_limit_is_accepted(client, org, mine, stored):
    for method, url, document in targets(mine["id"], "Exact"):
        raw = padded(document, LIMIT)
        headers = {**org.headers, "content-type": "application/json"}
        response = await client.request(method, url, content=raw, headers=headers)
        assert response.status_code in (200, 201), response.text
    assert (await stored(mine["id"]))["name"] == "Exact"


async def test_over_the_limit_with_content_length(client, org, mine, stored, db):
    for method, url, document in targets(mine["id"], "Big"):
        raw = padded(document, LIMIT + 1)
        headers = {**org.headers, "content-type": "application/json"}
        response = await client.request(method, url, content=raw, headers=headers)
        assert_too_large(response)
    assert (await stored(mine["id"]))["name"] == "Mine"
    assert await count_assistants(db) == 1


async def test_declared_length_is_refused_before_reading(client, org, mine):
    for method, url, document in targets(mine["id"], "Big"):
        body = Chunks(padded(document, 4 * LIMIT))
        headers = {
            **org.headers,
            "content-type": "application/json",
            "content-length": str(4 * LIMIT),
        }
        response = await client.request(method, url, content=body, headers=headers)
        assert_too_large(response)
        assert body.sent <= 1


async def test_chunked_without_content_length_is_cut_off(client, org, mine, stored):
    for method, url, document in targets(mine["id"], "Chunked"):
        body = Chunks(padded(document, 8 * LIMIT))
        headers = {**org.headers, "content-type": "application/json"}
        response = await client.request(method, url, content=body, headers=headers)
        assert "content-length" not in response.request.headers
        assert_too_large(response)
        assert body.sent <= LIMIT // CHUNK + 2
    assert (await stored(mine["id"]))["name"] == "Mine"


async def test_chunked_under_the_limit_is_accepted(client, org, mine, stored):
    body = Chunks(padded({"name": "Small chunks"}, LIMIT - 10))
    headers = {**org.headers, "content-type": "application/json"}
    response = await client.patch(f"/orgs/c/assistants/{mine['id']}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert (await stored(mine["id"]))["name"] == "Small chunks"
