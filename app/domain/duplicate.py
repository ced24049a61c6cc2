"""Duplicate an assistant (docs/duplicate.md): a create whose content is copied from another
assistant's draft, or from one of its releases.

The copy is a new assistant (new ids, a new secret key, version 1) with the source's name
(by default "<name> (copy)"), enabled flag, avatar and config, and its integrations and actions
in their order unless excluded. It goes through the create path (`insert_assistant`): one
transaction holds the row, its children, its bytes charged to ORG_STORAGE_QUOTA, and its
`created` revision naming `duplicated_from`, which is also its event on the streams and its
`assistant.created` webhook deliveries.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any

import orjson
from pydantic import Field, TypeAdapter, ValidationError
from sqlalchemy import bindparam, select

from app.domain.access import Access, Scope, requires
from app.domain.assistants import (
    CreationQuota,
    check_creator,
    find_assistant,
    insert_assistant,
    new_secret_key,
)
from app.domain.audit import record_audit
from app.domain.child_input import parse_body
from app.domain.children_of_many import children_by_assistant
from app.domain.errors import FieldError, NotFound, invalid_input
from app.domain.fields import Input, Name, NotNull
from app.domain.releases import MAX_RELEASE, RELEASES, frozen_assistant
from app.domain.revisions import Writer, snapshot_columns
from app.domain.storage import action_bytes, integration_bytes
from app.models import Action, Assistant, Integration, new_id, utcnow
from app.store import Statement, Tx
from app.store.records import AssistantRecord
from app.store.statements import insert_statement

COPY_SUFFIX = " (copy)"
# Columns a copy never takes from its source. `ref` (configuration as code) is unique in an
# organisation: a duplicate starts without one, null (the column's default).
NOT_COPIED = frozenset({"ref"})


class DuplicateBody(Input):
    """Body of `POST …/assistants/{id}/duplicate` and `DuplicateAssistantInput` (all optional)."""

    name: Name | None = Field(
        default=None, description='1-1024 characters; absent or null: "<name> (copy)".'
    )
    include_integrations: Annotated[bool, NotNull] = Field(
        default=True, description="Copy the integrations."
    )
    include_actions: Annotated[bool, NotNull] = Field(
        default=True, description="Copy the actions, in their order."
    )
    from_release: Annotated[int, Field(ge=1, le=MAX_RELEASE)] | None = Field(
        default=None,
        description="Copy this release of the source (its number) instead of the draft.",
    )


_NAME = TypeAdapter(Name)
# mypy ignore below: SQLModel's metaclass sets __table__
_ASSISTANTS = Assistant.__table__  # type: ignore[attr-defined]
_INSERT_INTEGRATION = insert_statement(Integration.__table__)  # type: ignore[attr-defined]
_INSERT_ACTION = insert_statement(Action.__table__)  # type: ignore[attr-defined]
_RELEASE_DOCUMENT = Statement(
    select(RELEASES.c.document).where(
        RELEASES.c.assistant_id == bindparam("assistant_id"),
        RELEASES.c.number == bindparam("number"),
    )
)


def default_name(name: str) -> str:
    """ "<name> (copy)", checked by the rule of every name (400 naming `name` when too long)."""
    copy = name + COPY_SUFFIX
    try:
        return _NAME.validate_python(copy)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        message = f'the default name "<name>{COPY_SUFFIX}" is invalid ({problem}): send a name'
        raise invalid_input([FieldError(("name",), message)]) from None


async def _source(
    tx: Tx, source: AssistantRecord, release: int | None
) -> tuple[dict[str, Any], int]:
    """What is copied (the assistant as a release document holds it) and its draft version:
    the draft as it is now, or the release's frozen document (NOT_FOUND when it has none)."""
    if release is None:
        children = await children_by_assistant(tx, [source.id])
        return frozen_assistant(source, children, base_url=""), source.version
    parameters = {"assistant_id": source.id, "number": release}
    text = await tx.scalar(_RELEASE_DOCUMENT, parameters)
    if text is None:
        raise NotFound(f"assistant '{source.id}' has no release {release}")
    document = orjson.loads(text)
    return document["assistant"], int(document["version"])


