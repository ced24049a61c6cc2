"""Publishing and pinning are `published` events (docs/releases.md) on the SSE stream and on the
`assistantChanged` subscription; the draft's version does not change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.events import Broker
from app.main import create_app
from app.settings import Settings
from tests.helpers.event_clients import AsgiHttpStream, AsgiWebSocket, SseStream, until
from tests.helpers.factories import Org

FAST = {"events_poll_interval": 0.05, "events_key_check_seconds": 0.2}
SUBSCRIPTION = """
subscription Changes($orgId: ID!, $assistantId: ID) {
  assistantChanged(orgId: $orgId, assistantId: $assistantId) {
    id assistantId version changeType release environment changes { path from to }
    assistant { name version }
  }
}
"""


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings.model_copy(update=FAST))
    async with application.router.lifespan_context(application):
        yield application


async def publish_then_pin(client: httpx.AsyncClient, org: Org, assistant_id: str) -> None:
    base = f"/orgs/c/assistants/{assistant_id}"
    published = await client.post(
        f"{base}/releases", json={"environment": "production"}, headers=org.headers
    )
    assert published.status_code == 201, published.text
    again = await client.post(f"{base}/releases", json={"note": "n"}, headers=org.headers)
    assert again.status_code == 201, again.text
    pinned = await client.put(
        f"{base}/environments/staging", json={"release": 2}, headers=org.headers
    )
    assert pinned.status_code == 200, pinned.text


async def test_published_events_on_the_sse_stream(
    app: Starlette, client: httpx.AsyncClient, org: Org, make_assistant: Any
) -> None:
    created = await make_assistant(org, name="Bot")
    http = AsgiHttpStream(app, f"/orgs/c/events?assistant_id={created['id']}", org.headers)
    async with http:
        stream = SseStream(http.lines())
        await stream.wait_connected()
        await publish_then_pin(client, org, created["id"])
        received = [await stream.next() for _ in range(3)]
    assert all(event is not None and event.event == "published" for event in received)
    data = [event.data for event in received if event is not None]
    assert [(d["release"], d["environment"], d["version"]) for d in data] == [
        (1, "production", 1),
        (2, None, 1),
        (2, "staging", 1),
    ]
    assert data[0]["changes"] == [{"path": "environments.production", "from": None, "to": 1}]
    assert data[1]["changes"] == []
    assert [int(d["id"]) for d in data] == sorted(int(d["id"]) for d in data)
    read = await client.get(f"/orgs/c/assistants/{created['id']}", headers=org.headers)
    assert read.json()["version"] == 1


async def test_published_events_on_the_subscription(
    app: Starlette, client: httpx.AsyncClient, org: Org, make_assistant: Any
) -> None:
    created = await make_assistant(org, name="Bot")
    broker: Broker = app.state.broker
    async with AsgiWebSocket(app) as socket:
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        before = broker.open_streams
        await socket.subscribe("1", "c", created["id"], query=SUBSCRIPTION)
        await until(lambda: broker.open_streams == before + 1)
        await publish_then_pin(client, org, created["id"])
        messages = [await socket.receive() for _ in range(3)]
    events = [m["payload"]["data"]["assistantChanged"] for m in messages]
    assert [(e["changeType"], e["release"], e["environment"], e["version"]) for e in events] == [
        ("PUBLISHED", 1, "production", 1),
        ("PUBLISHED", 2, None, 1),
        ("PUBLISHED", 2, "staging", 1),
    ]
    assert events[2]["changes"] == [{"path": "environments.staging", "from": None, "to": 2}]
    assert events[0]["assistant"] == {"name": "Bot", "version": 1}
