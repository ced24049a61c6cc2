"""A duplicate emits what a create emits (docs/duplicate.md): a `created` event naming its
source on the SSE stream and the subscription, and `assistant.created` webhook deliveries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from app.domain.webhook_events import DELIVERIES
from app.events import Broker
from app.main import create_app
from app.settings import Settings
from app.store import Store
from tests.helpers.event_clients import AsgiHttpStream, AsgiWebSocket, SseStream, until
from tests.helpers.factories import Org
from tests.helpers.webhook_rows import insert_webhook

FAST = {"events_poll_interval": 0.05, "events_key_check_seconds": 0.2}
SUBSCRIPTION = """
subscription Changes($orgId: ID!) {
  assistantChanged(orgId: $orgId) {
    assistantId version changeType duplicatedFrom { assistantId version } assistant { name }
  }
}
"""


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings.model_copy(update=FAST))
    async with application.router.lifespan_context(application):
        yield application


async def duplicate(client: httpx.AsyncClient, org: Org, assistant_id: str) -> dict[str, Any]:
    response = await client.post(
        f"/orgs/c/assistants/{assistant_id}/duplicate", json={}, headers=org.headers
    )
    assert response.status_code == 201, response.text
    copy: dict[str, Any] = response.json()
    return copy


async def test_a_duplicate_is_a_created_event_on_the_stream(
    app: Starlette, client: httpx.AsyncClient, org: Org, make_assistant: Any
) -> None:
    source = await make_assistant(org, name="Bot")
    async with AsgiHttpStream(app, "/orgs/c/events", org.headers) as http:
        stream = SseStream(http.lines())
        await stream.wait_connected()
        copy = await duplicate(client, org, source["id"])
        event = await stream.next()
    assert event is not None
    assert event.event == "created"
    history = await client.get(f"/orgs/c/assistants/{copy['id']}/revisions", headers=org.headers)
    [revision] = history.json()
    assert event.data == {
        "id": event.data["id"],
        "org_id": org.org_id,
        "assistant_id": copy["id"],
        "version": 1,
        "change_type": "created",
        "changes": revision["changes"],
        "duplicated_from": {"assistant_id": source["id"], "version": 1},
    }


async def test_a_duplicate_is_a_created_event_on_the_subscription(
    app: Starlette, client: httpx.AsyncClient, org: Org, make_assistant: Any
) -> None:
    source = await make_assistant(org, name="Bot")
    broker: Broker = app.state.broker
    async with AsgiWebSocket(app) as socket:
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        before = broker.open_streams
        await socket.subscribe("1", "c", None, query=SUBSCRIPTION)
        await until(lambda: broker.open_streams == before + 1)
        copy = await duplicate(client, org, source["id"])
        message = await socket.receive()
    assert message["payload"]["data"]["assistantChanged"] == {
        "assistantId": copy["id"],
        "version": 1,
        "changeType": "CREATED",
        "duplicatedFrom": {"assistantId": source["id"], "version": 1},
        "assistant": {"name": "Bot (copy)"},
    }


async def test_a_duplicate_is_delivered_to_webhooks_as_assistant_created(
    client: httpx.AsyncClient, db: Store, org: Org, make_assistant: Any
) -> None:
    source = await make_assistant(org, name="Bot")
    webhook_id = await insert_webhook(db, org.org_id)
    copy = await duplicate(client, org, source["id"])
    async with db.read() as tx:
        rows = await tx.all(
            select(DELIVERIES.c.type, DELIVERIES.c.payload).where(
                DELIVERIES.c.webhook_id == webhook_id
            )
        )
    [(event_type, payload)] = rows
    assert event_type == "assistant.created"
    assert payload["type"] == "assistant.created"
    data = payload["data"]
    assert (data["assistant_id"], data["version"], data["change_type"]) == (
        copy["id"],
        1,
        "created",
    )
    assert data["duplicated_from"] == {"assistant_id": source["id"], "version": 1}
