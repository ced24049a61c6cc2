"""`assistantChanged`: live change events over graphql-transport-ws on `/graphql`.

The socket authenticates once, with `{"authorization": "Bearer <key>"}` in its
`connection_init` payload; a missing, unknown or revoked key closes it (4403). Before that,
the handshake's bounds hold (app/graphql/handshake.py: 4408 when `connection_init` is late, 429
before the upgrade beyond an address's pending share). Every `subscribe` message is a request
of the key's request limit (RATE_LIMIT, in the same buckets as HTTP), refused with an `error`
message RATE_LIMITED before anything else is looked at. Each
subscription is one stream of the process's broker (app/events/); with `afterEventId` it
first receives the changes it missed (app/events/resume.py, as SSE's `Last-Event-ID`). An
operation started over the socket spends its document's points once, when it starts, from its
key's budget (the same as over HTTP); above GRAPHQL_MAX_COST or beyond the budget it does not
start. Persisted and trusted documents follow the rules of HTTP (app/graphql/persisted.py): a
`subscribe` payload may name its document by `extensions.persistedQuery`, and with
GRAPHQL_TRUSTED_DOCUMENTS only the manifest's operations start (else an `error` message with
`TRUSTED_DOCUMENT_REQUIRED`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, cast

import strawberry
from graphql import GraphQLError, GraphQLFormattedError
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    SubscribeMessage,
)

from app.auth import bearer_token, hash_key
from app.domain.change_events import parse_event_id, watch_changes
from app.domain.errors import DomainError, Unauthenticated
from app.domain.revisions import DELETED, PUBLISHED, assistant_from_snapshot
from app.events import Broker, Resume
from app.graphql.answer_size import stopped
from app.graphql.args import OrgId
from app.graphql.context import Context, Info
from app.graphql.errors import ErrorCodes
from app.graphql.handshake import release_pending
from app.graphql.loaders import Loaders
from app.graphql.persisted import Miss
from app.graphql.points import Spending
from app.graphql.types import (
    Assistant,
    ChangeType,
    DuplicatedFrom,
    RevisionChange,
    duplicated_from,
    revision_changes,
)
from app.http.errors import RateLimited
from app.observability import metrics
from app.store.records import RevisionRecord as RevisionRow

REVOKED_CLOSE = 4403


@dataclass
class SocketContext(Context):
    """The context of one websocket: Strawberry fills `connection_params` from
    `connection_init`; it lives as long as the socket."""

    connection_params: dict[str, Any] | None = field(default=None)
    shared_loaders: ClassVar[bool] = False  # never a read transaction for the socket's lifetime


async def accept_connection(context: Context) -> None:
    """`on_ws_connect`: the key of the `connection_init` payload must open its organisation."""
    params = getattr(context, "connection_params", None) or {}
    header = next((value for key, value in params.items() if key.lower() == "authorization"), None)
    context.authorization = header if isinstance(header, str) else None
    try:
        async with context.db.read() as tx:
            await context.caller(tx)
    except Unauthenticated:
        raise ConnectionRejectionError from None


@strawberry.type(description="A change of an assistant, sent to subscribers once it is committed.")
class AssistantChangeEvent:
    id: strawberry.ID = strawberry.field(
        description="Id of the event: the revision's place in the history of every change "
        "(the `id` of the same event on `GET /orgs/{org_id}/events`)."
    )
    org_id: strawberry.ID = strawberry.field(description="The organisation of the assistant.")
    assistant_id: strawberry.ID = strawberry.field(description="The assistant that changed.")
    version: int = strawberry.field(description="The version the change produced.")
    change_type: ChangeType = strawberry.field(description="What kind of change it was.")
    changes: list[RevisionChange] = strawberry.field(description="The changed leaves.")
    assistant: Assistant | None = strawberry.field(
        description="The assistant as it was at this version (its secret key never shows; "
        "integrations and actions are the current ones); null for a DELETED change."
    )
    release: int | None = strawberry.field(
        default=None, description="For a PUBLISHED event: the release published or pinned."
    )
    environment: str | None = strawberry.field(
        default=None, description="For a PUBLISHED event: the environment pointed, or null."
    )
    duplicated_from: DuplicatedFrom | None = strawberry.field(
        default=None, description="For the CREATED event of a duplicate: its source."
    )

    @classmethod
    def from_row(cls, row: RevisionRow, base_url: str) -> AssistantChangeEvent:
        assistant = None
        if row.change_type != DELETED:
            was = assistant_from_snapshot(row.snapshot, row.org_id)
            assistant = Assistant.from_row(was, base_url)
        return cls(
            id=strawberry.ID(str(row.seq)),
            org_id=strawberry.ID(row.org_id),
            assistant_id=strawberry.ID(row.assistant_id),
            version=row.version,
            change_type=ChangeType(row.change_type),
            changes=revision_changes(row.changes),
            assistant=assistant,
            release=row.snapshot.get("release") if row.change_type == PUBLISHED else None,
            environment=row.snapshot.get("environment") if row.change_type == PUBLISHED else None,
            duplicated_from=duplicated_from(row.snapshot),
        )


async def close_socket(context: Context, reason: str) -> None:
    """Closes the websocket of a revoked key, then waits to be cancelled with the socket."""
    await context.request.close(code=REVOKED_CLOSE, reason=reason)
    await asyncio.Event().wait()


@strawberry.type
class AssistantSubscription:
    @strawberry.subscription(
        description="Every change of the organisation's assistants (or of one), in version "
        "order per assistant, from whichever process or server made it. A slow subscriber is "
        "dropped (SLOW_CONSUMER); a revoked or expired key closes the socket. Needs "
        "`assistants:read`; a key restricted to some assistants receives only theirs."
    )
    async def assistant_changed(
        self,
        info: Info,
        org_id: OrgId,
        assistant_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Only this assistant's changes; without it, every assistant's."
            ),
        ] = None,
        after_event_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Resume after this event (the `id` of the last one received): the "
                "changes committed since are sent first, then the live ones, without a gap or a "
                "duplicate (as `Last-Event-ID` on `GET /orgs/{org_id}/events`)."
            ),
        ] = None,
    ) -> AsyncGenerator[AssistantChangeEvent, None]:
        ctx = info.context
        after_seq = parse_event_id(after_event_id, "afterEventId")
        async with ctx.db.read() as tx:
            try:
                access = await ctx.access(tx, org_id)
            except Unauthenticated as exc:  # the socket's key expired since it connected
                await close_socket(ctx, exc.message)
                raise
            assistant_ids = await watch_changes(tx, access=access, assistant_id=assistant_id)
        assert access.key_id is not None
        broker: Broker = ctx.request.app.state.broker
        async with broker.stream(
            org_id=access.org_id,
            assistant_ids=assistant_ids,
            key_id=access.key_id,
            transport="websocket",
            from_now=after_seq is None,  # else it replays after afterEventId first
        ) as stream:
            resume = Resume(ctx.db, stream, after_seq)
            async for missed in resume.replay():
                ctx.loaders = Loaders(ctx.db, shared=False)
                yield AssistantChangeEvent.from_row(missed, ctx.settings.base_url)
            while True:
                try:
                    row = await stream.next()
                except Unauthenticated as exc:
                    await close_socket(ctx, exc.message)
                    raise
                assert row is not None
                if not resume.fresh(row):
                    continue
                # integrations and actions as they are now
                ctx.loaders = Loaders(ctx.db, shared=False)
                yield AssistantChangeEvent.from_row(row, ctx.settings.base_url)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's handler, with the error of the subscription limit coded like any other, and
    each operation's request, cost and points checked before it starts; the connection stops
    being pending (app/graphql/handshake.py) once its connection_init is answered."""

    async def handle_connection_init_timeout(self) -> None:
        try:
            await super().handle_connection_init_timeout()
        finally:
            if self.connection_timed_out:  # closed with 4408: its place is free at once
                release_pending(self.context.request.scope)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        finally:
            release_pending(self.context.request.scope)

    async def send_message(self, message: Any) -> None:
        """Strawberry's, except that an event stopped as too large (GRAPHQL_MAX_RESPONSE_BYTES,
        docs/graphql-bounds.md) ends its operation with an `error` message, without `data`."""
        if message["type"] == "next" and stopped(message["payload"]):
            operation = self.operations.get(message["id"])
            if operation is not None:
                operation.completed = True  # (no `complete` after the error)
                self.forget_id(message["id"])
            message = {
                "id": message["id"],
                "type": "error",
                "payload": message["payload"]["errors"],
            }
        await super().send_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged and message["id"] not in self.operations:
            error = await self.request() or await self.admit(message)
            if error is not None:
                refused: ErrorMessage = {
                    "id": message["id"],
                    "type": "error",
                    "payload": [cast(GraphQLFormattedError, error)],
                }
                await self.send_message(refused)
                return
        await super().handle_subscribe(message)

    async def admit(self, message: SubscribeMessage) -> dict[str, Any] | None:
        """The error that refuses a new operation (too many on the socket, its persisted
        document, its cost or points), or None."""
        limit = self.max_subscriptions_per_connection
        if limit is not None and len(self.operations) >= limit:
            return {
                "message": f"at most {limit} subscriptions per connection",
                "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"},
            }
        return await self.persisted(message) or await self.charge(message)

    async def request(self) -> dict[str, Any] | None:
        """One request of the key's request limit (the buckets of HTTP): the RATE_LIMITED error
        beyond it, or None."""
        view: Any = self.view  # the app's GraphQLView (its request limit and buckets)
        item = view.request_limit
        key = hash_key(bearer_token(self.context.authorization) or "")
        verdict = await view.points.buckets.hit_all(item, (f"key:{key}",))
        if verdict.allowed:
            return None
        if metrics.active is not None:
            metrics.active.rate_limited.inc()
        message = (
            f"too many requests: at most {item.amount} per {item.get_expiry()} seconds; "
            f"retry in {verdict.reset_after} seconds"
        )
        extensions = {"code": RateLimited.code, "retryAfter": verdict.reset_after}
        return {"message": message, "extensions": extensions}

    async def persisted(self, message: SubscribeMessage) -> dict[str, Any] | None:
        """Persisted and trusted documents as over HTTP: the payload's `query` becomes the
        document its hash names; the error that refuses it, or None."""
        view: Any = self.view  # the app's GraphQLView (its persisted and trusted documents)
        documents = view.documents
        payload: Any = message.get("payload")
        if not isinstance(payload, dict):
            return None
        extensions, query = payload.get("extensions"), payload.get("query")
        if (extensions is None and documents.trusted is None) or not isinstance(query, str | None):
            return None
        try:
            found = documents.resolve(query, extensions)
            if isinstance(found, Miss):
                found = await documents.complete(found, self.context.db, self.context.authenticated)
        except DomainError as exc:
            return {"message": exc.message, "extensions": {"code": exc.code}}
        if found is not None:
            payload["query"] = found[0]
        return None

    async def charge(self, message: SubscribeMessage) -> dict[str, Any] | None:
        """Spends the operation's points (1 when it will not run); the error that refuses it
        (above GRAPHQL_MAX_COST, or beyond the budget), or None. A document that does not
        parse or validate is left to Strawberry, which answers its errors."""
        view: Any = self.view  # the app's GraphQLView (its engine and its points budget)
        payload: Any = message.get("payload") or {}
        query, name, variables = (payload.get(k) for k in ("query", "operationName", "variables"))
        found = None
        if isinstance(query, str):
            name = name if isinstance(name, str) else None
            variables = variables if isinstance(variables, dict) else None
            found = view.engine.cost_of(query, name, variables)
        cost, operation = found if found is not None else (0, None)
        over = operation is not None and cost > view.engine.max_cost
        key = hash_key(bearer_token(self.context.authorization) or "")
        spending = Spending(view.points, (f"key:{key}",))
        try:
            await spending.charge(cost, runs=operation is not None and not over)
        except RateLimited as exc:
            extensions = {"code": exc.code, "retryAfter": exc.retry_after}
            return {"message": exc.message, "extensions": extensions}
        if over and operation is not None:
            refusal: dict[str, Any] = view.engine.cost_refusal(cost, operation.node)
            return refusal
        if (
            operation is not None
            and cost >= view.engine.heavy_cost
            and operation.node.operation.value != "subscription"
        ):
            self.expensive.add(message["id"])  # it runs in its tenant's turn (run_operation)
        return None

    @property
    def expensive(self) -> set[str]:
        """The ids of the operations admitted that run in their tenant's turn of the lane."""
        ids: set[str] | None = self.__dict__.get("_expensive")
        if ids is None:
            ids = self.__dict__["_expensive"] = set()
        return ids

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """A query or mutation of FAIR_HEAVY_COST or more runs in its tenant's turn of the
        process's lane, as over HTTP (app/http/fairshare.py): the organisation of the socket's
        key; an `error` message RATE_LIMITED when the tenant's queue is full."""
        if operation.id not in self.expensive:
            await super().run_operation(operation)
            return
        self.expensive.discard(operation.id)
        view: Any = self.view  # the app's GraphQLView (its fair shares)
        principal = self.context.principal
        tenant = f"org:{principal.org_id}" if principal is not None else "socket"
        try:
            async with view.fair.lane.turn(tenant):
                await super().run_operation(operation)
        except RateLimited as exc:
            self.operations.pop(operation.id, None)
            extensions = {"code": exc.code, "retryAfter": exc.retry_after}
            refused: ErrorMessage = {
                "id": operation.id,
                "type": "error",
                "payload": [
                    cast(GraphQLFormattedError, {"message": exc.message, "extensions": extensions})
                ],
            }
            await self.send_message(refused)


class StreamErrorCodes(ErrorCodes):
    """ErrorCodes, also for each result a websocket sends as it comes (a subscription's
    results are sent before its operation ends); each error is coded once."""

    def __init__(self) -> None:
        super().__init__()
        self._coded: set[int] = set()

    def on_stream_result(self, result: Any) -> Iterator[None]:
        for error in getattr(result, "errors", None) or []:
            self._annotate(error)
        yield

    def _annotate(self, error: GraphQLError) -> None:
        if id(error) not in self._coded:
            self._coded.add(id(error))
            super()._annotate(error)
