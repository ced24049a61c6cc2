"""What a refused request looks like under RATE_LIMIT=5/minute (the limit tests use)."""

from __future__ import annotations

from typing import Any


def assert_limited(response: Any) -> None:
    assert response.status_code == 429
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert response.headers["ratelimit-limit"] == "5"
    assert response.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(response.headers["ratelimit-reset"]) <= 60
