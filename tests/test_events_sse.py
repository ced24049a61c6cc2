"""`GET /orgs/{org_id}/events` in process: frames, resume with Last-Event-ID, auth, guards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from app.auth import create_organisation
from app.events import Broker, SlowConsumer
from app.main import create_app
from app.models import AssistantRevision
from app.settings import Settings
from app.store import Store
from app.store.records import RevisionRecord
from tests.helpers.event_clients import AsgiHttpStream, SseEvent, SseStream, until
from tests.helpers.factories import Org
from tests.helpers.keys import READ, end_the_key, make_key

FAST = {"events_poll_interval": 0.05, "events_key_check_seconds": 0.2}


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    """The app with short poll and key-check intervals (the tests wait less)."""
    application = create_app(settings.model_copy(update=FAST))
    async with application.router.lifespan_context(application):
        yield application


REVISIONS = AssistantRevision.__table__


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def stored_events(db: Store, org_id: str) -> list[RevisionRecord]:
    statement = select(REVISIONS).where(REVISIONS.c.org_id == org_id).order_by(REVISIONS.c.seq)
    async with db.read() as tx:
        return await tx.all(statement, None, RevisionRecord)


def document(row: RevisionRecord) -> dict[str, Any]:
    return {
        "id": str(row.seq),
        "org_id": row.org_id,
        "assistant_id": row.assistant_id,
        "version": row.version,
        "change_type": row.change_type,
        "changes": row.changes,
    }


class Events:
    """An open event stream of the in-process app."""

    def __init__(self, app: Starlette, org: Org, query: str = "", **headers: str) -> None:
        self.http = AsgiHttpStream(app, f"/orgs/c/events{query}", {**org.headers, **headers})

    async def __aenter__(self) -> SseStream:
        await self.http.__aenter__()
        stream = SseStream(self.http.lines())
        await stream.wait_connected()
        return stream

    async def __aexit__(self, *exc: object) -> None:
        await self.http.__aexit__(*exc)


async def patch(client: httpx.AsyncClient, org: Org, assistant_id: str, body: Any) -> None:
    url = f"/orgs/c/assistants/{assistant_id}"
    response = await client.patch(url, json=body, headers=org.headers)
    assert response.status_code == 200, response.text


async def test_each_revision_is_one_event_in_order(
    app: Starlette, client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store
) -> None:
    async with Events(app, org) as stream:
        created = await make_assistant(org, name="Bot")
        await patch(client, org, created["id"], {"config": {"tts": {"voice_id": "alloy"}}})
        url = f"/orgs/c/assistants/{created['id']}"
        assert (await client.post(f"{url}/rotate-secret-key", headers=org.headers)).is_success
        assert (await client.delete(url, headers=org.headers)).status_code == 204
        received = [await stream.next() for _ in range(4)]

    rows = await stored_events(db, org.org_id)
    assert received == [SseEvent(str(r.seq), r.change_type, document(r)) for r in rows]
    assert [r.change_type for r in rows] == ["created", "updated", "secret_key_rotated", "deleted"]
    assert received[1].data["changes"] == [
        {"path": "config.tts.voice_id", "from": None, "to": "alloy"}
    ]
    assert received[2].data["changes"] == [{"path": "secret_key", "from": None, "to": None}]


async def test_the_response_is_an_uncached_event_stream(app: Starlette, org: Org) -> None:
    events = Events(app, org)
    async with events:
        assert events.http.status == 200
        assert events.http.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert events.http.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("how", ["header", "query"])
async def test_last_event_id_resumes_with_exactly_the_missed_events(
    app: Starlette,
    client: httpx.AsyncClient,
    org: Org,
    make_assistant: Any,
    db: Store,
    how: str,
) -> None:
    created = await make_assistant(org, name="Bot")
    for n in range(3):
        await patch(client, org, created["id"], {"name": f"Bot {n}"})
    rows = await stored_events(db, org.org_id)
    seen = rows[1].seq
    resume = {"Last-Event-ID": str(seen)} if how == "header" else {}
    query = f"?last_event_id={seen}" if how == "query" else ""
    async with Events(app, org, query, **resume) as stream:
        missed = [await stream.next() for _ in range(2)]
        await patch(client, org, created["id"], {"name": "Live"})
        live = await stream.next()
    rows = await stored_events(db, org.org_id)
    assert [e.id for e in [*missed, live]] == [str(r.seq) for r in rows[2:]]
    assert live.data["changes"] == [{"path": "name", "from": "Bot 2", "to": "Live"}]


async def test_an_assistant_filter_and_other_organisations(
    app: Starlette,
    client: httpx.AsyncClient,
    org: Org,
    other_org: Org,
    make_assistant: Any,
) -> None:
    watched = await make_assistant(org, name="Watched")
    other = await make_assistant(org, name="Other")
    theirs = await make_assistant(other_org, name="Theirs")
    async with Events(app, org, f"?assistant_id={watched['id']}") as stream:
        await patch(client, other_org, theirs["id"], {"enabled": False})
        await patch(client, org, other["id"], {"enabled": False})
        await patch(client, org, watched["id"], {"enabled": False})
        event = await stream.next()
    assert (event.data["assistant_id"], event.data["version"]) == (watched["id"], 2)


async def test_heartbeats_while_nothing_changes(settings: Settings, make_org: Any) -> None:
    application = create_app(settings.model_copy(update={"events_heartbeat_seconds": 0.05}))
    async with application.router.lifespan_context(application):
        async with application.state.db.write() as tx:
            _, key_id, key = await create_organisation(tx, name="Acme")
        async with Events(application, Org("c", key_id, key)) as stream:
            await stream.wait_comment("keepalive")


@pytest.mark.parametrize("how", ["revoked", "revoked over REST", "expired"])
async def test_a_revoked_or_expired_key_ends_the_stream_with_an_error_event(
    app: Starlette, client: httpx.AsyncClient, org: Org, db: Store, how: str
) -> None:
    key = await make_key(client, org, [READ], expires_at=later(days=1))
    async with Events(app, key) as stream:
        reason = await end_the_key(how, client, db, org, key)
        closing = await stream.next()
        end = await stream.next()
    assert closing == SseEvent(None, "error", {"code": "UNAUTHENTICATED", "detail": reason})
    assert end is None
    await until(lambda: app.state.broker.open_streams == 0)


async def test_a_key_bound_to_some_assistants_receives_only_theirs(
    app: Starlette, client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store
) -> None:
    mine = await make_assistant(org, name="Mine")
    theirs = await make_assistant(org, name="Not mine")
    bound = await make_key(client, org, [READ], assistant_ids=[mine["id"]])
    async with Events(app, bound) as stream:
        await patch(client, org, theirs["id"], {"name": "Not mine 2"})
        await patch(client, org, mine["id"], {"name": "Mine 2"})
        live = await stream.next()
    assert (live.data["assistant_id"], live.data["version"]) == (mine["id"], 2)

    assert len(await stored_events(db, org.org_id)) == 4
    async with Events(app, bound, **{"Last-Event-ID": "0"}) as stream:  # from the beginning
        replayed = [await stream.next() for _ in range(2)]
    assert [(e.data["assistant_id"], e.data["version"]) for e in replayed] == [
        (mine["id"], 1),
        (mine["id"], 2),
    ]
    refused = await client.get(f"/orgs/c/events?assistant_id={theirs['id']}", headers=bound.headers)
    assert (refused.status_code, refused.json()["code"]) == (404, "NOT_FOUND")


async def test_shutdown_ends_the_stream_with_an_error_event(app: Starlette, org: Org) -> None:
    async with Events(app, org) as stream:
        app.state.broker.shutting_down()
        closing = await stream.next()
        end = await stream.next()
    assert closing == SseEvent(
        None, "error", {"code": "SHUTTING_DOWN", "detail": "the server is shutting down"}
    )
    assert end is None


async def test_a_slow_consumer_is_dropped_not_buffered(
    settings: Settings,
) -> None:
    application = create_app(settings.model_copy(update={**FAST, "events_queue_size": 2}))
    async with application.router.lifespan_context(application):
        broker: Broker = application.state.broker
        async with application.state.db.write() as tx:
            org, key_id, key = await create_organisation(tx, name="Acme")
        headers = {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=application)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
            broker.stream(org_id=org.id, assistant_ids=None, key_id=key_id) as stream,
        ):
            for n in range(3):
                body = {"name": f"B{n}"}
                response = await client.post("/orgs/c/assistants", json=body, headers=headers)
                assert response.status_code == 201
            await until(lambda: stream.closed is not None)
            with pytest.raises(SlowConsumer) as dropped:
                await stream.next()
    assert dropped.value.message == "more than 2 events waited: the stream is closed"


async def test_unauthenticated_forbidden_and_bad_event_ids(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    missing = await client.get("/orgs/c/events")
    assert (missing.status_code, missing.json()["code"]) == (401, "UNAUTHENTICATED")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    forbidden = await client.get(f"/orgs/{other_org.org_id}/events", headers=org.headers)
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "FORBIDDEN")
    bad = await client.get("/orgs/c/events", headers={**org.headers, "Last-Event-ID": "x1"})
    assert bad.status_code == 400
    assert bad.json()["errors"] == [{"path": "Last-Event-ID", "message": "must be an event id"}]
    bad = await client.get("/orgs/c/events?last_event_id=-1", headers=org.headers)
    assert bad.json()["errors"] == [{"path": "last_event_id", "message": "must be an event id"}]


async def test_the_stream_limit_is_a_503_problem(settings: Settings) -> None:
    application = create_app(settings.model_copy(update={"events_max_streams": 1}))
    async with application.router.lifespan_context(application):
        async with application.state.db.write() as tx:
            _, key_id, key = await create_organisation(tx, name="Acme")
        org = Org("c", key_id, key)
        async with Events(application, org):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                refused = await client.get("/orgs/c/events", headers=org.headers)
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["code"] == "TOO_MANY_STREAMS"


async def test_a_revision_inserted_by_any_writer_reaches_the_stream(
    app: Starlette, client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store
) -> None:
    """A revision written by plain SQL, not by the app, still reaches the live stream: on
    PostgreSQL the notification is sent by the table's trigger (migration 0005), on SQLite the
    poll reads it."""
    created = await make_assistant(org, name="Bot")
    before = await stored_events(db, org.org_id)
    changes = [{"path": "name", "from": "Bot", "to": "Elsewhere"}]
    async with Events(app, org) as stream:
        async with db.write() as tx:
            await tx.execute(
                REVISIONS.insert().values(
                    org_id=org.org_id,
                    assistant_id=created["id"],
                    version=2,
                    changed_at=datetime.now(UTC),
                    change_type="updated",
                    actor_key_id=None,
                    source="cli",
                    changes=changes,
                    snapshot={**before[0].snapshot, "name": "Elsewhere", "version": 2},
                )
            )
        received = await stream.next()
    rows = await stored_events(db, org.org_id)
    assert len(rows) == 2
    assert received == SseEvent(str(rows[1].seq), "updated", document(rows[1]))
    assert received.data["changes"] == changes
