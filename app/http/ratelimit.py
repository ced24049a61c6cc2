"""Rate limits per API key (and per client address for requests without a proven key), with the
`limits` library: a moving window in this process's memory; and the GraphQL points budget.

- A request with `Authorization: Bearer …` counts against its key (identified by the key's
  SHA-256, never the key). Until that key has once authenticated in this process, the request
  also counts against its client address, so inventing new keys buys no extra requests.
- A request without a key counts against its client address.
- Every limited response carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
  (seconds) and `RateLimit-Policy`; a refusal is 429 `RATE_LIMITED` with `Retry-After`.
- Exempt: `/healthz`, `/readyz`, `/metrics` (the scraper's) and `GET /avatars/…` (public images).

With `memory://` counters live in each process: with N workers a caller gets up to N times
the limit; with Redis, one limit for all.

GraphQL requests also spend points (`GRAPHQL_POINTS` per minute, see app/graphql/cost.py),
counted in the same storage against the same buckets, with limits' sliding window counter: a
request spends many points at once, and the counter costs the same whatever it spends (the
moving window keeps one entry per point).

Where they count (`RATE_LIMIT_STORAGE`): `memory://`, this process's memory (the default, and
the fast path: nothing waits); or `redis://HOST:PORT/DB`, one Redis for every process and
machine (limits' asyncio Redis storage and its scripts, pipelined: one round trip for the
request limit, one for the points of a proven key). While Redis cannot be
reached, requests are served and counted in this process's memory: the log says so once, a
background task asks Redis again every few seconds (a request never waits for it), and says
once more when the shared limits are back.

`CREATE_ASSISTANT_LIMIT` (`CreationQuota`) counts assistant creations per organisation in the
same storage; the use case (app/domain/assistants.py) spends one once the body is valid.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from limits import RateLimitItem, RateLimitItemPerMinute, WindowStats, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import bearer_token, hash_key
from app.http.errors import RateLimited
from app.http.middleware import Refusals, client_address, request_state
from app.settings import Settings

if TYPE_CHECKING:
    from app.http.ratelimit_redis import SharedStorage

logger = logging.getLogger("app.ratelimit")

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PUBLIC_AVATAR = re.compile(r"^/avatars/[^/]+$")
PROVEN_KEYS_KEPT = 100_000
# the process is shared (app/http/fairshare.py) until this long after a request of a caller
# other than the one before it
CROWD_SECONDS = 2.0


class QuietMemoryStorage(MemoryStorage):
    """limits' in-memory storage, with its clean-up of expired entries run by the requests
    themselves, at most once a second. limits runs it on a `threading.Timer` of 10 ms, started
    again by the first request after the last one ended: under load, a new thread every 10 ms,
    which cost more than the rest of the limiter. Expired entries never decide a verdict (the
    moving window reads timestamps); the clean-up only frees their memory."""

    CLEANUP_SECONDS = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.next_cleanup = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802  (limits' private hook)
        now = time.monotonic()
        if now >= self.next_cleanup:
            self.next_cleanup = now + self.CLEANUP_SECONDS
            # mypy ignore below: limits' private clean-up (pinned)
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    remaining: int
    reset_after: int  # seconds until the window frees a request


def window_verdict(allowed: bool, stats: WindowStats) -> Verdict:
    return Verdict(allowed, stats.remaining, max(1, math.ceil(stats.reset_time - time.time())))


def is_exempt(scope: Scope) -> bool:
    path = scope["path"]
    if path in EXEMPT_PATHS:
        return True
    return scope["method"] in ("GET", "HEAD") and PUBLIC_AVATAR.match(path) is not None


class Buckets:
    """What every limit of the process counts in: one storage (memory, or Redis with the memory
    while Redis is unreachable), and the API keys (their hashes) that have authenticated in this
    process, which stop counting against their address."""

    def __init__(self, storage_uri: str = "memory://") -> None:
        self.storage = QuietMemoryStorage()
        self.moving = MovingWindowRateLimiter(self.storage)
        self.shared: SharedStorage | None = None
        if not storage_uri.startswith("memory://"):
            # only for a Redis storage: `redis` imports OpenTelemetry when it is installed, and
            # the default (memory) imports neither
            from app.http.ratelimit_redis import SharedStorage  # noqa: PLC0415

            self.shared = SharedStorage(storage_uri)
        # the caller of the last request, and until when the process counts as shared
        self.last_caller = ""
        self.crowded_until = 0.0
        # the keys proven here, each with its organisation (the tenant of its requests)
        self.proven: OrderedDict[str, str] = OrderedDict()

    @classmethod
    def of_settings(cls, settings: Settings) -> Buckets:
        return cls(settings.rate_limit_storage)

    def of(self, scope: Scope, key: str | None) -> tuple[str, ...]:
        """The buckets a request counts against: its key, and its client address unless the
        key has proven itself here (always the address without a key)."""
        if key is not None and key in self.proven:
            return (f"key:{key}",)
        address = f"address:{client_address(scope)}"
        return (address,) if key is None else (f"key:{key}", address)

    def of_request(self, scope: Scope) -> tuple[str, ...]:
        """The buckets the rate limiter chose for this request (worked out again without it)."""
        chosen: tuple[str, ...] | None = request_state(scope).get("rate_buckets")
        if chosen is not None:
            return chosen
        token = bearer_token(Headers(scope=scope).get("authorization"))
        return self.of(scope, hash_key(token) if token is not None else None)

    def tenant(self, scope: Scope) -> str:
        """Whose share a request is of (app/http/fairshare.py): the organisation of its key
        once the key has authenticated in this process, else its first bucket (the key, or
        the client address without a key)."""
        first = self.of_request(scope)[0]
        if first.startswith("key:") and (org_id := self.proven.get(first[4:])) is not None:
            return f"org:{org_id}"
        return first

    def saw(self, bucket: str) -> None:
        """Notes the caller of a request (its first bucket): another than the last one's
        makes the process shared for CROWD_SECONDS."""
        if bucket != self.last_caller:
            if self.last_caller:
                self.crowded_until = time.monotonic() + CROWD_SECONDS
            self.last_caller = bucket

    def crowded(self) -> bool:
        """Whether more than one caller used the process lately (the fair shares apply)."""
        return time.monotonic() < self.crowded_until

    def remember(self, key: str, org_id: str) -> None:
        self.proven[key] = org_id
        self.proven.move_to_end(key)
        if len(self.proven) > PROVEN_KEYS_KEPT:
            self.proven.popitem(last=False)

    def hit_here(self, item: RateLimitItem, bucket: str) -> Verdict:
        """One hit in this process's memory (moving window)."""
        allowed = self.moving.hit(item, bucket)
        return window_verdict(allowed, self.moving.get_window_stats(item, bucket))

    async def hit_all(self, item: RateLimitItem, buckets: Sequence[str]) -> Verdict:
        """Hits every bucket (in Redis when it answers); the tightest one decides."""
        shared = self.shared
        if shared is not None and shared.up:
            try:
                return tightest(await shared.moving_hits(item, buckets))
            except shared.errors as exc:
                shared.lost(exc)
        return tightest([self.hit_here(item, bucket) for bucket in buckets])

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()


