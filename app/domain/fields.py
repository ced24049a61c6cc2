"""Field types shared by every input model: the validation list of the update rules."""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints
from pydantic_core import PydanticCustomError

ThreadMode = Literal["new", "continue"]
KnowledgeScope = Literal["all", "assistant", "none"]

_BCP47 = re.compile(
    r"^[A-Za-z]{2,3}(-[A-Za-z]{3}){0,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?"
    r"(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(-[A-WY-Za-wy-z0-9](-[A-Za-z0-9]{2,8})+)*"
    r"(-[xX](-[A-Za-z0-9]{1,8})+)?$"
)


def _reject_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("null_not_allowed", "may not be null")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "may not contain U+0000")
    return value


def _no_control(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise PydanticCustomError("control_character", "may not contain control characters")
    return value


def _language(value: str) -> str:
    if value != "auto" and not _BCP47.match(value):
        raise PydanticCustomError(
            "language", "must be 'auto' or a BCP 47 language tag such as 'en' or 'pt-BR'"
        )
    return value


NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@cache
def _zones() -> frozenset[str]:
    """IANA zone names: the tz database's (tzdata), less the host's links that are no zone."""
    return frozenset(zoneinfo.available_timezones() - NOT_ZONES) | {"UTC"}


def _timezone(value: str) -> str:
    if value not in _zones():
        raise PydanticCustomError(
            "timezone", "must be an IANA time zone name such as 'Europe/Paris'"
        )
    return value


def _slug(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9]+(?:[_-][a-z0-9]+)*", value):
        raise PydanticCustomError("slug", "must be a lower-case slug such as 'whatsapp'")
    return value


_REF = re.compile(r"[a-z0-9][a-z0-9._-]*")


def _ref(value: str) -> str:
    if not _REF.fullmatch(value):
        raise PydanticCustomError(
            "ref",
            "must be 1-64 characters of a-z, 0-9, '.', '_' and '-', "
            "starting with a letter or a digit",
        )
    return value


NotNull = BeforeValidator(_reject_null)
UNSET: Any = None  # default of every patch field; never validated, dropped by exclude_unset
NO_NUL = AfterValidator(_no_nul)
NO_CONTROL = AfterValidator(_no_control)
Text = Annotated[str, NO_NUL]


def limits(min_length: int, max_length: int, *, strip: bool = False) -> StringConstraints:
    """The length limits of a text field (whitespace stripped first when `strip`)."""
    return StringConstraints(strip_whitespace=strip, min_length=min_length, max_length=max_length)


# Every text field: its limits, then no U+0000, then its own rule (the order errors are found in).
Name = Annotated[str, limits(1, 1024, strip=True), NO_NUL, NO_CONTROL]
ModelName = Annotated[str, limits(1, 200), NO_NUL]
Language = Annotated[str, limits(1, 64), NO_NUL, AfterValidator(_language)]
TimeZone = Annotated[str, limits(1, 64), NO_NUL, AfterValidator(_timezone)]
Instructions = Annotated[str, limits(0, 100_000), NO_NUL]
ShortMessage = Annotated[str, limits(0, 2000), NO_NUL]
SuggestedMessage = Annotated[str, limits(1, 500), NO_NUL]
Identifier = Annotated[str, limits(1, 64), NO_NUL]
Slug = Annotated[str, limits(1, 64), NO_NUL, AfterValidator(_slug)]
Ref = Annotated[str, limits(1, 64), NO_NUL, AfterValidator(_ref)]  # docs/bundles.md


class Input(BaseModel):
    """Base of every request body: unknown keys refused, no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)

    def set_fields(self) -> dict[str, Any]:
        """The keys the client sent, nested, as plain values (absent stays absent)."""
        return self.model_dump(exclude_unset=True)
