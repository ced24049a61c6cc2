"""How deep free-form JSON may nest (a request body is parsed in app/http/json_body.py).

Free-form JSON values (integration `config`, action `config.input` and definitions, the GraphQL
`JSON` scalar) nest at most MAX_JSON_DEPTH levels, counted from the value
itself (`{}` is one level, `{"a": []}` two): `too_deep` measures it without recursion, before
anything else walks the value (validators, the JSON encoder, the log)."""

from __future__ import annotations

from typing import Any

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
