"""The one reading of a request's `Content-Type`: its media type, lower-cased, without
parameters (`application/json; charset=utf-8` is `application/json`); "" when there is none.
And the headers every REST JSON answer carries (`no_store`)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import Response

JSON = "application/json"
# what a PATCH body may be sent as (RFC 7396 merge patch is what a PATCH here means)
PATCH_TYPES = (JSON, "application/merge-patch+json")


def media_type(headers: Headers) -> str:
    value = headers.get("content-type", "")
    if value == JSON:  # what nearly every request sends: nothing to split (the hot path)
        return value
    return value.split(";")[0].strip().lower()


# REST JSON answers: `Cache-Control: no-store` (an API answer is per caller and per moment: no
# shared or browser cache keeps it) and `X-Content-Type-Options: nosniff`; the raw header
# pairs are made once, and appended to each answer as they are
NO_STORE_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
)


def no_store(response: Response) -> Response:
    response.raw_headers.extend(NO_STORE_HEADERS)
    return response
