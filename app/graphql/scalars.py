"""The `DateTime` scalar: RFC 3339 in UTC with a `Z` (the `JSON` scalar is Strawberry's)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry

from app.domain.documents import rfc3339


def _parse_datetime(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


SCALAR_MAP: dict[object, Any] = {
    datetime: strawberry.scalar(
        name="DateTime",
        description="An instant, RFC 3339 in UTC with a `Z`, e.g. `2026-01-31T12:00:00.000000Z`.",
        serialize=rfc3339,
        parse_value=_parse_datetime,
    )
}
