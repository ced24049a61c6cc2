"""Rate limits per API key (and per client address for requests without a proven key), with the
`limits` library: a moving window in this process's memory.

- A request with `Authorization: Bearer …` counts against its key (identified by the key's
  SHA-256, never the key). Until that key has once authenticated in this process, the request
  also counts against its client address, so inventing new keys buys no extra requests.
- A request without a key counts against its client address.
- Every limited response carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
  (seconds) and `RateLimit-Policy`; a refusal is 429 `RATE_LIMITED` with `Retry-After`.
- Exempt: `/healthz`, `/readyz` and `GET /avatars/…` (public images).

Counters live in each process: with N workers a caller gets up to N times the limit.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import bearer_token, hash_key
from app.domain.errors import RateLimited
from app.middleware import error_response, request_state

EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
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


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limit: str) -> None:
        self.app = app
        self.item: RateLimitItem = parse(limit)
        self.limiter = MovingWindowRateLimiter(QuietMemoryStorage())
        self.proven: OrderedDict[str, None] = OrderedDict()  # key hashes that authenticated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_exempt(scope):
            await self.app(scope, receive, send)
            return
        token = bearer_token(Headers(scope=scope).get("authorization"))
        key = hash_key(token) if token is not None else None
        verdict = self.check(scope, key)
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
            self.remember(key)

    def check(self, scope: Scope, key: str | None) -> Verdict:
        """Hits every bucket the request counts against; the tightest one decides."""
        buckets = []
        if key is not None:
            buckets.append(f"key:{key}")
        if key is None or key not in self.proven:
            client = scope.get("client")
            buckets.append(f"address:{client[0] if client else 'unknown'}")
        verdicts = [self.hit(bucket) for bucket in buckets]
        return min(verdicts, key=lambda v: (v.allowed, v.remaining))

    def hit(self, bucket: str) -> Verdict:
        allowed = self.limiter.hit(self.item, bucket)
        stats = self.limiter.get_window_stats(self.item, bucket)
        reset_after = max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, stats.remaining, reset_after)

    def remember(self, key: str) -> None:
        self.proven[key] = None
        self.proven.move_to_end(key)
        if len(self.proven) > PROVEN_KEYS_KEPT:
            self.proven.popitem(last=False)

    def headers(self, verdict: Verdict) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.item.amount),
            "RateLimit-Remaining": str(verdict.remaining),
            "RateLimit-Reset": str(verdict.reset_after),
            "RateLimit-Policy": f"{self.item.amount};w={self.item.get_expiry()}",
        }
