"""`Idempotency-Key` on REST `POST`/`PATCH`/`DELETE` and on GraphQL mutations over HTTP
(docs/idempotency.md).

A request without the header passes through untouched (one look at its headers). With it, the
transport opens the request's write transaction itself: the stored answer is looked up there
(and replayed with `Idempotent-Replayed: true`, nothing else running), or the request runs with
that transaction handed to the routes as their store (`JoinedStore`, found by `store_for`), its
answer is rendered, then stored in the same transaction, which commits before a byte of the
answer is sent. An answer that is not stored (5xx, 401, 408, 429, or a GraphQL answer with a
server-side or authentication error) rolls the transaction back, so its retry runs anew. A
REST error whose use case rolled back (a 4xx) is stored in a short transaction of its own:
there is no effect to store it with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import orjson
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import authenticate, bearer_token
from app.domain.errors import DomainError, Unauthenticated
from app.domain.idempotency import (
    REPLAYED_HEADER,
    STORED_HEADERS,
    IdempotencyKeyInUse,
    IdempotentRequest,
    StoredAnswer,
    checked_key,
    fingerprint,
    remove_expired,
    store_answer,
    stored_answer,
)
from app.domain.keys import hash_key
from app.http.middleware import GRAPHQL_PATH, Refusals, request_state
from app.models import utcnow
from app.store import Store, Tx
from app.store.joined import REQUEST_STORE, JoinedStore

logger = logging.getLogger("app.idempotency")

METHODS = frozenset({"POST", "PATCH", "DELETE"})
HEADER = b"idempotency-key"
NOT_STORED = frozenset({401, 408, 429})  # and every status from 500
# a GraphQL answer holding one of these errors is not stored either (it is no client's error)
GRAPHQL_NOT_STORED = frozenset(
    {"UNAUTHENTICATED", "RATE_LIMITED", "INTERNAL_SERVER_ERROR", "DATABASE_UNAVAILABLE"}
    | {"STORAGE_FULL"}
)
SWEEP_SECONDS = 60.0  # expired answers are removed at most this often per process
# the GraphQL view's reading of a body: the fingerprint's material when it holds a mutation
MutationMaterial = Callable[[bytes], bytes | None]


class Captured:
    """The answer of the routes, kept until the transaction has committed."""

    __slots__ = ("body", "headers", "status")

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def answer(self) -> StoredAnswer:
        kept = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in self.headers
            if name.lower().decode("latin-1") in STORED_HEADERS
        }
        return StoredAnswer(self.status, kept, bytes(self.body))

    async def replay(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": bytes(self.body)})


class Run:
    """One request's way through the layer: its captured answer, or the stored one replayed."""

    __slots__ = ("answer", "captured", "replay", "store_apart")

    def __init__(self, captured: Captured) -> None:
        self.captured = captured
        self.answer = StoredAnswer(500, {}, b"")
        self.replay: StoredAnswer | None = None
        self.store_apart = False  # stored in a transaction of its own (nothing to store it with)


class Rollback(Exception):
    """Ends the request's transaction without committing it."""


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return bytes(value)
    return None


