"""A request body as JSON, strictly: what orjson accepts (UTF-8, no NaN, 64-bit integers, at most
1,024 levels), and no object with the same key twice (which value would win is up to each
parser, so a body that says two things is refused rather than guessed)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from app.domain.errors import BadRequest


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
