"""The errors only HTTP has: a body of another media type, and a caller over its rate limit
(its requests, its GraphQL points, its streams). Plain classes like the domain's; each transport
maps them in its table (app/rest/errors.py, app/graphql/errors.py)."""

from __future__ import annotations

from typing import Any

from app.errors import DomainError


class UnsupportedMediaType(DomainError):
    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(DomainError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def details(self) -> dict[str, Any]:
        """`retry_after` (seconds) also in the body: GraphQL `extensions.retryAfter`, which sets
        the `Retry-After` of the HTTP answer when a resolver refused."""
        return {"retry_after": self.retry_after}
