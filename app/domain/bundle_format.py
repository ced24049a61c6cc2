"""The bundle document (docs/bundles.md): its model, its limits, `${env:NAME}`, and one
assistant as a bundle entry.

An entry holds what a team keeps in a repository: `ref`, name, enabled, config, integrations
and actions; never an id of this server (the avatar included) and never the secret key. Its
fields are validated by the very field types of the patch and child models
(app/domain/assistant_input.py, app/domain/child_input.py): one set of rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from app.domain.assistant_input import ConfigPatch
from app.domain.child_input import ActionCreate, IntegrationCreate
from app.domain.documents import config_document
from app.domain.errors import (
    BadRequest,
    FieldError,
    Path,
    ValidationFailed,
    invalid_input,
    validation_failed,
)
from app.domain.fields import Input, Name, NotNull, Ref
from app.domain.shape import CONFIG, REQUIRED, leaves_of

KIND = "assistants-api/bundle"
VERSION = 1
MAX_BUNDLE_BYTES = 5 * 1024 * 1024
MAX_BUNDLE_ASSISTANTS = 1000
MAX_CHILDREN = 100  # integrations, and actions, of one assistant (as their use cases cap them)
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_ANY = "${env:"


class BundleAssistant(Input):
    """One entry: the whole assistant as it should be (absent config keys take their
    defaults, as on create)."""

    ref: Annotated[Ref, NotNull, Field(json_schema_extra={"pattern": "^[a-z0-9][a-z0-9._-]*$"})]
    name: Annotated[Name, NotNull]
    enabled: Annotated[bool, NotNull] = True
    config: Annotated[ConfigPatch, NotNull] = Field(default_factory=ConfigPatch)
    integrations: Annotated[list[IntegrationCreate], NotNull, Field(max_length=MAX_CHILDREN)] = (
        Field(default_factory=list)
    )
    actions: Annotated[list[ActionCreate], NotNull, Field(max_length=MAX_CHILDREN)] = Field(
        default_factory=list
    )


class Bundle(Input):
    """`{"kind": "assistants-api/bundle", "version": 1, "assistants": [...]}`."""

    kind: Literal["assistants-api/bundle"]
    version: Literal[1]
    assistants: Annotated[list[BundleAssistant], NotNull, Field(max_length=MAX_BUNDLE_ASSISTANTS)]


def bundle_json_schema() -> dict[str, Any]:
    """The JSON Schema of the format (docs/bundle.schema.json is this, written by `make schema`)."""
    schema = Bundle.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://assistants-api.dev/schemas/bundle.json",
        **schema,
        "title": "assistants-api bundle",
    }


def _ref_of(raw: object, index: int) -> str:
    if isinstance(raw, Mapping) and isinstance(raw.get("ref"), str):
        return str(raw["ref"])
    return f"#{index}"


def _named(path: Path, message: str, entries: list[Any]) -> FieldError:
    """A field error whose message names the entry (by index and ref) it is in."""
    if len(path) >= 2 and path[0] == "assistants" and isinstance(path[1], int):
        index = path[1]
        ref = _ref_of(entries[index], index) if index < len(entries) else f"#{index}"
        return FieldError(path, f"entry {index} (ref '{ref}'): {message}")
    return FieldError(path, message)


def substitute_env(value: Any, env: Mapping[str, str] | None, path: Path = ()) -> Any:
    """Every `${env:NAME}` in a string value replaced by that variable (`env`: the command
    line's environment), or refused when `env` is None (over HTTP). Keys are left alone."""
    if isinstance(value, str):
        if _ENV_ANY not in value:
            return value
        if env is None:
            raise _invalid(path, "${env:…} is substituted on the command line only")

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise _invalid(path, f"the environment variable '{name}' is not set")
            return env[name]

        return _ENV.sub(one, value)
    if isinstance(value, dict):
        return {key: substitute_env(item, env, (*path, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute_env(item, env, (*path, i)) for i, item in enumerate(value)]
    return value


def _invalid(path: Path, message: str) -> ValidationFailed:
    return invalid_input([FieldError(path, message)])


def parse_bundle(document: object, env: Mapping[str, str] | None = None) -> Bundle:
    """The bundle validated as a whole: every offending field named with its entry; refs
    unique in the bundle. `env` as in `substitute_env`."""
    if not isinstance(document, Mapping):
        raise BadRequest("a bundle is a JSON object")
    raw_entries = document.get("assistants")
    entries = raw_entries if isinstance(raw_entries, list) else []
    try:
        document = substitute_env(document, env)
    except ValidationFailed as exc:
        raise invalid_input([_named(f.path, f.message, entries) for f in exc.fields]) from None
    try:
        bundle = Bundle.model_validate(document)
    except ValidationError as exc:
        failed = validation_failed(exc)
        fields = [_named(f.path, f.message, entries) for f in failed.fields]
        raise invalid_input(fields, failed.more) from None
    seen: dict[str, int] = {}
    duplicates = []
    for index, entry in enumerate(bundle.assistants):
        if entry.ref in seen:
            message = f"the ref is also entry {seen[entry.ref]}'s: refs are unique in a bundle"
            duplicates.append(_named(("assistants", index, "ref"), message, entries))
        seen.setdefault(entry.ref, index)
    if duplicates:
        raise invalid_input(duplicates)
    return bundle


def config_defaults(default_model: str) -> dict[str, Any]:
    """The whole `config` of a new assistant (the server's default model)."""
    config: dict[str, Any] = {}
    for path, leaf in leaves_of(CONFIG):
        node = config
        for key in path[1:-1]:
            node = node.setdefault(key, {})
        default = default_model if leaf.default is REQUIRED else leaf.default
        node[path[-1]] = list(default) if isinstance(default, list) else default
    return config


def merged(base: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    """`sent` over `base`, objects merged key by key (rule 2 of the updates)."""
    out = dict(base)
    for key, value in sent.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def desired_assistant(entry: BundleAssistant, default_model: str) -> dict[str, Any]:
    """What the entry says the assistant is: a create body, and an update patch (every leaf)."""
    config = merged(config_defaults(default_model), entry.config.set_fields())
    return {"name": entry.name, "enabled": entry.enabled, "config": config}


def integration_entry(row: Any) -> dict[str, Any]:
    return {
        "integration_id": row.integration_id,
        "enabled": row.enabled,
        "connection_id": row.connection_id,
        "config": row.config,
    }


def action_entry(row: Any) -> dict[str, Any]:
    config = row.config or {}
    return {
        "action_id": row.action_id,
        "name": row.name,
        "enabled": row.enabled,
        "instructions": row.instructions,
        "connection_id": row.connection_id,
        "config": {
            "input": config.get("input", {}),
            "definitions": config.get("definitions", []),
        },
    }


def assistant_entry(assistant: Any, integrations: list[Any], actions: list[Any]) -> dict[str, Any]:
    """One assistant as a bundle entry (its id as `ref` when it has none); integrations by
    `integration_id` (stable), actions in their order."""
    ordered = sorted(integrations, key=lambda i: i.integration_id)
    return {
        "ref": assistant.ref or assistant.id,
        "name": assistant.name,
        "enabled": assistant.enabled,
        "config": config_document(assistant),
        "integrations": [integration_entry(i) for i in ordered],
        "actions": [action_entry(a) for a in actions],
    }


def bundle_document(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": KIND, "version": VERSION, "assistants": entries}