def tightest(verdicts: Sequence[Verdict]) -> Verdict:
    return min(verdicts, key=lambda v: (v.allowed, v.remaining))


class RateLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, limit: str, refusals: Refusals, buckets: Buckets | None = None
    ) -> None:
        self.app = app
        self.item: RateLimitItem = parse(limit)
        self.buckets = buckets or Buckets()
        self.refusals = refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_exempt(scope):
            await self.app(scope, receive, send)
            return
        token = bearer_token(Headers(scope=scope).get("authorization"))
        key = hash_key(token) if token is not None else None
        buckets = self.buckets.of(scope, key)
        request_state(scope)["rate_buckets"] = buckets  # the GraphQL points count there too
        self.buckets.saw(buckets[0])
        if self.buckets.shared is None:
            verdict = self.check(buckets)
        else:
            verdict = await self.buckets.hit_all(self.item, buckets)
        headers = self.headers(verdict)
        if not verdict.allowed:
            refusal = RateLimited(
                f"too many requests: at most {self.item.amount} per "
                f"{self.item.get_expiry()} seconds; retry in {verdict.reset_after} seconds",
                retry_after=verdict.reset_after,
            )
            response = self.refusals.response(scope, refusal)
            response.headers.update(headers)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
        if key is not None and (principal := request_state(scope).get("principal")) is not None:
            self.buckets.remember(key, principal.org_id)

    def check(self, buckets: Sequence[str]) -> Verdict:
        """Hits every bucket in memory; the tightest one decides."""
        if len(buckets) == 1:
            return self.buckets.hit_here(self.item, buckets[0])
        return tightest([self.buckets.hit_here(self.item, bucket) for bucket in buckets])

    def headers(self, verdict: Verdict) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.item.amount),
            "RateLimit-Remaining": str(verdict.remaining),
            "RateLimit-Reset": str(verdict.reset_after),
            "RateLimit-Policy": f"{self.item.amount};w={self.item.get_expiry()}",
        }


