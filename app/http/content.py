"""The one reading of a request's `Content-Type`: its media type, lower-cased, without
parameters (`application/json; charset=utf-8` is `application/json`); "" when there is none."""

from __future__ import annotations

from starlette.datastructures import Headers


def media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()
