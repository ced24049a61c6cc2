"""The Redis storage of the rate limits (`RATE_LIMIT_STORAGE=redis://…`): one limit for every
process and machine, with the process's memory while Redis cannot be reached. Imported only
when that storage is configured (app/http/ratelimit.py `Buckets`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from limits import RateLimitItem, WindowStats
from limits.aio import strategies as shared_strategies
from limits.aio.storage import RedisStorage
from limits.errors import StorageError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from app.http.ratelimit import Verdict, window_verdict

logger = logging.getLogger("app.ratelimit")

REDIS_TIMEOUT_SECONDS = 0.5  # connecting to Redis, and each of its answers
REDIS_RETRY_SECONDS = 3.0  # while Redis is unreachable, how often it is asked again
REDIS_KEY_PREFIX = "assistants"


class SharedStorage:
    """One Redis for the limits of every process and machine (`RATE_LIMIT_STORAGE=redis://…`).

    `up` is False while Redis cannot be reached: the limits then count in the process's memory,
    and one task (never a request) asks Redis again every REDIS_RETRY_SECONDS."""

    errors = (StorageError, RedisError, OSError, TimeoutError)  # Redis failed: count in memory

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.redis = RedisStorage(
            f"async+{uri}",
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix=REDIS_KEY_PREFIX,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            # one retry, on a lost connection only (a restarted Redis); a timeout is not retried
            # mypy ignore below: redis-py's asyncio Retry is typed for its sync backoff
            retry=Retry(NoBackoff(), 1, (RedisConnectionError,)),  # type: ignore[arg-type]
        )
        self.sliding = shared_strategies.SlidingWindowCounterRateLimiter(self.redis)
        self.up = True
        self._probe: asyncio.Task[None] | None = None

    def lost(self, error: Exception) -> None:
        """Redis failed a request: count in memory until it answers again (said once)."""
        if not self.up:
            return
        self.up = False
        logger.error(
            "rate limits: Redis at %s is unreachable (%s); counting in this process's memory "
            "meanwhile",
            self.where,
            error,
        )
        self._probe = asyncio.get_running_loop().create_task(self._wait_for_redis())

    async def _wait_for_redis(self) -> None:
        while True:
            await asyncio.sleep(REDIS_RETRY_SECONDS)
            try:
                if await self.redis.check():
                    break
            except Exception:  # noqa: BLE001, S112  (still down: asked again later)
                continue
        self.up = True
        logger.warning("rate limits: Redis at %s answers again; limits are shared", self.where)

    async def _scripts(self, calls: list[tuple[Any, list[str], tuple[Any, ...]]]) -> list[Any]:
        """limits' own Lua scripts (script, keys, arguments), sent in one pipeline: one round
        trip where its strategies make one per script. A Redis that restarted has forgotten
        the scripts: they are loaded again, once."""
        bridge: Any = self.redis.bridge
        for attempt in (1, 2):
            pipeline = bridge.get_connection().pipeline(transaction=False)
            for script, keys, arguments in calls:
                pipeline.evalsha(script.sha, len(keys), *keys, *arguments)
            try:
                answers: list[Any] = await pipeline.execute()
                return answers
            except NoScriptError:
                if attempt == 2:
                    raise
                for script in {script.sha: script for script, _, _ in calls}.values():
                    await bridge.get_connection().script_load(script.script)
        raise AssertionError("unreachable")

    async def moving_hits(self, item: RateLimitItem, buckets: Sequence[str]) -> list[Verdict]:
        """A hit in each bucket's moving window and the window after it (what limits'
        MovingWindowRateLimiter.hit and get_window_stats do), in one round trip."""
        bridge: Any = self.redis.bridge
        acquire, window = bridge.lua_acquire_moving_window, bridge.lua_moving_window
        expiry, amount = item.get_expiry(), item.amount
        now = time.time()
        calls = []
        for bucket in buckets:
            keys = [bridge.prefixed_key(item.key_for(bucket))]
            calls += [
                (acquire, keys, (now, amount, expiry, 1)),
                (window, keys, (now - expiry, amount)),
            ]
        answers = await self._scripts(calls)
        verdicts = []
        for acquired, (start, count) in zip(
            answers[::2], (a or (now, 0) for a in answers[1::2]), strict=True
        ):
            stats = WindowStats(float(start) + expiry, amount - int(count))
            verdicts.append(window_verdict(bool(acquired), stats))
        return verdicts

    async def sliding_spend(
        self, item: RateLimitItem, bucket: str, cost: int
    ) -> tuple[bool, tuple[int, float, int, float]]:
        """`cost` spent in one bucket's sliding window counter, and its counts after it (what
        limits' SlidingWindowCounterRateLimiter.hit and the storage's get_sliding_window do),
        in one round trip."""
        bridge: Any = self.redis.bridge
        key = item.key_for(bucket)
        keys = [
            bridge.prefixed_key(self.redis._previous_window_key(key)),  # noqa: SLF001
            bridge.prefixed_key(self.redis._current_window_key(key)),  # noqa: SLF001
        ]
        expiry = item.get_expiry()
        acquired, counts = await self._scripts(
            [
                (bridge.lua_acquire_sliding_window, keys, (item.amount, expiry, cost)),
                (bridge.lua_sliding_window, keys, (expiry,)),
            ]
        )
        previous, previous_ttl, current, current_ttl = counts or (0, 0, 0, 0)
        return bool(acquired), (
            int(previous or 0),
            max(0, float(previous_ttl or 0)) / 1000,
            int(current or 0),
            max(0, float(current_ttl or 0)) / 1000,
        )

    @property
    def where(self) -> str:
        """host:port/db of the URI, without a password."""
        return self.uri.split("://", 1)[-1].rpartition("@")[2]

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        # mypy ignore below: limits' bridge keeps the redis client untyped
        await self.redis.bridge.storage.aclose()  # type: ignore[attr-defined]
