"""Relay connections: `PageInfo` and opaque cursors (base64url of a kind and a position)."""

from __future__ import annotations

import base64
import binascii

import strawberry

from app.domain.errors import FieldError, ValidationFailed


@strawberry.type(description="Where a page of a connection stands.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether more items follow this page.")
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last item of this page (pass it as `after`), or null if empty."
    )


def encode_cursor(kind: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode("ascii")


def decode_cursor(kind: str, cursor: str, argument: str = "after") -> int:
    """The position a cursor of this kind names; BAD_USER_INPUT naming `argument` otherwise."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        text = ""
    prefix, _, position = text.partition(":")
    if prefix != kind or not position.isdigit() or len(position) > 18:
        raise ValidationFailed(
            f"'{argument}' is not a cursor of this connection",
            [FieldError((argument,), "not a cursor of this connection")],
        )
    return int(position)
