"""Fair shares of the CPU (docs/protection.md#fair-shares-of-the-cpu): expensive work (GraphQL
operations of FAIR_HEAVY_COST or more, over HTTP and the websocket, and REST lists) takes turns
in the process's lane, one tenant after another, and a tenant's queue is bounded (429
RATE_LIMITED with Retry-After beyond it, nothing run, no point spent); cheap requests never wait.

The app here has one place in its lane (FAIR_HEAVY_CONCURRENCY=1); a test that needs the lane
busy holds that place itself, as an expensive request of another tenant would, and lets it go
when it has put its requests in the queue: what waits, what is refused and in which order the
waiting ones run is then the same on every machine. The latency a second tenant keeps under
real attacks is tests/test_fairness.py's (a real server).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.http.fairshare import Lane
from app.main import create_app
from app.settings import Settings
from tests.helpers.event_clients import AsgiWebSocket
from tests.helpers.factories import Org

# 100 assistants and 100 integrations each may be in the answer: cost 10,100 (>= 1,000)
HEAVY = 'query Heavy { assistants(orgId: "c", first: 100) { nodes { id integrations { id } } } }'
LIGHT = 'query Light { assistant(orgId: "c", id: "nope") { id } }'
HOLDER = "tenant holding the lane"


@pytest.fixture
async def fair_app(settings: Settings) -> AsyncIterator[Starlette]:
    """The app with one place in its lane and room for one waiting request per tenant."""
    changed = settings.model_copy(update={"fair_heavy_concurrency": 1, "fair_queue_per_tenant": 1})
    application = create_app(changed)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(fair_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=fair_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def lane_of(app: Starlette) -> Lane:
    lane: Lane = app.state.fair.lane
    return lane


async def waiting(lane: Lane, count: int) -> None:
    """Until `count` requests wait in the lane's queues."""
    for _ in range(1000):
        if sum(len(queue) for queue in lane.waiting.values()) >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{count} requests never waited: {lane.waiting}")


async def prove(http: httpx.AsyncClient, org: Org) -> None:
    """One cheap request, so that the key is known here as its organisation's (its tenant)."""
    answer = await http.post("/graphql", json={"query": LIGHT}, headers=org.headers)
    assert answer.status_code == 200, answer.text


async def crowd(http: httpx.AsyncClient) -> None:
    """A request of another caller (no key: its address), so that the process is shared for
    the next seconds and its expensive requests take turns (a caller alone is not held back)."""
    answer = await http.get("/graphql", params={"query": "{ __typename }"})
    assert answer.status_code == 200, answer.text


async def heavy(http: httpx.AsyncClient, org: Org) -> httpx.Response:
    return await http.post("/graphql", json={"query": HEAVY}, headers=org.headers)


async def test_an_expensive_operation_waits_its_turn_and_a_full_queue_is_429(
    fair_app: Starlette, http: httpx.AsyncClient, org: Org
) -> None:
    lane = lane_of(fair_app)
    await prove(http, org)
    await crowd(http)
    await lane.enter(HOLDER)  # the lane is busy
    first = asyncio.ensure_future(heavy(http, org))
    await waiting(lane, 1)
    refused = await heavy(http, org)  # the organisation's queue (1) is full
    cheap = await http.post("/graphql", json={"query": LIGHT}, headers=org.headers)
    assert not first.done()
    lane.leave()
    answered = await first

    assert answered.status_code == 200, answered.text
    assert answered.json()["data"]["assistants"]["nodes"] == []
    assert answered.json()["extensions"]["cost"]["requested"] == 10_100
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert "waiting" in error["message"]
    # the refused request spent no points: the answered one spent 101 after it
    points_before = answered.json()["extensions"]["cost"]["pointsRemaining"]
    assert refused.json()["extensions"]["cost"]["pointsRemaining"] >= points_before
    # a cheap request never waits: it was answered while the lane was busy
    assert cheap.status_code == 200
    assert lane.running == 0
    assert not lane.waiting


