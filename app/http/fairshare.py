"""Fair shares of the process's CPU between tenants (docs/protection.md#fair-shares-of-the-cpu).

One event loop runs every request of a process, and it gives each runnable task a turn in the
order they became ready. A tenant that keeps several expensive requests in flight (a GraphQL
answer of megabytes, a list of a hundred assistants with their children) therefore gets most of
the turns, and another tenant's cheap GET waits behind them. So expensive work takes turns in
a *lane*: at most FAIR_HEAVY_CONCURRENCY expensive requests run at once in the process, the
others wait in a queue of their tenant, and the queues are served in turn (round robin), so a
tenant with a hundred waiting gets the same turns as one with a single request. Cheap requests
never enter the lane: they only share the loop with the few expensive ones that run.

- The tenant of a request is its organisation once its API key has authenticated in this
  process (all the keys of one organisation are one tenant), else the key (its SHA-256), else
  its client address (requests without a key): `Buckets.tenant`.
- Expensive: a GraphQL operation of cost FAIR_HEAVY_COST or more (over HTTP or a websocket),
  a REST list.
- A tenant's queue holds at most FAIR_QUEUE_PER_TENANT requests; one more is 429 RATE_LIMITED
  with `Retry-After`, and nothing runs.
- The lane is shared only while the process is shared: while every request of the last
  CROWD_SECONDS came from one caller (`Buckets.crowded`), its expensive requests are not held
  back (on PostgreSQL one at a time would leave the loop idle while each waits for the
  database); from the first request of another, they take turns again.

The lane and the queues live in each process (with `--workers N`, N lanes): what they share is
one process's loop, which is what they protect. Entering the lane when it has room is an
integer check; nothing here is on the path of a cheap request.
"""

from __future__ import annotations

from asyncio import Future, get_running_loop
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from starlette.types import Scope

from app.http.errors import RateLimited
from app.settings import Settings

if TYPE_CHECKING:
    from app.http.ratelimit import Buckets

RETRY_AFTER_SECONDS = 1


class Turn:
    """`async with lane.turn(tenant):` the expensive work of one request."""

    __slots__ = ("lane", "tenant")

    def __init__(self, lane: Lane, tenant: str) -> None:
        self.lane = lane
        self.tenant = tenant

    async def __aenter__(self) -> None:
        await self.lane.enter(self.tenant)

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.lane.leave()


class Lane:
    """At most `slots` expensive requests at once; the waiting ones queued per tenant and let
    in one tenant at a time, in turn."""

    def __init__(
        self, slots: int, queue_per_tenant: int, crowded: Callable[[], bool] = lambda: True
    ) -> None:
        self.slots = max(1, slots)
        self.crowded = crowded  # False while one tenant alone uses the process: no limit then
        self.queue_per_tenant = max(0, queue_per_tenant)
        self.running = 0
        self.waiting: dict[str, deque[Future[None]]] = {}  # tenants in the order of their turn

    def turn(self, tenant: str) -> Turn:
        return Turn(self, tenant)

    async def enter(self, tenant: str) -> None:
        """Returns once the request may run (at once when the lane has room and nobody waits);
        RateLimited when its tenant's queue is full."""
        if not self.waiting and (self.running < self.slots or not self.crowded()):
            self.running += 1
            return
        queue = self.waiting.get(tenant)
        if len(queue or ()) >= self.queue_per_tenant:
            raise RateLimited(
                f"too many expensive requests of this caller are waiting in this process (at "
                f"most {self.queue_per_tenant}); retry in {RETRY_AFTER_SECONDS} seconds",
                retry_after=RETRY_AFTER_SECONDS,
            )
        if queue is None:
            queue = self.waiting[tenant] = deque()
        ticket: Future[None] = get_running_loop().create_future()
        queue.append(ticket)
        try:
            await ticket  # `running` was counted for it by `leave`
        except BaseException:
            if ticket.done() and not ticket.cancelled():
                self.leave()  # let in, then cancelled: its place goes to the next
            else:
                ticket.cancel()
                self._forget(tenant, ticket)
            raise

    def leave(self) -> None:
        """The end of an expensive request: the next tenant in turn gets its place."""
        self.running -= 1
        while self.waiting and (self.running < self.slots or not self.crowded()):
            tenant, queue = next(iter(self.waiting.items()))
            del self.waiting[tenant]  # served: to the back of the round
            ticket = queue.popleft()
            if queue:
                self.waiting[tenant] = queue
            if not ticket.done():
                self.running += 1
                ticket.set_result(None)

    def _forget(self, tenant: str, ticket: Future[None]) -> None:
        queue = self.waiting.get(tenant)
        if queue is not None and ticket in queue:
            queue.remove(ticket)
        if queue is not None and not queue:
            del self.waiting[tenant]


class FairShares:
    """The process's lane and how a request finds its tenant (the rate limiter's buckets)."""

    def __init__(self, buckets: Buckets, settings: Settings) -> None:
        self.buckets = buckets
        self.lane = Lane(
            settings.fair_heavy_concurrency, settings.fair_queue_per_tenant, buckets.crowded
        )
        self.heavy_cost = settings.fair_heavy_cost  # GraphQL operations of this cost or more

    def turn(self, scope: Scope) -> Turn:
        """The turn in the lane of an HTTP request's expensive work."""
        return self.lane.turn(self.buckets.tenant(scope))
