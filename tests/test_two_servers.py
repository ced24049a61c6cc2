"""Several machines, one service (docs/production.md): two real uvicorn servers
(`python -m app serve`, on two ports) over one PostgreSQL database and one Redis act as one.

- the request limit is one limit: requests through A and B together are refused at it;
- an update made through A reaches a subscriber (SSE) of B;
- a key revoked through A stops working on B at once;
- concurrent updates through both lose nothing: every acknowledged write is stored, and its
  revision is there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.helpers.event_clients import sse_over_http
from tests.helpers.factories import Org
from tests.helpers.redis_server import RedisServer
from tests.helpers.server_process import Server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("settings", ["postgres"], indirect=True),  # one shared database
]

WAIT = 30.0
UPDATES = 50  # through each server


@pytest.fixture
def two_servers(
    settings: Settings, redis: RedisServer, tmp_path: Path
) -> Iterator[Callable[..., tuple[Server, Server]]]:
    """`two_servers(RATE_LIMIT="10/minute")`: servers A and B, one worker each, on the test's
    database and Redis (RATE_LIMIT_STORAGE), with more settings in the environment."""
    started: list[Server] = []

    def start(**env: str) -> tuple[Server, Server]:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            more = {"RATE_LIMIT_STORAGE": redis.url, **env}
            started.append(Server(settings, tmp_path / name, workers=1, env=more).start())
        return started[0], started[1]

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def client(server: Server) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, timeout=WAIT)


async def test_the_rate_limit_is_one_limit_across_servers(two_servers: Any, org: Org) -> None:
    a, b = two_servers(RATE_LIMIT="10/minute")
    codes: dict[str, list[int]] = {"a": [], "b": []}
    async with client(a) as via_a, client(b) as via_b:
        for i in range(16):
            name, http = ("a", via_a) if i % 2 == 0 else ("b", via_b)
            response = await http.get("/orgs/c/assistants", headers=org.headers)
            codes[name].append(response.status_code)
    accepted = codes["a"].count(200) + codes["b"].count(200)
    print(f"\nshared limit of 10/minute: accepted A {codes['a']} B {codes['b']}")
    assert accepted == 10
    assert codes["a"] == [200] * 5 + [429] * 3
    assert codes["b"] == [200] * 5 + [429] * 3


async def test_an_update_through_one_server_reaches_a_subscriber_of_the_other(
    two_servers: Any, org: Org
) -> None:
    a, b = two_servers()
    async with client(a) as via_a:
        created = await via_a.post("/orgs/c/assistants", json={"name": "x"}, headers=org.headers)
        assert created.status_code == 201
        assistant_id = created.json()["id"]
        async with sse_over_http(b.base_url, "/orgs/c/events", org.headers) as (response, sse):
            assert response.status_code == 200
            await sse.wait_connected()
            url = f"/orgs/c/assistants/{assistant_id}"
            patched = await via_a.patch(url, json={"name": "y"}, headers=org.headers)
            assert patched.status_code == 200
            event = await sse.next(WAIT)
    assert event is not None
    assert (event.event, event.data["assistant_id"], event.data["version"]) == (
        "updated",
        assistant_id,
        2,
    )
    assert event.data["changes"] == [{"path": "name", "from": "x", "to": "y"}]


async def test_a_key_revoked_through_one_server_stops_working_on_the_other(
    two_servers: Any, org: Org
) -> None:
    a, b = two_servers()
    async with client(a) as via_a, client(b) as via_b:
        made = await via_a.post(
            "/orgs/c/api-keys",
            json={"name": "short-lived", "scopes": ["assistants:read"]},
            headers=org.headers,
        )
        assert made.status_code == 201, made.text
        key = {"Authorization": f"Bearer {made.json()['api_key']}"}
        assert (await via_b.get("/orgs/c/assistants", headers=key)).status_code == 200
        revoked = await via_a.delete(f"/orgs/c/api-keys/{made.json()['id']}", headers=org.headers)
        assert revoked.status_code == 204
        refused = await via_b.get("/orgs/c/assistants", headers=key)
    assert (refused.status_code, refused.json()["code"]) == (401, "UNAUTHENTICATED")


async def test_concurrent_updates_through_both_servers_lose_nothing(
    two_servers: Any, org: Org
) -> None:
    a, b = two_servers()
    async with client(a) as via_a, client(b) as via_b:
        created = await via_a.post("/orgs/c/assistants", json={"name": "x"}, headers=org.headers)
        url = f"/orgs/c/assistants/{created.json()['id']}"

        async def patch(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
            response = await http.patch(url, json=body, headers=org.headers)
            assert response.status_code == 200, response.text
            acknowledged: dict[str, Any] = response.json()
            return acknowledged

        through_a = [patch(via_a, {"config": {"tts": {"voice_id": f"a{i}"}}}) for i in range(50)]
        through_b = [patch(via_b, {"config": {"stt": {"model": f"b{i}"}}}) for i in range(50)]
        acks = await asyncio.gather(*through_a, *through_b)
        stored = (await via_b.get(url, headers=org.headers)).json()
        revisions = []
        for page in (1, 2):
            listed = await via_a.get(f"{url}/revisions?take=100&page={page}", headers=org.headers)
            revisions += listed.json()

    versions = sorted(ack["version"] for ack in acks)
    assert versions == list(range(2, 2 + 2 * UPDATES))  # each write its own version
    last_a = max(acks[:UPDATES], key=lambda ack: ack["version"])
    last_b = max(acks[UPDATES:], key=lambda ack: ack["version"])
    assert stored["version"] == 1 + 2 * UPDATES
    assert stored["config"]["tts"]["voice_id"] == last_a["config"]["tts"]["voice_id"]
    assert stored["config"]["stt"]["model"] == last_b["config"]["stt"]["model"]
    # every acknowledged write has its revision, with exactly its change
    by_version = {revision["version"]: revision for revision in revisions}
    assert sorted(by_version) == list(range(1, 2 + 2 * UPDATES))
    for i, ack in enumerate(acks):
        path, value = (
            ("config.tts.voice_id", f"a{i}")
            if i < UPDATES
            else ("config.stt.model", f"b{i - UPDATES}")
        )
        [change] = by_version[ack["version"]]["changes"]
        assert (change["path"], change["to"]) == (path, value)