def _authorization(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    return None if value is None else value.decode("latin-1")


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The body, already read, handed to the routes once; then the client's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def replayed_response(answer: StoredAnswer) -> Response:
    headers = {
        **answer.headers,
        REPLAYED_HEADER: "true",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(answer.body, answer.status, headers)


def storable(answer: StoredAnswer, graphql: bool) -> bool:
    if answer.status >= 500 or answer.status in NOT_STORED:
        return False
    if not graphql or b'"errors"' not in answer.body:
        return True
    errors = orjson.loads(answer.body).get("errors") or []
    return not any((e.get("extensions") or {}).get("code") in GRAPHQL_NOT_STORED for e in errors)


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        refusals: Refusals,
        graphql_mutation: MutationMaterial,
        ttl: timedelta,
    ) -> None:
        self.app = app
        self.refusals = refusals
        self.graphql_mutation = graphql_mutation
        self.ttl = ttl
        # (API key, key) of the requests this process runs (409 before waiting for a lock)
        self.in_flight: set[tuple[str, str]] = set()
        self.swept = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS:
            await self.app(scope, receive, send)
            return
        raw = _header(scope, HEADER)
        if raw is None:
            await self.app(scope, receive, send)
            return
        try:
            await self.keyed(scope, receive, send, raw)
        except ClientDisconnect:
            return  # gone while its body was read: nothing ran, nobody to answer
        except DomainError as error:
            await self.refusals.response(scope, error)(scope, receive, send)

    async def keyed(self, scope: Scope, receive: Receive, send: Send, raw: bytes) -> None:
        body = await _read_body(receive)
        receive = _replaying(body, receive)
        graphql = scope["path"] == GRAPHQL_PATH
        if graphql:
            material = self.graphql_mutation(body)
            if material is None:  # no mutation: the header means nothing here
                await self.app(scope, receive, send)
                return
            parts: tuple[bytes, ...] = (material,)
        else:
            parts = (scope["method"].encode(), scope["path"].encode(), scope["query_string"], body)
        key = checked_key(raw.decode("latin-1"))
        token = bearer_token(_authorization(scope))
        if token is None:  # 401 from the routes; nothing to store it for
            await self.app(scope, receive, send)
            return
        request = IdempotentRequest(hash_key(token), key, fingerprint(*parts))
        running = (request.key_hash, request.key)
        if running in self.in_flight:
            raise IdempotencyKeyInUse("a request with this Idempotency-Key is still running")
        self.in_flight.add(running)
        try:
            await self.once(scope, receive, send, request, graphql)
        finally:
            self.in_flight.discard(running)

    async def once(
        self, scope: Scope, receive: Receive, send: Send, request: IdempotentRequest, graphql: bool
    ) -> None:
        """Replays the stored answer, or runs the request and stores its answer."""
        store: Store = scope["app"].state.db
        run = Run(Captured())
        try:
            async with store.write() as tx:
                now = utcnow()
                run.replay = await stored_answer(tx, request, now)
                if run.replay is not None:
                    access = await authenticate(tx, _authorization(scope))
                    request_state(scope)["principal"] = access
                    raise Rollback
                await self.run_in(tx, scope, receive, run, graphql)
                if not await store_answer(tx, request, run.answer, now, self.ttl):
                    raise IdempotencyKeyInUse("another request stored this key's answer first")
                await self.sweep(tx, now)
        except Rollback:
            pass
        except Unauthenticated:  # a stored answer, but the key no longer opens anything
            await self.app(scope, receive, send)  # the routes answer 401
            return
        if run.replay is not None:
            await replayed_response(run.replay)(scope, receive, send)
            return
        if run.store_apart:
            await self.store_apart(store, request, run.answer)
        await run.captured.replay(send)

    async def run_in(self, tx: Tx, scope: Scope, receive: Receive, run: Run, graphql: bool) -> None:
        """The routes, on `tx` (Rollback when their answer is not to be stored with it)."""
        joined = JoinedStore(scope["app"].state.db, tx, savepoints=graphql)
        scope[REQUEST_STORE] = joined
        try:
            await self.app(scope, receive, run.captured.send)
        finally:
            del scope[REQUEST_STORE]
        run.answer = run.captured.answer()
        if not storable(run.answer, graphql):
            raise Rollback
        if joined.failed:  # a REST error: the use case's writes are undone with the rest
            run.store_apart = True
            raise Rollback

    async def store_apart(
        self, store: Store, request: IdempotentRequest, answer: StoredAnswer
    ) -> None:
        """Stores an answer whose request changed nothing (its transaction rolled back)."""
        try:
            async with store.write() as tx:
                await store_answer(tx, request, answer, utcnow(), self.ttl)
        except DomainError as error:  # not stored: a retry runs again, and changes nothing
            logger.warning("the answer of an Idempotency-Key was not stored: %s", error.code)

    async def sweep(self, tx: Tx, now: datetime) -> None:
        """Removes expired answers, at most once per SWEEP_SECONDS in this process."""
        clock = time.monotonic()
        if clock - self.swept >= SWEEP_SECONDS:
            self.swept = clock
            await remove_expired(tx, now)
