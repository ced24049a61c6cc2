"""`GET /orgs/{org_id}/events`: the organisation's change events as server-sent events.

Each revision is one event: `id: <seq>`, `event: <change_type>`, `data: <event JSON>`. A client
that reconnects with `Last-Event-ID` (or `?last_event_id=`) first receives the revisions it
missed, read from the table, then the live stream, without a gap or a duplicate (app/events/
resume.py, shared with the GraphQL subscription).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from app.domain.change_events import event_document, parse_event_id, watch_changes
from app.domain.errors import DomainError
from app.events import Broker, Resume, ShuttingDown, Stream
from app.rest.common import org_transaction, settings_of, store_of
from app.store import Store
from app.store.records import RevisionRecord

HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
CONNECTED = b": connected\n\n"
KEEPALIVE = b": keepalive\n\n"


def event_frame(revision: RevisionRecord) -> bytes:
    data = orjson.dumps(event_document(revision))
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        revision.seq or 0,
        revision.change_type.encode(),
        data,
    )


def error_frame(error: DomainError) -> bytes:
    """The last frame of a stream the server closes (no `id`: resuming starts after the last
    event received)."""
    data = orjson.dumps({"code": error.code, "detail": error.message})
    if isinstance(error, ShuttingDown):  # reconnect soon (elsewhere), resuming by Last-Event-ID
        return b"retry: %d\nevent: error\ndata: %s\n\n" % (error.retry_ms, data)
    return b"event: error\ndata: %s\n\n" % data


async def event_stream(
    store: Store, broker: Broker, stream: Stream, last_id: int | None, heartbeat: float
) -> AsyncIterator[bytes]:
    try:
        yield CONNECTED
        resume = Resume(store, stream, last_id)
        async for row in resume.replay():
            yield event_frame(row)
        while True:
            try:
                live = await stream.next(heartbeat)
            except DomainError as exc:
                yield error_frame(exc)
                return
            if live is None:
                yield KEEPALIVE
            elif resume.fresh(live):
                yield event_frame(live)
    finally:
        broker.release(stream)


async def events(request: Request) -> Response:
    last_id = parse_event_id(request.headers.get("last-event-id"), "Last-Event-ID")
    if last_id is None:
        last_id = parse_event_id(request.query_params.get("last_event_id"))
    async with org_transaction(request, write=False) as (tx, access):
        assistant_ids = await watch_changes(
            tx, access=access, assistant_id=request.query_params.get("assistant_id")
        )
    assert access.key_id is not None
    broker: Broker = request.app.state.broker
    stream = await broker.open(
        org_id=access.org_id,
        assistant_ids=assistant_ids,
        key_id=access.key_id,
        from_now=last_id is None,  # else it replays after Last-Event-ID first
    )
    heartbeat = settings_of(request).events_heartbeat_seconds
    body = event_stream(store_of(request), broker, stream, last_id, heartbeat)

    async def release() -> None:  # also when the body never started
        broker.release(stream)

    return StreamingResponse(
        body, media_type="text/event-stream", headers=HEADERS, background=BackgroundTask(release)
    )


routes = [Route("/orgs/{org_id}/events", events, methods=["GET"])]
