"""The query parameters that find assistants: `search`, `enabled`, `language`, `model`, `ref`,
`updated_since` and `sort` (docs/finding-assistants.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.datastructures import QueryParams

from app.domain.assistant_find import DEFAULT_ORDER, SORTS, AssistantFilter, Order, check_filter
from app.domain.errors import FieldError, ValidationFailed

QUERY = ("search", "enabled", "language", "model", "ref", "updated_since", "sort")
PARAMETERS = frozenset(QUERY)
SORT_VALUES = tuple(f"{sign}{field}" for field in SORTS for sign in ("", "-"))
BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def asks_to_find(query: QueryParams) -> bool:
    """Whether the request sets any of the parameters (else the list is today's)."""
    return any(name in query for name in PARAMETERS)


def _order(raw: str | None, errors: list[FieldError]) -> Order:
    if raw is None:
        return DEFAULT_ORDER
    if raw not in SORT_VALUES:
        errors.append(FieldError(("sort",), f"must be one of {', '.join(SORT_VALUES)}"))
        return DEFAULT_ORDER
    return Order(raw.removeprefix("-"), raw.startswith("-"))


def _enabled(raw: str | None, errors: list[FieldError]) -> bool | None:
    if raw is None:
        return None
    value = BOOLEANS.get(raw.lower())
    if value is None:
        errors.append(FieldError(("enabled",), "must be true or false"))
    return value


def _instant(raw: str | None, errors: list[FieldError]) -> datetime | None:
    """An RFC 3339 instant (without an offset: UTC); a `+` sent unencoded reads as a space."""
    if raw is None:
        return None
    text = raw[:11] + raw[11:].replace(" ", "+")
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        errors.append(
            FieldError(("updated_since",), "must be an RFC 3339 instant, e.g. 2026-01-31T12:00:00Z")
        )
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def find_params(query: QueryParams) -> tuple[AssistantFilter, Order]:
    """The filter and the sort the query asks for; 400 naming every offending parameter."""
    errors: list[FieldError] = []
    order = _order(query.get("sort"), errors)
    found = AssistantFilter(
        search=query.get("search"),
        enabled=_enabled(query.get("enabled"), errors),
        language=query.get("language"),
        model=query.get("model"),
        ref=query.get("ref"),
        updated_since=_instant(query.get("updated_since"), errors),
    )
    try:
        check_filter(found)
    except ValidationFailed as exc:
        errors += exc.fields
    if errors:
        names = ", ".join(str(e.path[0]) for e in errors)
        raise ValidationFailed(f"invalid query parameters: {names}", errors)
    return found, order
