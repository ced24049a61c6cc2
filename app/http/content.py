"""The one reading of a request's `Content-Type`: its media type, lower-cased, without
parameters (`application/json; charset=utf-8` is `application/json`); "" when there is none."""

from __future__ import annotations

from starlette.datastructures import Headers

JSON = "application/json"
# what a PATCH body may be sent as (RFC 7396 merge patch is what a PATCH here means)
PATCH_TYPES = (JSON, "application/merge-patch+json")


def media_type(headers: Headers) -> str:
    value = headers.get("content-type", "")
    if value == JSON:  # what nearly every request sends: nothing to split (the hot path)
        return value
    return value.split(";")[0].strip().lower()