async def test_the_lane_lets_tenants_in_one_after_another(
    settings: Settings, org: Org, other_org: Org
) -> None:
    changed = settings.model_copy(update={"fair_heavy_concurrency": 1})  # queues of 100
    application = create_app(changed)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            lane = lane_of(application)
            await prove(client, org)
            await prove(client, other_org)  # another caller: the process is shared
            await lane.enter(HOLDER)
            finished: list[str] = []

            async def run(name: str, who: Org) -> None:
                answer = await heavy(client, who)
                assert answer.status_code == 200, answer.text
                finished.append(name)

            tasks = [asyncio.ensure_future(run(f"a{i}", org)) for i in range(4)]
            await waiting(lane, 4)
            tasks.append(asyncio.ensure_future(run("b", other_org)))
            await waiting(lane, 5)
            await crowd(client)  # (still shared when the lane lets them in)
            lane.leave()
            await asyncio.gather(*tasks)
    # first come first served would run b last; in turn, it runs right after a0
    assert finished == ["a0", "b", "a1", "a2", "a3"]


async def test_rest_lists_take_turns_too(
    fair_app: Starlette, http: httpx.AsyncClient, org: Org
) -> None:
    lane = lane_of(fair_app)
    await prove(http, org)
    await crowd(http)
    await lane.enter(HOLDER)
    first = asyncio.ensure_future(http.get("/orgs/c/assistants", headers=org.headers))
    await waiting(lane, 1)
    refused = await http.get("/orgs/c/assistants", headers=org.headers)
    one = await http.get("/orgs/c/assistants/nope", headers=org.headers)  # not a list: no wait
    lane.leave()
    answered = await first

    assert answered.status_code == 200, answered.text
    assert answered.json() == []
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "RATE_LIMITED"
    assert int(refused.headers["retry-after"]) >= 1
    assert one.status_code == 404


async def test_an_expensive_websocket_operation_takes_its_turn(
    fair_app: Starlette, http: httpx.AsyncClient, org: Org
) -> None:
    lane = lane_of(fair_app)
    await prove(http, org)
    await crowd(http)
    await lane.enter(HOLDER)
    async with AsgiWebSocket(fair_app) as first, AsgiWebSocket(fair_app) as second:
        for socket in (first, second):
            assert (await socket.init(f"Bearer {org.api_key}"))["type"] == "connection_ack"
        await first.send({"id": "1", "type": "subscribe", "payload": {"query": HEAVY}})
        await waiting(lane, 1)
        await second.send({"id": "2", "type": "subscribe", "payload": {"query": HEAVY}})
        refused = await second.receive()
        light: dict[str, Any] = {"query": LIGHT}
        await second.send({"id": "3", "type": "subscribe", "payload": light})
        cheap = await second.receive()  # answered while the lane is busy
        lane.leave()
        answered = await first.receive()
        completed = await first.receive()

    assert (refused["id"], refused["type"]) == ("2", "error"), refused
    assert refused["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert refused["payload"][0]["extensions"]["retryAfter"] >= 1
    assert (cheap["id"], cheap["type"]) == ("3", "next"), cheap
    assert answered == {"id": "1", "type": "next", "payload": answered["payload"]}
    assert answered["payload"]["data"] == {"assistants": {"nodes": []}}
    assert completed == {"id": "1", "type": "complete"}


async def test_a_caller_alone_is_not_held_back(
    fair_app: Starlette, http: httpx.AsyncClient, org: Org
) -> None:
    lane = lane_of(fair_app)
    await prove(http, org)  # nobody else has used the process
    await lane.enter(HOLDER)
    answers = await asyncio.gather(*(heavy(http, org) for _ in range(3)))
    lane.leave()
    # answered while the lane's one place was taken, none queued or refused
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert lane.running == 0


def test_the_default_shares() -> None:
    defaults = Settings(_env_file=None)
    assert defaults.fair_heavy_cost == 1000
    assert defaults.fair_heavy_concurrency == 1
    assert defaults.fair_queue_per_tenant == 100
