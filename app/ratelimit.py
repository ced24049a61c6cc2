"""Rate limits per API key (and per client address for requests without a proven key), with the
`limits` library: a moving window in this process's memory; and the GraphQL points budget.

- A request with `Authorization: Bearer …` counts against its key (identified by the key's
  SHA-256, never the key). Until that key has once authenticated in this process, the request
  also counts against its client address, so inventing new keys buys no extra requests.
- A request without a key counts against its client address.
- Every limited response carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
  (seconds) and `RateLimit-Policy`; a refusal is 429 `RATE_LIMITED` with `Retry-After`.
- Exempt: `/healthz`, `/readyz`, `/metrics` (the scraper's) and `GET /avatars/…` (public images).

Counters live in each process: with N workers a caller gets up to N times the limit.

GraphQL requests also spend points (`GRAPHQL_POINTS` per minute, see app/graphql/cost.py),
counted in the same storage against the same buckets, with limits' sliding window counter: a
request spends many points at once, and the counter costs the same whatever it spends (the
moving window keeps one entry per point).
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import bearer_token, hash_key
from app.domain.errors import RateLimited
from app.middleware import error_response, request_state

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PUBLIC_AVATAR = re.compile(r"^/avatars/[^/]+$")
PROVEN_KEYS_KEPT = 100_000


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
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    remaining: int
    reset_after: int  # seconds until the window frees a request


def is_exempt(scope: Scope) -> bool:
    path = scope["path"]
    if path in EXEMPT_PATHS:
        return True
    return scope["method"] in ("GET", "HEAD") and PUBLIC_AVATAR.match(path) is not None


class Buckets:
    """What every limit of the process counts in: one storage, and the API keys (their hashes)
    that have authenticated in this process, which stop counting against their address."""

    def __init__(self) -> None:
        self.storage = QuietMemoryStorage()
        self.proven: OrderedDict[str, None] = OrderedDict()

    def of(self, scope: Scope, key: str | None) -> tuple[str, ...]:
        """The buckets a request counts against: its key, and its client address unless the
        key has proven itself here (always the address without a key)."""
        if key is not None and key in self.proven:
            return (f"key:{key}",)
        client = scope.get("client")
        address = f"address:{client[0] if client else 'unknown'}"
        return (address,) if key is None else (f"key:{key}", address)

    def of_request(self, scope: Scope) -> tuple[str, ...]:
        """The buckets the rate limiter chose for this request (worked out again without it)."""
        chosen: tuple[str, ...] | None = request_state(scope).get("rate_buckets")
        if chosen is not None:
            return chosen
        token = bearer_token(Headers(scope=scope).get("authorization"))
        return self.of(scope, hash_key(token) if token is not None else None)

    def remember(self, key: str) -> None:
        self.proven[key] = None
        self.proven.move_to_end(key)
        if len(self.proven) > PROVEN_KEYS_KEPT:
            self.proven.popitem(last=False)


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limit: str, buckets: Buckets | None = None) -> None:
        self.app = app
        self.item: RateLimitItem = parse(limit)
        self.buckets = buckets or Buckets()
        self.limiter = MovingWindowRateLimiter(self.buckets.storage)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_exempt(scope):
            await self.app(scope, receive, send)
            return
        token = bearer_token(Headers(scope=scope).get("authorization"))
        key = hash_key(token) if token is not None else None
        buckets = self.buckets.of(scope, key)
        request_state(scope)["rate_buckets"] = buckets  # the GraphQL points count there too
        verdict = self.check(buckets)
        headers = self.headers(verdict)
        if not verdict.allowed:
            refusal = RateLimited(
                f"too many requests: at most {self.item.amount} per "
                f"{self.item.get_expiry()} seconds; retry in {verdict.reset_after} seconds",
                retry_after=verdict.reset_after,
            )
            response = error_response(scope, refusal)
            response.headers.update(headers)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
        if key is not None and request_state(scope).get("principal") is not None:
            self.buckets.remember(key)

    def check(self, buckets: Sequence[str]) -> Verdict:
        """Hits every bucket the request counts against; the tightest one decides."""
        verdicts = [self.hit(bucket) for bucket in buckets]
        return min(verdicts, key=lambda v: (v.allowed, v.remaining))

    def hit(self, bucket: str) -> Verdict:
        allowed = self.limiter.hit(self.item, bucket)
        stats = self.limiter.get_window_stats(self.item, bucket)
        reset_after = max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, stats.remaining, reset_after)

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

    def spend(self, buckets: Sequence[str], points: int) -> Verdict:
        """Spends `points` in every bucket, or in none when one of them has not enough left; the
        tightest bucket decides (`reset_after`: seconds until a refused request would fit)."""
        item, limiter = self.item, self.limiter
        fits = len(buckets) == 1 or all(limiter.test(item, b, cost=points) for b in buckets)
        allowed = fits and all([limiter.hit(item, bucket, cost=points) for bucket in buckets])
        verdicts = [self._verdict(bucket, points, allowed) for bucket in buckets]
        return min(verdicts, key=lambda v: v.remaining)

    def _verdict(self, bucket: str, points: int, allowed: bool) -> Verdict:
        item = self.item
        window = item.get_expiry()
        previous, previous_ttl, current, current_ttl = self.buckets.storage.get_sliding_window(
            item.key_for(bucket), window
        )
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
