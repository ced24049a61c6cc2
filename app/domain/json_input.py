"""A request body as JSON, strictly: what orjson accepts (UTF-8, no NaN, 64-bit integers, at most
1,024 levels), and no object with the same key twice (which value would win is up to each
parser, so a body that says two things is refused rather than guessed).

Free-form JSON values (integration `config`, action `config.input` and definitions, the GraphQL
`JSON` scalar) nest at most MAX_JSON_DEPTH levels (CONTRACT section 6), counted from the value
itself (`{}` is one level, `{"a": []}` two): `too_deep` measures it without recursion, before
anything else walks the value (validators, the JSON encoder, the log)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from app.domain.errors import BadRequest

MAX_JSON_DEPTH = 32
TOO_DEEP = (
    f"nests more than {MAX_JSON_DEPTH} levels of objects and arrays; "
    f"at most {MAX_JSON_DEPTH} levels are allowed"
)


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether objects and arrays nest more than `limit` levels in `value` (iteratively: a
    value of any depth is measured without recursion; the walk stops at the first too deep)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class DuplicateKey(ValueError):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return result


def _holds_an_object(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and any(isinstance(v, dict | list) for v in value)


def parse_json_body(raw: bytes | str) -> Any:
    """The parsed body; BadRequest when it is not JSON or repeats a key within one object."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not _holds_an_object(value):
        return value
    try:
        # Parsed again only to see the keys orjson merged; orjson has already vouched for the
        # syntax, the encoding and the depth.
        json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except DuplicateKey as exc:
        key = str(exc)[:100].encode("unicode_escape").decode()
        raise BadRequest(f"the body is not valid JSON: the key '{key}' appears twice") from None
    except RecursionError:
        raise BadRequest("the body is not valid JSON: nested too deeply") from None
    return value
