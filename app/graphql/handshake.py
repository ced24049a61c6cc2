"""The websocket's handshake bounds, held before any key is read (docs/websocket-and-streams.md).

A connection to `/graphql` is *pending* from its upgrade request until its `connection_init`
has been answered (acknowledged, or refused with 4403): at most
GRAPHQL_WS_MAX_PENDING_PER_ADDRESS of them per client address (the one the middleware computes,
behind trusted proxies) per process at once. One more is refused before the upgrade: HTTP 429
`RATE_LIMITED` with `Retry-After` (ASGI's websocket denial response, which uvicorn supports;
a server without it answers 403). A pending connection that has not sent `connection_init`
within GRAPHQL_WS_INIT_TIMEOUT seconds is closed with 4408 (Strawberry's timeout of
graphql-transport-ws), and its place is free at once.
"""

from __future__ import annotations

import math

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.http.errors import RateLimited
from app.http.middleware import client_address, request_state

STATE = "pending_socket"
POLICY_VIOLATION = 1008  # the close before the upgrade, when denial responses are unsupported


class Pending:
    """One pending connection's place in its address's count; `release` is idempotent."""

    __slots__ = ("_address", "_counts")

    def __init__(self, counts: PendingSockets, address: str) -> None:
        self._counts: PendingSockets | None = counts
        self._address = address

    def release(self) -> None:
        counts, self._counts = self._counts, None
        if counts is not None:
            counts.forget(self._address)


class PendingSockets:
    """The pending connections of this process, counted per client address."""

    def __init__(self, per_address: int, init_timeout: float) -> None:
        self.per_address = per_address
        self.init_timeout = init_timeout
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return sum(self._counts.values())

    def admit(self, scope: Scope) -> Pending | None:
        """A place for this upgrade request (kept in its scope's state), or None when its
        address holds its share already."""
        address = client_address(scope)
        held = self._counts.get(address, 0)
        if held >= self.per_address:
            return None
        self._counts[address] = held + 1
        pending = Pending(self, address)
        request_state(scope)[STATE] = pending
        return pending

    def forget(self, address: str) -> None:
        held = self._counts.pop(address, 0)
        if held > 1:
            self._counts[address] = held - 1

    def refusal(self) -> RateLimited:
        retry_after = max(1, math.ceil(self.init_timeout))
        return RateLimited(
            f"too many websocket connections from this address wait for their connection_init: "
            f"at most {self.per_address}; retry in {retry_after} seconds",
            retry_after=retry_after,
        )


def release_pending(scope: Scope) -> None:
    """The connection of `scope` is no longer pending (its `connection_init` was answered, or
    it timed out)."""
    pending: Pending | None = request_state(scope).get(STATE)
    if pending is not None:
        pending.release()


async def refuse_upgrade(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
    """`response` (the 429) before the upgrade, as ASGI's denial response; on a server without
    that extension, a close before accepting (which the server answers with 403)."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await response(scope, receive, send)
    else:
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
