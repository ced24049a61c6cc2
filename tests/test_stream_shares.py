"""Fair shares of live streams: EVENTS_MAX_STREAMS_PER_KEY caps one API
key's open SSE streams plus GraphQL subscriptions in a process; beyond it SSE is 429
TOO_MANY_STREAMS with Retry-After and a subscription gets a TOO_MANY_STREAMS error; another key
is not held back, and a closed stream frees its slot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from app.auth import create_key, create_organisation
from app.events import Broker
from app.main import create_app
from app.settings import Settings
from tests.helpers.event_clients import AsgiHttpStream, AsgiWebSocket, SseStream, until
from tests.helpers.factories import Org


@pytest.fixture
async def shared_app(settings: Settings) -> AsyncIterator[Starlette]:
    changed = {"events_max_streams_per_key": 2, "events_max_streams": 10}
    application = create_app(settings.model_copy(update=changed))
    async with application.router.lifespan_context(application):
        yield application


def broker_of(app: Starlette) -> Broker:
    broker: Broker = app.state.broker
    return broker


async def two_keys(app: Starlette) -> tuple[Org, Org]:
    async with app.state.db.write() as tx:
        org, key_id, token = await create_organisation(tx, name="Acme")
        other_id, other_token = await create_key(tx, org_id=org.id)
    return Org(org.id, key_id, token), Org(org.id, other_id, other_token)


class Sse:
    """An open event stream of the in-process app, read until `: connected`."""

    def __init__(self, app: Starlette, org: Org) -> None:
        self.http = AsgiHttpStream(app, "/orgs/c/events", org.headers)

    async def __aenter__(self) -> AsgiHttpStream:
        await self.http.__aenter__()
        assert self.http.status == 200
        await SseStream(self.http.lines()).wait_connected()
        return self.http

    async def __aexit__(self, *exc: object) -> None:
        await self.http.__aexit__(*exc)


async def refused_sse(app: Starlette, org: Org) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/orgs/c/events", headers=org.headers)


async def test_one_key_gets_its_share_and_no_more(shared_app: Starlette) -> None:
    key, other = await two_keys(shared_app)
    async with Sse(shared_app, key), Sse(shared_app, key):
        refused = await refused_sse(shared_app, key)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "5"
        problem = refused.json()
        assert (problem["code"], problem["title"]) == ("TOO_MANY_STREAMS", "Too Many Requests")
        assert problem["detail"] == "this API key has 2 open event streams on this server already"

        # a subscription of the same key counts in the same share
        async with AsgiWebSocket(shared_app) as socket:
            assert await socket.init(f"Bearer {key.api_key}") == {"type": "connection_ack"}
            await socket.subscribe("1", "c")
            error = await socket.receive()
        assert error["id"] == "1"
        assert error["payload"]["errors"][0]["extensions"]["code"] == "TOO_MANY_STREAMS"

        async with Sse(shared_app, other):  # another key is not held back
            assert broker_of(shared_app).open_streams == 3
    await until(lambda: broker_of(shared_app).open_streams == 0)


async def test_sse_and_subscriptions_share_the_count_and_closing_frees_a_slot(
    shared_app: Starlette,
) -> None:
    key, _ = await two_keys(shared_app)
    async with AsgiWebSocket(shared_app) as socket:
        assert await socket.init(f"Bearer {key.api_key}") == {"type": "connection_ack"}
        await socket.subscribe("1", "c")
        await until(lambda: broker_of(shared_app).open_streams == 1)
        async with Sse(shared_app, key):
            assert (await refused_sse(shared_app, key)).status_code == 429
        await until(lambda: broker_of(shared_app).open_streams == 1)
        async with Sse(shared_app, key):  # the closed stream's slot is free again
            assert broker_of(shared_app).open_streams == 2
        await socket.send({"id": "1", "type": "complete"})
        await until(lambda: broker_of(shared_app).open_streams == 0)
    async with Sse(shared_app, key), Sse(shared_app, key):
        assert (await refused_sse(shared_app, key)).status_code == 429


def test_the_default_share_is_20_streams_per_key() -> None:
    assert Settings(_env_file=None).events_max_streams_per_key == 20  # type: ignore[call-arg]
