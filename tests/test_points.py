"""The GraphQL points budget: GRAPHQL_POINTS per API key per minute, a
request spending max(1, ceil(cost / 100)); beyond it 429 RATE_LIMITED with Retry-After, nothing
runs, and the key's other requests and other keys are not affected. Over the websocket an
operation spends its points once, when it starts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import limits.storage.memory
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from app.http.ratelimit import Buckets, PointsBudget
from app.main import create_app
from app.models import Assistant
from app.settings import Settings
from app.store import Store
from tests.helpers.event_clients import AsgiWebSocket, until
from tests.helpers.factories import Org

WINDOW_START = 1_800_000_000 - 1_800_000_000 % 60  # a minute boundary of the limits' windows
CREATE = (
    'mutation { createAssistant(orgId: "c", input: {name: "x"}) '
    "{ id integrations { id } actions { id } } }"
)  # costs 200: 2 points


class Clock:
    """The clock of limits' in-memory storage (the windows are minutes of this clock)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """10 seconds into a minute, and still until a test moves it."""
    frozen = Clock(WINDOW_START + 10)
    monkeypatch.setattr(limits.storage.memory, "time", SimpleNamespace(time=frozen.time))
    return frozen


async def assistants_count(db: Store) -> int:
    async with db.read() as tx:
        return int(await tx.scalar(select(func.count()).select_from(Assistant.__table__)) or 0)


async def create(client: httpx.AsyncClient, org: Org | None) -> httpx.Response:
    headers = org.headers if org else {}
    return await client.post("/graphql", json={"query": CREATE}, headers=headers)


def cost(response: httpx.Response) -> dict[str, int]:
    spent: dict[str, int] = response.json()["extensions"]["cost"]
    return spent


async def test_the_budget_is_spent_then_429_and_another_key_is_unaffected(
    make_client: Any, clock: Clock, org: Org, new_key: Any, db: Store
) -> None:
    client = await make_client(graphql_points=10)
    for remaining in [8, 6, 4, 2, 0]:
        response = await create(client, org)
        assert response.status_code == 200
        assert "errors" not in response.json()
        assert cost(response) == {"requested": 200, "pointsRemaining": remaining}
    refused = await create(client, org)
    assert refused.status_code == 429
    # the 10 points of the window were spent 10 s into it; the sliding window weighs them
    # fully until its end (50 s), then less and less: 2 points fit 12 s into the next minute
    assert refused.headers["retry-after"] == "62"
    assert refused.headers["content-type"] == "application/json"
    assert refused.json() == {
        "errors": [
            {
                "message": "the GraphQL points of this API key are spent: 10 per 60 seconds, "
                "and this request needs 2; retry in 62 seconds",
                "extensions": {"code": "RATE_LIMITED"},
            }
        ],
        "extensions": {"cost": {"requested": 200, "pointsRemaining": 0}},
    }
    assert await assistants_count(db) == 5  # the refused mutation did not run

    other = await new_key(org)
    response = await create(client, other)
    assert response.status_code == 200
    assert cost(response)["requested"] == 200
    assert await assistants_count(db) == 6

    clock.now += 62  # the first key's points fit again
    assert (await create(client, org)).status_code == 200


async def test_a_cheap_request_still_fits_when_a_costly_one_does_not(
    make_client: Any, clock: Clock, org: Org
) -> None:
    client = await make_client(graphql_points=250)
    listing = {"query": '{ assistants(orgId: "c", first: 100) { nodes { integrations { id } } } }'}
    first = await client.post("/graphql", json=listing, headers=org.headers)
    assert cost(first) == {"requested": 10_100, "pointsRemaining": 250 - 101}
    second = await client.post("/graphql", json=listing, headers=org.headers)
    assert cost(second) == {"requested": 10_100, "pointsRemaining": 48}
    refused = await client.post("/graphql", json=listing, headers=org.headers)
    assert refused.status_code == 429
    cheap = {"query": '{ assistants(orgId: "c") { totalCount } }'}  # 20: 1 point
    response = await client.post("/graphql", json=cheap, headers=org.headers)
    assert response.status_code == 200
    assert cost(response) == {"requested": 20, "pointsRemaining": 47}


