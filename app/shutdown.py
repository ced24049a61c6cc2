"""Graceful shutdown: what SIGTERM starts in each server process.

uvicorn, told to exit, stops accepting connections at once and then waits (up to its
`timeout_graceful_shutdown`) for the responses in flight; an event stream never ends by itself,
and a load balancer still probing `/readyz` would only see refused connections. So the handler
uvicorn installs for SIGTERM is wrapped (`Shutdown.install`, from the app's lifespan):

1. at once: `/readyz` answers 503 (`draining`), new event streams are refused, open SSE streams
   end with a `retry:` hint and open graphql-transport-ws sockets close with 1001 (going away);
2. the process keeps accepting and serving for at least SHUTDOWN_DRAIN_SECONDS (so that a load
   balancer's health checks see the 503 and send nothing new before it stops accepting), and
   then while requests are in flight (uvicorn's own count of request tasks), in all at most
   SHUTDOWN_GRACE_SECONDS;
3. then uvicorn's handler runs: it stops accepting and waits for what is left, for the rest of
   the grace period (its `timeout_graceful_shutdown`), and the lifespan closes the store.

SIGINT (Ctrl-C) skips the drain: streams and sockets close, and uvicorn stops at once. A second
SIGTERM while draining changes nothing. Nothing here runs per request: `/readyz` reads one flag,
and only the websocket route is wrapped (OpenSockets) (to know its open sockets).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.errors import DomainError
from app.events import Broker
from app.graphql.errors import http_status

logger = logging.getLogger("app.shutdown")

GOING_AWAY = 1001  # RFC 6455: the server is going down
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
SHUTTING_DOWN = "the server is shutting down"
POLL_SECONDS = 0.05


class OpenSockets:
    """The websocket route's ASGI app (`app`), knowing its open sockets: to close them with
    1001 when the process shuts down; a socket opened afterwards is refused. A domain error
    that escapes an accepted socket (the database unavailable while `connection_init` checks
    the key) closes it with 1013 (try again later) for a 503, else 1011, instead of an HTTP
    answer a websocket can no longer carry."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._open: dict[object, Callable[[], Awaitable[None]]] = {}
        self.closing = False

    def __len__(self) -> int:
        return len(self._open)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.closing:  # before the handshake: refused (HTTP 403)
            await send({"type": "websocket.close", "code": GOING_AWAY})
            return
        closed = accepted = False

        async def guarded(message: Message) -> None:
            nonlocal accepted
            if not closed:  # once closed here, the app's last messages go nowhere
                accepted = accepted or message["type"] == "websocket.accept"
                await send(message)

        async def close(code: int = GOING_AWAY, reason: str = SHUTTING_DOWN) -> None:
            nonlocal closed
            if not closed:
                closed = True
                await send({"type": "websocket.close", "code": code, "reason": reason})

        token = object()
        self._open[token] = close
        try:
            await self.app(scope, receive, guarded)
        except DomainError as exc:
            if not accepted:
                raise  # answered over HTTP by the app's handlers
            await close(TRY_AGAIN_LATER if http_status(exc) == 503 else INTERNAL_ERROR, exc.code)
        finally:
            self._open.pop(token, None)

    async def close_all(self) -> None:
        self.closing = True
        for close in list(self._open.values()):
            try:
                await close()
            except Exception as exc:  # noqa: BLE001  (a socket already gone)
                logger.debug("closing a websocket failed: %s", exc)


class Shutdown:
    """One process's shutdown: the readiness flag, and the drain SIGTERM starts."""

    def __init__(
        self,
        broker: Broker,
        sockets: OpenSockets,
        grace_seconds: float,
        drain_seconds: float = 0.0,
    ) -> None:
        self.broker = broker
        self.sockets = sockets
        self.grace_seconds = grace_seconds
        self.drain_seconds = min(drain_seconds, grace_seconds)
        self.draining = False
        self.on_drain: list[Callable[[], None]] = []  # called once, at the signal
        self._task: asyncio.Task[None] | None = None

    def install(self) -> Callable[[], None]:
        """Wraps uvicorn's SIGTERM and SIGINT handlers (only handlers installed by uvicorn);
        returns what puts them back."""
        loop = asyncio.get_running_loop()
        restore: list[tuple[int, Any]] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if not callable(previous) or "uvicorn" not in getattr(previous, "__module__", ""):
                continue

            def handler(number: int, frame: FrameType | None, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self.begin, previous, number, frame)

            signal.signal(signum, handler)
            restore.append((signum, previous))

        def undo() -> None:
            for signum, previous in restore:
                signal.signal(signum, previous)

        return undo

    def begin(self, exit_server: Any, number: int, frame: FrameType | None) -> None:
        """On the loop, at the signal: refuse and end the streams, then drain (SIGTERM) or let
        uvicorn stop at once (SIGINT, or a second SIGINT to force it)."""
        first = not self.draining
        self.draining = True
        if first:
            self.broker.shutting_down()
            for stop in self.on_drain:
                stop()
            logger.info("shutting down: not ready, streams closed, draining requests in flight")
        if number == signal.SIGTERM:
            if first:
                self._task = asyncio.create_task(self._drain(exit_server, number, frame))
            return
        self._task = asyncio.create_task(self.sockets.close_all())
        exit_server(number, frame)

    async def _drain(self, exit_server: Any, number: int, frame: FrameType | None) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        deadline = began + self.grace_seconds
        await self.sockets.close_all()
        # still accepting: the balancer's checks see /readyz 503 and stop sending new requests
        await asyncio.sleep(max(began + self.drain_seconds - loop.time(), 0.0))
        server = getattr(exit_server, "__self__", None)  # uvicorn's Server
        tasks: set[Any] = getattr(getattr(server, "server_state", None), "tasks", set())
        while tasks and loop.time() < deadline:  # noqa: ASYNC110  (uvicorn's set: no event)
            await asyncio.sleep(POLL_SECONDS)
        config = getattr(server, "config", None)
        if config is not None:  # what is left of the grace period, for uvicorn's own wait
            config.timeout_graceful_shutdown = max(deadline - loop.time(), POLL_SECONDS)
        logger.info("shutting down: %d request(s) still in flight", len(tasks))
        exit_server(number, frame)