class PointsBudget:
    """`points` per minute for each bucket, spent a request at a time (sliding window counter:
    the previous minute's count, weighted by how much of it the window still covers, plus the
    current minute's)."""

    def __init__(self, buckets: Buckets, points: int) -> None:
        self.buckets = buckets
        self.item = RateLimitItemPerMinute(points, namespace="POINTS")
        self.limiter = SlidingWindowCounterRateLimiter(buckets.storage)

    @property
    def points(self) -> int:
        return self.item.amount

    async def spend(self, buckets: Sequence[str], points: int) -> Verdict:
        """Spends `points` in every bucket, or in none when one of them has not enough left; the
        tightest bucket decides (`reset_after`: seconds until a refused request would fit)."""
        shared = self.buckets.shared
        if shared is not None and shared.up:
            try:
                return await self._spend_shared(shared, buckets, points)
            except shared.errors as exc:
                shared.lost(exc)
        return self.spend_here(buckets, points)

    def spend_here(self, buckets: Sequence[str], points: int) -> Verdict:
        item, limiter = self.item, self.limiter
        fits = len(buckets) == 1 or all(limiter.test(item, b, cost=points) for b in buckets)
        allowed = fits and all([limiter.hit(item, bucket, cost=points) for bucket in buckets])
        storage, window = self.buckets.storage, item.get_expiry()
        verdicts = [
            self._verdict(storage.get_sliding_window(item.key_for(b), window), points, allowed)
            for b in buckets
        ]
        return min(verdicts, key=lambda v: v.remaining)

    async def _spend_shared(
        self, shared: SharedStorage, buckets: Sequence[str], points: int
    ) -> Verdict:
        if len(buckets) == 1:  # a proven key: one round trip
            allowed, counts = await shared.sliding_spend(self.item, buckets[0], points)
            return self._verdict(counts, points, allowed)
        item, limiter = self.item, shared.sliding  # in every bucket, or in none
        fits = all([await limiter.test(item, b, cost=points) for b in buckets])
        allowed = fits and all([await limiter.hit(item, b, cost=points) for b in buckets])
        window = item.get_expiry()
        verdicts = [
            self._verdict(
                await shared.redis.get_sliding_window(item.key_for(b), window), points, allowed
            )
            for b in buckets
        ]
        return min(verdicts, key=lambda v: v.remaining)

    def _verdict(
        self, counts: tuple[int, float, int, float], points: int, allowed: bool
    ) -> Verdict:
        item = self.item
        window = item.get_expiry()
        previous, previous_ttl, current, current_ttl = counts
        spent = previous * previous_ttl / window + current
        remaining = max(0, item.amount - math.floor(spent))
        if allowed:
            return Verdict(True, remaining, 0)
        room = item.amount - points  # what the weighted count must fall to
        if room < 0:
            wait: float = window  # never fits: a request of more points than the budget
        elif current <= room:  # the previous minute's share falls linearly to 0
            wait = previous_ttl - (room - current) * window / previous if previous else 1
        else:  # the current minute must become the previous one and fall
            wait = (current_ttl - window) + window - room * window / current
        return Verdict(False, remaining, max(1, math.ceil(wait)))


class CreationQuota:
    """CREATE_ASSISTANT_LIMIT: assistant creations per organisation, counted in the buckets'
    storage (shared through Redis like the other limits)."""

    def __init__(self, buckets: Buckets, limit: str) -> None:
        self.buckets = buckets
        self.item = parse(limit)

    async def spend(self, org_id: str) -> None:
        verdict = await self.buckets.hit_all(self.item, (f"creations:{org_id}",))
        if not verdict.allowed:
            raise RateLimited(
                f"too many assistants created: at most {self.item.amount} per "
                f"{self.item.get_expiry()} seconds in an organisation; retry in "
                f"{verdict.reset_after} seconds",
                retry_after=verdict.reset_after,
            )
