"""RATE_LIMIT_STORAGE=redis://…: one limit for every process using one
Redis, a real `redis-server` per test. Two apps on one database stand for two processes (each
has its own memory); the two-server test (test_two_servers.py) does it with real uvicorns.

When Redis dies, requests are served and counted per process, the log says so once per process,
and once more when Redis is back; a Redis that hangs costs one request a timeout, not each.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.http import ratelimit_redis
from app.http.ratelimit_redis import REDIS_TIMEOUT_SECONDS
from tests.helpers.event_clients import until
from tests.helpers.rate_limits import assert_limited
from tests.helpers.rows import count_assistants

LIMIT = "5/minute"
LOST = "is unreachable"
BACK = "answers again"


@pytest.fixture(autouse=True)
def quick_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis is asked again every 0.2 s instead of 3 s (the tests wait for it)."""
    monkeypatch.setattr(ratelimit_redis, "REDIS_RETRY_SECONDS", 0.2)


async def pair(make_client: Any, storage: str, **settings: Any) -> tuple[Any, Any]:
    """Two apps ("processes") on one database, counting in `storage`."""
    settings = {"rate_limit": LIMIT, "rate_limit_storage": storage, **settings}
    return await make_client(**settings), await make_client(**settings)


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "app.ratelimit" and text in r.getMessage()
    ]


async def remaining(client: Any, org: Any) -> str:
    response = await client.get("/orgs/c/assistants", headers=org.headers)
    assert response.status_code == 200, response.text
    return str(response.headers["ratelimit-remaining"])


async def test_two_processes_share_one_request_limit(make_client, redis, org):
    a, b = await pair(make_client, redis.url)
    seen = [await remaining(a if i % 2 == 0 else b, org) for i in range(5)]
    assert seen == ["4", "3", "2", "1", "0"]  # one count, whichever process answers
    assert_limited(await a.get("/orgs/c/assistants", headers=org.headers))
    assert_limited(await b.get("/orgs/c/assistants", headers=org.headers))

    # with the default memory:// each process counts its own: 5 more on a fresh pair
    c, d = await pair(make_client, "memory://")
    assert [await remaining(c, org) for _ in range(5)] == ["4", "3", "2", "1", "0"]
    assert [await remaining(d, org) for _ in range(5)] == ["4", "3", "2", "1", "0"]


async def test_requests_without_a_key_share_their_address_limit(make_client, redis):
    a, b = await pair(make_client, redis.url)
    for i in range(5):
        assert (await (a if i < 3 else b).get("/orgs/c/assistants")).status_code == 401
    assert_limited(await b.get("/orgs/c/assistants"))
    assert_limited(await a.get("/orgs/c/assistants"))


async def test_two_processes_share_one_graphql_points_budget(make_client, redis, org):
    a, b = await pair(make_client, redis.url, rate_limit="1000/minute", graphql_points=5)
    query = {"query": '{ assistants(orgId: "c", first: 1) { totalCount } }'}
    left = []
    for i in range(5):
        response = await (a if i % 2 else b).post("/graphql", json=query, headers=org.headers)
        assert response.status_code == 200, response.text
        left.append(response.json()["extensions"]["cost"]["pointsRemaining"])
    assert left == [4, 3, 2, 1, 0]
    for client in (a, b):
        refused = await client.post("/graphql", json=query, headers=org.headers)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_two_processes_share_the_creation_limit(make_client, redis, org, db):
    a, b = await pair(
        make_client, redis.url, rate_limit="1000/minute", create_assistant_limit="3/hour"
    )
    mutation = 'mutation { createAssistant(orgId: "c", input: {name: "g"}) { id } }'
    made = [
        await a.post("/orgs/c/assistants", json={"name": "a1"}, headers=org.headers),
        await b.post("/orgs/c/assistants", json={"name": "b1"}, headers=org.headers),
        await b.post("/graphql", json={"query": mutation}, headers=org.headers),
    ]
    assert [r.status_code for r in made] == [201, 201, 200]
    refused = await a.post("/orgs/c/assistants", json={"name": "a2"}, headers=org.headers)
    assert (refused.status_code, refused.json()["code"]) == (429, "RATE_LIMITED")
    refused = await b.post("/graphql", json={"query": mutation}, headers=org.headers)
    assert refused.status_code == 429
    assert "retry-after" in refused.headers
    assert await count_assistants(db) == 3


async def test_when_redis_dies_requests_are_served_counted_per_process_then_shared_again(
    make_client, redis, org, caplog
):
    caplog.set_level(logging.INFO, logger="app.ratelimit")
    a, b = await pair(make_client, redis.url)
    assert [await remaining(a, org), await remaining(b, org)] == ["4", "3"]

    redis.kill()
    # served, and counted in each process's memory (a fresh window each)
    assert [await remaining(a, org) for _ in range(5)] == ["4", "3", "2", "1", "0"]
    assert_limited(await a.get("/orgs/c/assistants", headers=org.headers))
    assert [await remaining(b, org) for _ in range(5)] == ["4", "3", "2", "1", "0"]
    for _ in range(10):  # more requests, no more lines
        await a.get("/orgs/c/assistants", headers=org.headers)
    lost = lines(caplog, LOST)
    assert len(lost) == 2  # once per process, not once per request
    assert f"Redis at 127.0.0.1:{redis.port}/0 is unreachable" in lost[0]

    redis.start()  # the same port, empty (no persistence)
    await until(lambda: len(lines(caplog, BACK)) == 2, seconds=10)
    assert [await remaining(a, org), await remaining(b, org)] == ["4", "3"]  # shared again
    assert len(lines(caplog, LOST)) == 2


async def test_a_redis_that_never_answered_is_logged_once_and_served(make_client, org, caplog):
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    a, _ = await pair(make_client, f"redis://127.0.0.1:{port}/0")
    assert [await remaining(a, org) for _ in range(5)] == ["4", "3", "2", "1", "0"]
    assert_limited(await a.get("/orgs/c/assistants", headers=org.headers))
    assert len(lines(caplog, LOST)) == 1


@pytest.fixture
def silent_redis() -> Iterator[int]:
    """A port that accepts connections and never answers (a Redis that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(100)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


async def test_a_hanging_redis_costs_one_request_a_timeout_not_every_request(
    make_client, org, silent_redis, caplog
):
    a, _ = await pair(make_client, f"redis://127.0.0.1:{silent_redis}/0", rate_limit="100/minute")
    started = time.perf_counter()
    assert await remaining(a, org) == "99"  # waited for Redis's timeout, then counted here
    first = time.perf_counter() - started
    # one timeout, not retried
    assert REDIS_TIMEOUT_SECONDS <= first < 2 * REDIS_TIMEOUT_SECONDS
    started = time.perf_counter()
    assert [await remaining(a, org) for _ in range(20)][-1] == "79"
    rest = time.perf_counter() - started
    assert rest < REDIS_TIMEOUT_SECONDS  # 20 requests, not one timeout among them
    await asyncio.sleep(0.5)  # the probe asks again meanwhile, in the background
    assert len(lines(caplog, LOST)) == 1