async def test_requests_without_a_key_spend_per_client_address(
    make_client: Any, clock: Clock, org: Org
) -> None:
    client = await make_client(graphql_points=3)
    # (`__typename` costs 1 point; introspection 20: tests/graphql/test_cost.py)
    typename = {"query": "{ __typename }"}
    for remaining in [2, 1, 0]:
        response = await client.post("/graphql", json=typename)
        assert response.status_code == 200
        assert cost(response) == {"requested": 0, "pointsRemaining": remaining}
    assert (await client.post("/graphql", json=typename)).status_code == 429
    invented = {"Authorization": "Bearer ak_invented"}  # counts against the address too
    assert (await client.post("/graphql", json=typename, headers=invented)).status_code == 429
    # a key that authenticated before has its own budget, whatever its address spent
    response = await client.post("/graphql", json=typename, headers=org.headers)
    assert response.status_code == 429  # not yet proven: its address is spent (a refused
    # request spends nothing, in none of its buckets)
    rest = await client.get("/orgs/c/assistants", headers=org.headers)  # proves the key
    assert rest.status_code == 200
    response = await client.post("/graphql", json=typename, headers=org.headers)
    assert response.status_code == 200
    assert cost(response) == {"requested": 0, "pointsRemaining": 2}


async def test_the_default_is_10000_points_a_minute(client: httpx.AsyncClient, org: Org) -> None:
    assert Settings(_env_file=None).graphql_points == 10_000  # type: ignore[call-arg]
    response = await create(client, org)
    assert cost(response) == {"requested": 200, "pointsRemaining": 9_998}


def test_retry_after_when_the_previous_minute_still_weighs(clock: Clock) -> None:
    budget = PointsBudget(Buckets(), 100)
    assert budget.spend_here(("k",), 100).allowed
    clock.now += 60  # 10 s into the next minute: the 100 points weigh 100 * 50 / 60
    verdict = budget.spend_here(("k",), 30)
    assert (verdict.allowed, verdict.remaining) == (False, 17)
    # 30 points fit once 100 * left / 60 <= 70: left <= 42 s, so in 8 s
    assert verdict.reset_after == 8
    clock.now += 8
    assert budget.spend_here(("k",), 30).allowed


# -- the websocket -------------------------------------------------------------------------

SUBSCRIPTION = (
    "subscription($org: ID!) { assistantChanged(orgId: $org) { id "
    "assistant { integrations { id } actions { id } } } }"
)  # costs 200: 2 points


@pytest.fixture
async def socket_app(settings: Settings) -> AsyncIterator[Starlette]:
    update = {"graphql_points": 5, "graphql_max_cost": 250, "events_poll_interval": 0.05}
    application = create_app(settings.model_copy(update=update))
    async with application.router.lifespan_context(application):
        yield application


async def subscribe(socket: Any, op_id: str, query: str = SUBSCRIPTION) -> None:
    payload = {"query": query, "variables": {"org": "c"}}
    await socket.send({"id": op_id, "type": "subscribe", "payload": payload})


async def test_a_subscription_spends_its_cost_once_when_it_starts(
    socket_app: Starlette, org: Org, clock: Clock
) -> None:
    transport = httpx.ASGITransport(app=socket_app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        AsgiWebSocket(socket_app) as socket,
    ):
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        await subscribe(socket, "1")  # 2 points
        await until(lambda: socket_app.state.broker.open_streams == 1)
        for n in range(3):  # events cost nothing more
            made = await client.post(
                "/orgs/c/assistants", json={"name": f"a{n}"}, headers=org.headers
            )
            assert made.status_code == 201
            event = await socket.receive()
            assert event["type"] == "next"
            assert event["payload"]["data"]["assistantChanged"]["assistant"] == {
                "integrations": [],
                "actions": [],
            }
        await subscribe(socket, "2")  # 2 more: 1 left
        await until(lambda: socket_app.state.broker.open_streams == 2)
        await subscribe(socket, "3")  # 4 spent 10 s into the minute: 2 more fit 15 s into
        # the next one (4 * 45 / 60 + 2 <= 5)
        refused = await socket.receive()
        assert refused == {
            "id": "3",
            "type": "error",
            "payload": [
                {
                    "message": "the GraphQL points of this API key are spent: 5 per 60 seconds, "
                    "and this request needs 2; retry in 65 seconds",
                    "extensions": {"code": "RATE_LIMITED", "retryAfter": 65},
                }
            ],
        }
        # the same budget as over HTTP
        response = await client.post(
            "/graphql", json={"query": "{ __typename }"}, headers=org.headers
        )
        assert response.json()["extensions"]["cost"] == {"requested": 0, "pointsRemaining": 0}


async def test_a_costly_subscription_is_refused_before_it_starts(
    socket_app: Starlette, org: Org, clock: Clock
) -> None:
    costly = SUBSCRIPTION.replace(
        "actions { id }", "actions { id } revisions(first: 60) { nodes { version } }"
    )  # 100 + 100 + 60 = 260 > 250
    async with AsgiWebSocket(socket_app) as socket:
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        await subscribe(socket, "1", costly)
        refused = await socket.receive()
    assert refused["type"] == "error"
    [error] = refused["payload"]
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED", "cost": 260, "maxCost": 250}
