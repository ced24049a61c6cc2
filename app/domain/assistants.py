"""Assistant use cases: create, read, list, update, delete, rotate the secret key."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.domain import records
from app.domain.assistant_input import AssistantCreate, AssistantPatch, column_values
from app.domain.errors import (
    BadRequest,
    FieldError,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
    invalid_input,
    validation_failed,
)
from app.domain.records import core_execute
from app.domain.revisions import (
    CREATED,
    DELETED,
    RESTORED,
    SECRET_KEY_ROTATED,
    UPDATED,
    Writer,
    get_revision,
    leaf_change,
    leaf_values,
    record_revision,
    snapshot_columns,
)
from app.models import Action, Assistant, Avatar, Integration, new_id, utcnow

M = TypeVar("M", bound=AssistantPatch)


def _parse(model: type[M], body: Any) -> tuple[M | None, list[FieldError]]:
    if not isinstance(body, Mapping):
        raise BadRequest("the body must be a JSON object")
    try:
        return model.model_validate(body), []
    except ValidationError as exc:
        return None, validation_failed(exc).fields


async def _check_avatar(
    session: AsyncSession, org_id: str, body: Mapping[str, Any]
) -> list[FieldError]:
    avatar_id = body.get("avatar_id")
    if not isinstance(avatar_id, str) or not avatar_id or "\x00" in avatar_id:
        return []
    found = await session.scalar(
        select(Avatar.id).where(Avatar.id == avatar_id, Avatar.org_id == org_id)
    )
    return [] if found else [FieldError(("avatar_id",), "no such avatar in this organisation")]


async def _validated(session: AsyncSession, model: type[M], org_id: str, body: Any) -> M:
    """The whole body checked at once: every offending field is reported, none is stored."""
    parsed, errors = _parse(model, body)
    avatar_paths = {e.path for e in errors}
    if ("avatar_id",) not in avatar_paths:
        errors += await _check_avatar(session, org_id, body)
    if errors or parsed is None:
        raise invalid_input(errors)
    return parsed


def new_secret_key() -> str:
    """48 random bytes from the OS's CSPRNG, URL-safe base64."""
    return secrets.token_urlsafe(48)


def next_instant(previous: datetime) -> datetime:
    """Now, but strictly after `previous` (clocks may stall or step back)."""
    now = utcnow()
    return now if now > previous else previous + timedelta(microseconds=1)


@lru_cache(maxsize=256)
def _update_statement(columns: tuple[str, ...]) -> Any:
    """UPDATE of these columns by `seq`, built once per set of columns (cache key memoised)."""
    table = Assistant.__table__  # type: ignore[attr-defined]
    values = {c: bindparam(f"v_{c}", type_=table.c[c].type) for c in columns}
    return update(table).where(table.c.seq == bindparam("v_seq")).values(values)


async def _commit_change(
    session: AsyncSession,
    assistant: Assistant,
    values: dict[str, Any],
    *,
    change_type: str,
    changes: list[dict[str, Any]],
    writer: Writer,
) -> None:
    """A real change: `values`, the next version and a later `updated_at` in one UPDATE (SQLAlchemy
    Core, no unit-of-work flush), and its revision, all at once. The loaded row takes the new
    values as its committed state, so the session has nothing left to flush."""
    values = {
        **values,
        "version": assistant.version + 1,
        "updated_at": next_instant(assistant.updated_at),
    }
    columns = tuple(sorted(values))
    parameters = {f"v_{c}": values[c] for c in columns}
    await core_execute(session, _update_statement(columns), {**parameters, "v_seq": assistant.seq})
    for column, value in values.items():
        set_committed_value(assistant, column, value)
    await record_revision(
        session,
        assistant,
        change_type=change_type,
        changes=changes,
        writer=writer,
        changed_at=assistant.updated_at,
    )


def _column_changes(assistant: Assistant, values: dict[str, Any]) -> dict[str, Any]:
    return {
        column: value for column, value in values.items() if getattr(assistant, column) != value
    }


async def _apply(
    session: AsyncSession,
    assistant: Assistant,
    changed: dict[str, Any],
    *,
    change_type: str,
    writer: Writer,
) -> None:
    changes = [leaf_change(c, getattr(assistant, c), value) for c, value in changed.items()]
    await _commit_change(
        session, assistant, changed, change_type=change_type, changes=changes, writer=writer
    )


async def create_assistant(
    session: AsyncSession, *, org_id: str, body: Any, default_model: str, writer: Writer
) -> Assistant:
    data = await _validated(session, AssistantCreate, org_id, body)
    now = utcnow()
    assistant = Assistant(
        id=new_id(),
        org_id=org_id,
        name=data.name,
        model=default_model,
        created_at=now,
        updated_at=now,
        suggested_messages=[],
    )
    for column, value in column_values(data.set_fields()).items():
        setattr(assistant, column, value)
    if data.generate_secret_key:
        assistant.secret_key = new_secret_key()
    session.add(assistant)
    await session.flush()
    changes = [{"path": p, "from": None, "to": v} for p, v in leaf_values(assistant).items()]
    await record_revision(
        session, assistant, change_type=CREATED, changes=changes, writer=writer, changed_at=now
    )
    return assistant


# built once (SQLAlchemy memoises a statement's cache key): the hot path skips building them
_ONE = select(Assistant).where(
    Assistant.org_id == bindparam("org_id"),
    Assistant.id == bindparam("assistant_id"),
    Assistant.deleted.is_(False),  # type: ignore[attr-defined]
)
_ONE_FOR_UPDATE = _ONE.with_for_update()


