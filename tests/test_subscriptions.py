"""`assistantChanged` over graphql-transport-ws, in process: event shapes, filters, auth, guards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from app.auth import create_organisation
from app.domain.errors import DomainError
from app.events import Broker, ShuttingDown, SlowConsumer
from app.main import create_app
from app.models import AssistantRevision
from app.settings import Settings
from app.store import Store
from app.store.records import RevisionRecord
from tests.helpers.event_clients import AsgiWebSocket, Closed, GraphQLSocket, until
from tests.helpers.factories import Org
from tests.helpers.keys import READ, end_the_key, make_key

FAST = {"events_poll_interval": 0.05, "events_key_check_seconds": 0.2}


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    """The app with short poll and key-check intervals (the tests wait less)."""
    application = create_app(settings.model_copy(update=FAST))
    async with application.router.lifespan_context(application):
        yield application


def broker_of(app: Starlette) -> Broker:
    broker: Broker = app.state.broker
    return broker


async def open_subscription(
    app: Starlette, socket: GraphQLSocket, org: Org, assistant_id: str | None = None
) -> None:
    assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
    before = broker_of(app).open_streams
    await socket.subscribe("1", "c", assistant_id)
    await until(lambda: broker_of(app).open_streams == before + 1)


REVISIONS = AssistantRevision.__table__


async def revisions(db: Store, assistant_id: str) -> list[RevisionRecord]:
    statement = (
        select(REVISIONS)
        .where(REVISIONS.c.assistant_id == assistant_id)
        .order_by(REVISIONS.c.version)
    )
    async with db.read() as tx:
        return await tx.all(statement, None, RevisionRecord)


async def test_each_change_is_one_event_with_the_assistant_as_it_was(
    app: Starlette, client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store
) -> None:
    async with AsgiWebSocket(app) as socket:
        await open_subscription(app, socket, org)
        created = await make_assistant(org, name="Bot", config={"model": "gpt-4o"})
        url = f"/orgs/c/assistants/{created['id']}"
        assert (await client.patch(url, json={"name": "Bot 2"}, headers=org.headers)).is_success
        assert (await client.post(f"{url}/rotate-secret-key", headers=org.headers)).is_success
        assert (await client.delete(url, headers=org.headers)).status_code == 204
        messages = [await socket.receive() for _ in range(4)]

    rows = await revisions(db, created["id"])
    assert [m["payload"]["data"]["assistantChanged"]["id"] for m in messages] == [
        str(row.seq) for row in rows
    ]
    events = [m["payload"]["data"]["assistantChanged"] for m in messages]
    assert all(m["id"] == "1" and m["type"] == "next" for m in messages)
    common = {"orgId": org.org_id, "assistantId": created["id"]}
    assert events[1:] == [
        {
            **common,
            "id": str(rows[1].seq),
            "version": 2,
            "changeType": "UPDATED",
            "changes": [{"path": "name", "from": "Bot", "to": "Bot 2"}],
            "assistant": {
                "id": created["id"],
                "name": "Bot 2",
                "version": 2,
                "config": {"model": "gpt-4o"},
            },
        },
        {
            **common,
            "id": str(rows[2].seq),
            "version": 3,
            "changeType": "SECRET_KEY_ROTATED",
            "changes": [{"path": "secretKey", "from": None, "to": None}],
            "assistant": {
                "id": created["id"],
                "name": "Bot 2",
                "version": 3,
                "config": {"model": "gpt-4o"},
            },
        },
        {**common, "id": str(rows[3].seq), "version": 4, "changeType": "DELETED",
         "changes": events[3]["changes"], "assistant": None},
    ]  # fmt: skip
    first = events[0]
    assert (first["version"], first["changeType"], first["assistant"]["name"]) == (
        1,
        "CREATED",
        "Bot",
    )
    assert {"path": "config.tts.voiceId", "from": None, "to": None} in first["changes"]
    assert {"path": "config.model", "from": None, "to": "gpt-4o"} in first["changes"]


async def test_an_assistant_filter_sends_only_that_assistants_events(
    app: Starlette, client: httpx.AsyncClient, org: Org, make_assistant: Any
) -> None:
    watched = await make_assistant(org, name="Watched")
    other = await make_assistant(org, name="Other")
    async with AsgiWebSocket(app) as socket:
        await open_subscription(app, socket, org, watched["id"])
        for assistant in (other, watched):
            url = f"/orgs/c/assistants/{assistant['id']}"
            patched = await client.patch(url, json={"enabled": False}, headers=org.headers)
            assert patched.is_success
        message = await socket.receive()
    event = message["payload"]["data"]["assistantChanged"]
    assert (event["assistantId"], event["version"]) == (watched["id"], 2)


async def test_another_organisations_changes_never_arrive(
    app: Starlette, client: httpx.AsyncClient, org: Org, other_org: Org, make_assistant: Any
) -> None:
    async with AsgiWebSocket(app) as socket:
        await open_subscription(app, socket, org)
        await make_assistant(other_org, name="Theirs")
        mine = await make_assistant(org, name="Mine")
        message = await socket.receive()
    assert message["payload"]["data"]["assistantChanged"]["assistantId"] == mine["id"]


async def test_another_organisations_id_is_forbidden(
    app: Starlette, org: Org, other_org: Org
) -> None:
    async with AsgiWebSocket(app) as socket:
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        await socket.subscribe("7", other_org.org_id)
        error, complete = await socket.receive(), await socket.receive()
    assert error == {
        "id": "7",
        "type": "next",
        "payload": {
            "data": None,
            "errors": [
                {
                    "message": "this API key does not open that organisation",
                    "extensions": {"code": "FORBIDDEN"},
                }
            ],
        },
    }
    assert complete == {"id": "7", "type": "complete"}
    assert broker_of(app).open_streams == 0


@pytest.mark.parametrize(
    "authorization", [None, "Bearer ak_not-a-key", "Basic abc", "Bearer "], ids=repr
)
async def test_a_bad_or_missing_key_closes_the_socket(
    app: Starlette, authorization: str | None
) -> None:
    async with AsgiWebSocket(app) as socket:
        with pytest.raises(Closed) as closed:
            await socket.init(authorization)
    assert closed.value == Closed(4403, "Forbidden")


async def test_subscribing_before_connection_init_closes_the_socket(
    app: Starlette, org: Org
) -> None:
    async with AsgiWebSocket(app) as socket:
        await socket.subscribe("1", "c")
        with pytest.raises(Closed) as closed:
            await socket.receive()
    assert closed.value == Closed(4401, "Unauthorized")


@pytest.mark.parametrize("how", ["revoked", "revoked over REST", "expired"])
async def test_a_revoked_or_expired_key_closes_the_socket(
    app: Starlette, client: httpx.AsyncClient, org: Org, db: Store, how: str
) -> None:
    expiry = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    key = await make_key(client, org, [READ], expires_at=expiry)
    async with AsgiWebSocket(app) as socket:
        await open_subscription(app, socket, key)
        reason = await end_the_key(how, client, db, org, key)
        with pytest.raises(Closed) as closed:
            await socket.receive()
    assert closed.value == Closed(4403, reason)
    await until(lambda: broker_of(app).open_streams == 0)


async def test_an_expired_key_cannot_open_a_socket(
    app: Starlette, client: httpx.AsyncClient, org: Org, db: Store
) -> None:
    key = await make_key(client, org, [READ])
    await end_the_key("expired", client, db, org, key)
    async with AsgiWebSocket(app) as socket:
        with pytest.raises(Closed) as closed:
            await socket.init(f"Bearer {key.api_key}")
    assert closed.value == Closed(4403, "Forbidden")


async def test_a_key_bound_to_some_assistants_receives_only_theirs(
    app: Starlette, client: httpx.AsyncClient, org: Org, make_assistant: Any
) -> None:
    mine = await make_assistant(org, name="Mine")
    theirs = await make_assistant(org, name="Not mine")
    bound = await make_key(client, org, [READ], assistant_ids=[mine["id"]])
    async with AsgiWebSocket(app) as socket:
        await open_subscription(app, socket, bound)
        for assistant in (theirs, mine):
            url = f"/orgs/c/assistants/{assistant['id']}"
            patched = await client.patch(url, json={"enabled": False}, headers=org.headers)
            assert patched.is_success
        message = await socket.receive()
        await socket.subscribe("2", "c", theirs["id"])
        refused = await socket.receive()
    event = message["payload"]["data"]["assistantChanged"]
    assert (event["assistantId"], event["version"]) == (mine["id"], 2)
    assert refused["id"] == "2"
    assert refused["payload"]["errors"][0]["extensions"] == {"code": "NOT_FOUND"}


async def test_at_most_twenty_subscriptions_per_connection(app: Starlette, org: Org) -> None:
    async with AsgiWebSocket(app) as socket:
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        for n in range(20):
            await socket.subscribe(str(n), "c")
        await until(lambda: broker_of(app).open_streams == 20)
        await socket.subscribe("20", "c")
        refused = await socket.receive()
    assert refused == {
        "id": "20",
        "type": "error",
        "payload": [
            {
                "message": "at most 20 subscriptions per connection",
                "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"},
            }
        ],
    }
    await until(lambda: broker_of(app).open_streams == 0)


async def test_the_process_wide_stream_limit_refuses_with_a_code(
    settings: Settings, make_org: Any
) -> None:
    application = create_app(settings.model_copy(update={"events_max_streams": 1}))
    async with application.router.lifespan_context(application):
        async with application.state.db.write() as tx:
            _, _, key = await create_organisation(tx, name="Acme")
        async with AsgiWebSocket(application) as socket:
            assert await socket.init(f"Bearer {key}") == {"type": "connection_ack"}
            await socket.subscribe("1", "c")
            await until(lambda: broker_of(application).open_streams == 1)
            await socket.subscribe("2", "c")
            refused = await socket.receive()
    assert refused["id"] == "2"
    assert refused["payload"]["errors"][0]["extensions"] == {
        "code": "TOO_MANY_STREAMS",
        "retryAfter": 5,
    }


async def test_completing_a_subscription_releases_its_stream(app: Starlette, org: Org) -> None:
    async with AsgiWebSocket(app) as socket:
        await open_subscription(app, socket, org)
        await socket.send({"id": "1", "type": "complete"})
        await until(lambda: broker_of(app).open_streams == 0)


@pytest.mark.parametrize("reason", [SlowConsumer("too slow"), ShuttingDown("going away")])
async def test_a_dropped_subscription_ends_with_its_reason(
    app: Starlette, org: Org, reason: DomainError
) -> None:
    async with AsgiWebSocket(app) as socket:
        await open_subscription(app, socket, org)
        broker_of(app).close_all(reason)
        error, complete = await socket.receive(), await socket.receive()
    assert error == {
        "id": "1",
        "type": "next",
        "payload": {
            "data": None,
            "errors": [{"message": reason.message, "extensions": {"code": reason.code}}],
        },
    }
    assert complete == {"id": "1", "type": "complete"}
    await until(lambda: broker_of(app).open_streams == 0)


async def test_a_socket_whose_key_expired_is_closed_at_its_next_subscription(
    app: Starlette, client: httpx.AsyncClient, org: Org, db: Store
) -> None:
    expiry = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    key = await make_key(client, org, [READ], expires_at=expiry)
    async with AsgiWebSocket(app) as socket:
        assert await socket.init(f"Bearer {key.api_key}") == {"type": "connection_ack"}
        await end_the_key("expired", client, db, org, key)
        await socket.subscribe("1", "c")
        with pytest.raises(Closed) as closed:
            await socket.receive()
    assert closed.value == Closed(4403, "the API key has expired")
    await until(lambda: broker_of(app).open_streams == 0)


async def test_a_key_that_expires_while_its_socket_is_open_closes_it_at_the_next_subscription(
    settings: Settings, org: Org
) -> None:
    """The socket authenticated once, before the key's expiry; the next subscription after it
    closes the socket at once (not only at the streams' next key check, set far off here)."""
    application = create_app(settings.model_copy(update={"events_key_check_seconds": 600}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            expiry = datetime.now(UTC) + timedelta(seconds=2)
            key = await make_key(client, org, [READ], expires_at=expiry.isoformat())
        async with AsgiWebSocket(application) as socket:
            assert await socket.init(f"Bearer {key.api_key}") == {"type": "connection_ack"}
            await until(lambda: datetime.now(UTC) > expiry)  # waits for the time to come
            await socket.subscribe("1", "c")
            with pytest.raises(Closed) as closed:
                await socket.receive()
        assert closed.value == Closed(4403, "the API key has expired")
        assert broker_of(application).open_streams == 0


async def test_a_change_committed_while_the_stream_starts_still_arrives(
    app: Starlette, client: httpx.AsyncClient, org: Org, make_assistant: Any, monkeypatch: Any
) -> None:
    """The first stream starts the broker's source, which takes a while to connect: a change
    committed once the stream is open, before the source listens, is not lost (the source's
    starting point is read before the stream opens)."""
    from app.events import Broker

    starting = Broker._run

    async def slow_start(self: Broker, source: Any) -> None:
        await asyncio.sleep(0.5)
        await starting(self, source)

    monkeypatch.setattr(Broker, "_run", slow_start)
    watched = await make_assistant(org, name="Watched")
    async with AsgiWebSocket(app) as socket:
        await open_subscription(app, socket, org, watched["id"])
        url = f"/orgs/c/assistants/{watched['id']}"
        patched = await client.patch(url, json={"enabled": False}, headers=org.headers)
        assert patched.is_success
        message = await socket.receive()
    event = message["payload"]["data"]["assistantChanged"]
    assert (event["assistantId"], event["version"]) == (watched["id"], 2)


RESUMING = """
subscription Resume($orgId: ID!, $assistantId: ID, $after: ID) {
  assistantChanged(orgId: $orgId, assistantId: $assistantId, afterEventId: $after) {
    id assistantId version assistant { name version }
  }
}
"""


async def resume_subscription(
    app: Starlette, socket: GraphQLSocket, org: Org, after: str | None, assistant_id: str | None
) -> None:
    assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
    variables = {"orgId": "c", "assistantId": assistant_id, "after": after}
    payload = {"query": RESUMING, "variables": variables}
    await socket.send({"id": "1", "type": "subscribe", "payload": payload})


async def test_after_event_id_resumes_with_exactly_the_missed_events(
    app: Starlette, client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store
) -> None:
    """The events after `afterEventId` (of the assistant asked for only) come first, read from
    the table, then the live ones, none twice (as `Last-Event-ID` over SSE)."""
    watched = await make_assistant(org, name="Bot")
    other = await make_assistant(org, name="Other")
    url = f"/orgs/c/assistants/{watched['id']}"
    for n in range(3):
        assert (await client.patch(url, json={"name": f"Bot {n}"}, headers=org.headers)).is_success
        other_url = f"/orgs/c/assistants/{other['id']}"
        patched = await client.patch(other_url, json={"name": f"O {n}"}, headers=org.headers)
        assert patched.is_success
    rows = await revisions(db, watched["id"])  # versions 1 to 4
    async with AsgiWebSocket(app) as socket:
        await resume_subscription(app, socket, org, str(rows[1].seq), watched["id"])
        missed = [await socket.receive() for _ in range(2)]
        await until(lambda: broker_of(app).open_streams == 1)
        assert (await client.patch(url, json={"name": "Live"}, headers=org.headers)).is_success
        live = await socket.receive()
    rows = await revisions(db, watched["id"])
    events = [m["payload"]["data"]["assistantChanged"] for m in [*missed, live]]
    assert events == [
        {
            "id": str(row.seq),
            "assistantId": watched["id"],
            "version": row.version,
            "assistant": {"name": row.snapshot["name"], "version": row.version},
        }
        for row in rows[2:]
    ]
    assert [e["assistant"]["name"] for e in events] == ["Bot 1", "Bot 2", "Live"]


@pytest.mark.parametrize("after", ["x1", "-1", "99999999999999999999"])
async def test_a_bad_after_event_id_is_refused_naming_the_argument(
    app: Starlette, org: Org, after: str
) -> None:
    async with AsgiWebSocket(app) as socket:
        await resume_subscription(app, socket, org, after, None)
        error, complete = await socket.receive(), await socket.receive()
    assert error["type"] == "next"
    assert error["payload"]["data"] is None
    assert error["payload"]["errors"] == [
        {
            "message": "'afterEventId' must be the id of an event",
            "extensions": {
                "code": "BAD_USER_INPUT",
                "fields": [{"path": ["afterEventId"], "message": "must be an event id"}],
            },
        }
    ]
    assert complete == {"id": "1", "type": "complete"}
    assert broker_of(app).open_streams == 0