def _copied_columns(frozen: dict[str, Any]) -> dict[str, Any]:
    """Name, enabled, avatar and every config leaf of what is copied. A leaf that a release
    made before it existed does not hold keeps its default (a null only where one may be)."""
    return {
        column: value
        for column, value in snapshot_columns(frozen).items()
        if column not in NOT_COPIED and (value is not None or _ASSISTANTS.c[column].nullable)
    }


def _integrations(copied: Iterable[dict[str, Any]], assistant: Assistant) -> list[Integration]:
    """Copies of the source's integrations (oldest first), one microsecond apart so that the
    copies keep their order; `error` is the server's and starts null, as on a create."""
    return [
        Integration(
            id=new_id(),
            org_id=assistant.org_id,
            assistant_id=assistant.id,
            integration_id=i["integration_id"],
            enabled=i["enabled"],
            connection_id=i["connection_id"],
            config=i["config"],
            error=None,
            created_at=assistant.created_at + timedelta(microseconds=n),
            updated_at=assistant.created_at + timedelta(microseconds=n),
        )
        for n, i in enumerate(copied)
    ]


def _actions(copied: Iterable[dict[str, Any]], assistant: Assistant) -> list[Action]:
    """Copies of the source's actions with their positions, in their order."""
    return [
        Action(
            id=new_id(),
            org_id=assistant.org_id,
            assistant_id=assistant.id,
            action_id=a["action_id"],
            enabled=a["enabled"],
            name=a["name"],
            instructions=a["instructions"],
            connection_id=a["connection_id"],
            config={"input": a["config"]["input"], "definitions": a["config"]["definitions"]},
            position=a["position"],
            created_at=assistant.created_at + timedelta(microseconds=n),
            updated_at=assistant.created_at + timedelta(microseconds=n),
        )
        for n, a in enumerate(copied)
    ]


@requires(Scope.WRITE)
async def duplicate_assistant(
    tx: Tx,
    *,
    access: Access,
    assistant_id: str,
    body: object,
    writer: Writer,
    quota: CreationQuota | None = None,
) -> AssistantRecord:
    """A new assistant copied from `assistant_id` (a create: a restricted key cannot, and it
    counts against CREATE_ASSISTANT_LIMIT once everything is validated). `body` is
    `DuplicateBody` (None: every default). The source is locked while it is read, so its
    draft and children are copied as one consistent state."""
    check_creator(access, "duplicate_assistant")
    source = await find_assistant(tx, access, assistant_id, for_update=True)
    data = parse_body(DuplicateBody, {} if body is None else body)
    frozen, version = await _source(tx, source, data.from_release)
    name = default_name(frozen["name"]) if data.name is None else data.name
    if quota is not None:
        await quota.spend(access.org_id)
    now = utcnow()
    new = Assistant(
        id=new_id(),
        org_id=access.org_id,
        name=name,
        model="",
        created_at=now,
        updated_at=now,
        suggested_messages=[],
    )
    for column, value in _copied_columns(frozen).items():
        setattr(new, column, value)
    new.name, new.secret_key = name, new_secret_key()
    integrations = _integrations(frozen["integrations"], new) if data.include_integrations else []
    actions = _actions(frozen["actions"], new) if data.include_actions else []
    children_size = sum(map(integration_bytes, integrations)) + sum(map(action_bytes, actions))
    origin = {"assistant_id": source.id, "version": version}
    assistant = await insert_assistant(
        tx, new, writer=writer, more_bytes=children_size, duplicated_from=origin
    )
    for integration in integrations:
        await tx.execute(_INSERT_INTEGRATION, integration.model_dump())
    for action in actions:
        await tx.execute(_INSERT_ACTION, action.model_dump())
    await record_audit(
        tx, access, "assistant.duplicate", "assistant", assistant.id, version=assistant.version
    )
    return assistant
