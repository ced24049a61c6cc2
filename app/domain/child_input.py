"""Input models of an assistant's children: integrations and actions.

Create models carry the defaults; patch models default every field to an unset sentinel that
`exclude_unset` drops, so absent, null and a value stay three things. `config` is replaced as
a whole, and serialized (compact JSON, UTF-8) it may hold at most MAX_JSON_BYTES: an
integration's `config`, an action's `config`, `config.input` and `config.definitions` each
(docs/storage.md). Keys fixed at creation (`integration_id`, `action_id`) and the server's keys
(`id`, `error`, `position`, …) are refused by name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.domain.errors import (
    BadRequest,
    FieldError,
    invalid_input,
    validation_failed,
)
from app.domain.fields import (
    NO_CONTROL,
    NO_NUL,
    UNSET,
    Identifier,
    Input,
    NotNull,
    Slug,
    limits,
)
from app.domain.json_input import TOO_DEEP, too_deep

MAX_JSON_BYTES = 64 * 1024  # one config, definitions or input, serialized
MAX_POSITION = 1_000_000_000
MAX_REORDER = 25
FIXED_KEYS = frozenset({"integration_id", "action_id"})

_ACTION_KIND = re.compile(r"[A-Z0-9_]+(?::[A-Z0-9_]+)*")


def _no_nul_anywhere(value: Any) -> Any:
    """No key or string at any depth of a JSON value holds U+0000."""
    if isinstance(value, str) and "\x00" in value:
        raise PydanticCustomError("nul_character", "may not contain U+0000")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _no_nul_anywhere(key)
            _no_nul_anywhere(item)
    elif isinstance(value, list):
        for item in value:
            _no_nul_anywhere(item)
    return value


def _json_object(value: Any) -> Any:
    """A JSON object of at most MAX_JSON_DEPTH levels (measured before anything recurses)."""
    if not isinstance(value, dict):
        raise PydanticCustomError("json_object", "must be a JSON object")
    if too_deep(value):
        raise PydanticCustomError("json_depth", TOO_DEEP)
    return value


def json_bytes(value: Any) -> int:
    """The length of `value` as compact JSON in UTF-8 (as it is stored)."""
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # an integer beyond 64 bits (a GraphQL literal): stdlib's
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _check_size(size: int) -> None:
    if size > MAX_JSON_BYTES:
        raise PydanticCustomError(
            "json_size",
            "holds {size} bytes as compact JSON; at most {limit} bytes (64 KiB) are allowed",
            {"size": size, "limit": MAX_JSON_BYTES},
        )


def _at_most_64k(value: Any) -> Any:
    _check_size(json_bytes(value))
    return value


def _definitions_at_most_64k(value: list[BaseModel]) -> list[BaseModel]:
    _check_size(json_bytes([item.model_dump() for item in value]))
    return value


def _action_kind(value: str) -> str:
    if not _ACTION_KIND.fullmatch(value):
        raise PydanticCustomError(
            "action_id", "must be upper-case words joined by ':' such as 'TOOLS:HTTP_REQUEST'"
        )
    return value


JsonObject = Annotated[
    dict[str, Any],
    BeforeValidator(_json_object),
    AfterValidator(_at_most_64k),
    AfterValidator(_no_nul_anywhere),
]
ConnectionId = Annotated[str, limits(1, 200), NO_NUL]
ActionKind = Annotated[str, limits(1, 128), NO_NUL, AfterValidator(_action_kind)]
ActionName = Annotated[str, limits(1, 64, strip=True), NO_NUL, NO_CONTROL]
ActionInstructions = Annotated[str, limits(0, 2048), NO_NUL]


class IntegrationCreate(Input):
    """Body of `POST …/integrations` and of `CreateIntegrationInput`."""

    integration_id: Annotated[Slug, NotNull]
    enabled: Annotated[bool, NotNull] = True
    connection_id: ConnectionId | None = None
    config: Annotated[JsonObject, NotNull] = Field(default_factory=dict)


class IntegrationPatch(Input):
    """Body of `PATCH …/integrations/{id}` and of `UpdateIntegrationInput`."""

    enabled: Annotated[bool, NotNull] = UNSET
    connection_id: ConnectionId | None = UNSET
    config: Annotated[JsonObject, NotNull] = UNSET


class ActionDefinitionInput(Input):
    path: Annotated[str, limits(1, 1024), NO_NUL, NotNull]
    definition: Annotated[JsonObject, NotNull]


class ActionConfigInput(Input):
    """An action's whole configuration: absent keys take their defaults, never old values."""

    input: Annotated[JsonObject, NotNull] = Field(default_factory=dict)
    definitions: Annotated[
        list[ActionDefinitionInput],
        NotNull,
        Field(max_length=100),
        AfterValidator(_definitions_at_most_64k),
    ] = Field(default_factory=list)

    @model_validator(mode="after")
    def _whole_at_most_64k(self) -> ActionConfigInput:
        _check_size(json_bytes(self.model_dump()))
        return self


class ActionCreate(Input):
    """Body of `POST …/actions` and of `CreateActionInput`."""

    action_id: Annotated[ActionKind, NotNull]
    enabled: Annotated[bool, NotNull] = True
    name: Annotated[ActionName, NotNull]
    instructions: Annotated[ActionInstructions, NotNull] = ""
    connection_id: ConnectionId | None = None
    config: Annotated[ActionConfigInput, NotNull] = Field(default_factory=ActionConfigInput)


class ActionPatch(Input):
    """Body of `PATCH …/actions/{id}` and of `UpdateActionInput`."""

    enabled: Annotated[bool, NotNull] = UNSET
    name: Annotated[ActionName, NotNull] = UNSET
    instructions: Annotated[ActionInstructions, NotNull] = UNSET
    connection_id: ConnectionId | None = UNSET
    config: Annotated[ActionConfigInput, NotNull] = UNSET


class ActionPosition(Input):
    id: Annotated[Identifier, NotNull]
    position: Annotated[int, NotNull, Field(ge=0, le=MAX_POSITION)]


class ActionReorder(Input):
    """Body of `PATCH …/actions/reorder` and the `positions` of `reorderActions`."""

    positions: Annotated[list[ActionPosition], NotNull, Field(min_length=1, max_length=MAX_REORDER)]

    def duplicate_ids(self) -> list[FieldError]:
        """Each repeated id, named by its path (`positions.N.id`)."""
        seen: set[str] = set()
        errors = []
        for index, pair in enumerate(self.positions):
            if pair.id in seen:
                errors.append(FieldError(("positions", index, "id"), "appears more than once"))
            seen.add(pair.id)
        return errors


M = TypeVar("M", bound=BaseModel)


def _fixed_key_message(model: type[BaseModel], error: FieldError) -> FieldError:
    """A key fixed at creation sent to a model that does not take it (an update)."""
    key = error.path[0] if len(error.path) == 1 else None
    if key in FIXED_KEYS and key not in model.model_fields:
        return FieldError(error.path, f"'{key}' is fixed at creation")
    return error


def parse_body(model: type[M], body: object) -> M:
    """The body validated as a whole: every offending field is reported by its path."""
    if not isinstance(body, Mapping):
        raise BadRequest("the body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        failed = validation_failed(exc)
        fields = [_fixed_key_message(model, f) for f in failed.fields]
        raise invalid_input(fields, failed.more) from None
