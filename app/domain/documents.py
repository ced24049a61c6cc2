"""The documented JSON shapes (snake_case), built once per row for REST, snapshots and events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from app.domain.shape import CONFIG, compile_builder, dict_group, document_leaf
from app.models import Action, Assistant, Integration


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, microseconds kept so that ordering survives a round trip.
    orjson writes it about three times faster than `isoformat`, but leaves out a fraction of
    zero, which is always written here."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    text = orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:-1].decode()
    return text if moment.microsecond else text[:-1] + ".000000Z"


def avatar_url(base_url: str, avatar_id: str | None) -> str | None:
    return f"{base_url}/avatars/{avatar_id}" if avatar_id else None


config_document: Callable[[Assistant], dict[str, Any]] = compile_builder(
    CONFIG, "config_document", document_leaf, dict_group, {}
)
"""The `config` object of an assistant (REST, snapshots, events), compiled from the declaration
(app/domain/shape.py) into one dict display: `{"language": a.language, …, "stt": {…}, …}`."""


def integration_document(i: Integration) -> dict[str, Any]:
    return {
        "id": i.id,
        "enabled": i.enabled,
        "integration_id": i.integration_id,
        "assistant_id": i.assistant_id,
        "connection_id": i.connection_id,
        "config": i.config,
        "error": i.error,
        "created_at": rfc3339(i.created_at),
        "updated_at": rfc3339(i.updated_at),
    }


def action_document(a: Action) -> dict[str, Any]:
    return {
        "id": a.id,
        "enabled": a.enabled,
        "name": a.name,
        "instructions": a.instructions,
        "action_id": a.action_id,
        "assistant_id": a.assistant_id,
        "connection_id": a.connection_id,
        "config": {
            "input": a.config.get("input", {}),
            "definitions": a.config.get("definitions", []),
        },
        "position": a.position,
        "created_at": rfc3339(a.created_at),
        "updated_at": rfc3339(a.updated_at),
    }


def assistant_document(
    a: Assistant,
    *,
    base_url: str,
    integrations: list[Integration],
    actions: list[Action],
) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "enabled": a.enabled,
        "deleted": a.deleted,
        "version": a.version,
        "secret_key": a.secret_key,
        "avatar_id": a.avatar_id,
        "avatar_url": avatar_url(base_url, a.avatar_id),
        "ref": a.ref,
        "config": config_document(a),
        "integrations": [integration_document(i) for i in integrations],
        "actions": [action_document(x) for x in actions],
        "created_at": rfc3339(a.created_at),
        "updated_at": rfc3339(a.updated_at),
    }