async def get_assistant(
    session: AsyncSession, *, org_id: str, assistant_id: str, for_update: bool = False
) -> Assistant:
    stmt = _ONE_FOR_UPDATE if for_update else _ONE
    assistant = await session.scalar(stmt, {"org_id": org_id, "assistant_id": assistant_id})
    if assistant is None:
        raise NotFound(f"no assistant '{assistant_id}' in this organisation")
    return assistant


def check_version(assistant: Assistant, expected_versions: Sequence[int] | None) -> None:
    if expected_versions is not None and assistant.version not in expected_versions:
        raise PreconditionFailed(
            f"the assistant is at version {assistant.version}, not the one expected"
        )


async def update_assistant(
    session: AsyncSession,
    *,
    org_id: str,
    assistant_id: str,
    patch: Any,
    writer: Writer,
    expected_versions: Sequence[int] | None = None,
    dry_run: bool = False,
) -> Assistant:
    """Partial update (CONTRACT section 4): merge what was sent, store only real changes.

    The row is locked first (FOR UPDATE on PostgreSQL; the write transaction already holds
    SQLite's write lock), so concurrent updates of one assistant run one after another.
    A dry run goes through the very same steps and answers an unsaved copy.
    """
    assistant = await get_assistant(
        session, org_id=org_id, assistant_id=assistant_id, for_update=True
    )
    check_version(assistant, expected_versions)
    data = await _validated(session, AssistantPatch, org_id, patch)
    changed = _column_changes(assistant, column_values(data.set_fields()))
    if dry_run:
        preview = Assistant(**assistant.model_dump())
        for column, value in changed.items():
            setattr(preview, column, value)
        return preview
    if changed:
        await _apply(session, assistant, changed, change_type=UPDATED, writer=writer)
    return assistant


async def restore_revision(
    session: AsyncSession,
    *,
    org_id: str,
    assistant_id: str,
    version: int,
    writer: Writer,
    expected_versions: Sequence[int] | None = None,
) -> Assistant:
    """Name, enabled, avatar and config become those of `version` (a new `restored` revision);
    integrations, actions and the secret key are left alone."""
    assistant = await get_assistant(
        session, org_id=org_id, assistant_id=assistant_id, for_update=True
    )
    check_version(assistant, expected_versions)
    revision = await get_revision(session, assistant_id=assistant.id, version=version)
    changed = _column_changes(assistant, snapshot_columns(revision.snapshot))
    if changed:
        await _apply(session, assistant, changed, change_type=RESTORED, writer=writer)
    return assistant


MAX_PAGE_SIZE = 100


def check_page_size(value: int, name: str) -> int:
    """A page size of 1 to MAX_PAGE_SIZE, or a validation error naming the parameter."""
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise ValidationFailed(
            f"'{name}' must be between 1 and {MAX_PAGE_SIZE}",
            [FieldError((name,), f"must be between 1 and {MAX_PAGE_SIZE}")],
        )
    return value


def _visible(org_id: str) -> Any:
    return (Assistant.org_id == org_id) & Assistant.deleted.is_(False)  # type: ignore[attr-defined]


async def list_assistants(
    session: AsyncSession,
    *,
    org_id: str,
    limit: int,
    offset: int = 0,
    after_seq: int | None = None,
) -> list[records.AssistantRecord]:
    """The organisation's assistants, oldest first (by `seq`, which only grows): a window
    after a row (`after_seq`, for cursors) or at an `offset` (for pages). Read with SQLAlchemy
    Core as light records (the ORM's identity map cost more than the rest of a REST list)."""
    stmt = select(*records.TABLE.c).where(_visible(org_id))
    if after_seq is not None:
        stmt = stmt.where(Assistant.seq > after_seq)  # type: ignore[operator]
    stmt = stmt.order_by(Assistant.seq).offset(offset).limit(limit)  # type: ignore[arg-type]
    return [records.AssistantRecord(row) for row in (await core_execute(session, stmt)).all()]


async def count_assistants(session: AsyncSession, *, org_id: str) -> int:
    count = select(func.count()).select_from(records.TABLE).where(_visible(org_id))
    total = (await core_execute(session, count)).scalar()
    return int(total or 0)


async def delete_assistant(
    session: AsyncSession,
    *,
    org_id: str,
    assistant_id: str,
    writer: Writer,
    expected_versions: Sequence[int] | None = None,
) -> Assistant:
    """Soft-deletes the assistant (it answers 404 from now on) and removes its children."""
    assistant = await get_assistant(
        session, org_id=org_id, assistant_id=assistant_id, for_update=True
    )
    check_version(assistant, expected_versions)
    await session.execute(delete(Integration).where(Integration.assistant_id == assistant.id))  # type: ignore[arg-type]
    await session.execute(delete(Action).where(Action.assistant_id == assistant.id))  # type: ignore[arg-type]
    changes = [{"path": "deleted", "from": False, "to": True}]
    await _commit_change(
        session, assistant, {"deleted": True}, change_type=DELETED, changes=changes, writer=writer
    )
    return assistant


async def rotate_secret_key(
    session: AsyncSession,
    *,
    org_id: str,
    assistant_id: str,
    writer: Writer,
    expected_versions: Sequence[int] | None = None,
) -> Assistant:
    """A fresh secret key from the OS's CSPRNG; the old one stops being the assistant's."""
    assistant = await get_assistant(
        session, org_id=org_id, assistant_id=assistant_id, for_update=True
    )
    check_version(assistant, expected_versions)
    changes = [{"path": "secret_key", "from": None, "to": None}]  # values never recorded
    await _commit_change(
        session,
        assistant,
        {"secret_key": new_secret_key()},
        change_type=SECRET_KEY_ROTATED,
        changes=changes,
        writer=writer,
    )
    return assistant
