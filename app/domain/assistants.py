"""Assistant use cases: create, read, list, update, delete, rotate the secret key."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError
from sqlalchemy import Select, bindparam, delete, func, select

from app.domain.access import Access, Scope, requires
from app.domain.assistant_input import AssistantCreate, AssistantPatch, column_values
from app.domain.audit import record_audit
from app.domain.errors import (
    BadRequest,
    FieldError,
    InsufficientScope,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
    invalid_input,
    validation_failed,
)
from app.domain.refs import check_ref_free
from app.domain.revisions import (
    CREATED,
    DELETED,
    DUPLICATED_FROM,
    RESTORED,
    SECRET_KEY_ROTATED,
    UPDATED,
    Writer,
    get_revision,
    leaf_change,
    leaf_values,
    record_revision,
    snapshot_columns,
    snapshot_of,
)
from app.domain.storage import (
    assistant_bytes,
    assistant_delta,
    charge,
    children_bytes,
    give_back,
)
from app.models import (
    Action,
    Assistant,
    AssistantEnvironment,
    AssistantRelease,
    Avatar,
    Integration,
    new_id,
    utcnow,
)
from app.store import Statement, Tx, in_list
from app.store.records import AssistantRecord, replaced
from app.store.statements import insert_statement, update_parameters, update_statement

# mypy ignore below: SQLModel's metaclass sets __table__
TABLE = Assistant.__table__  # type: ignore[attr-defined]

M = TypeVar("M", bound=AssistantPatch)


def _parse(model: type[M], body: object) -> tuple[M | None, list[FieldError]]:
    if not isinstance(body, Mapping):
        raise BadRequest("the body must be a JSON object")
    try:
        return model.model_validate(body), []
    except ValidationError as exc:
        return None, validation_failed(exc).fields


# mypy ignore below: SQLModel's metaclass sets __table__
_AVATARS = Avatar.__table__  # type: ignore[attr-defined]
_AVATAR_OF_ORG = Statement(
    select(_AVATARS.c.id).where(
        _AVATARS.c.id == bindparam("avatar_id"), _AVATARS.c.org_id == bindparam("org_id")
    )
)


async def _check_avatar(tx: Tx, org_id: str, body: object) -> list[FieldError]:
    avatar_id = body.get("avatar_id") if isinstance(body, Mapping) else None
    if not isinstance(avatar_id, str) or not avatar_id or "\x00" in avatar_id:
        return []
    found = await tx.first(_AVATAR_OF_ORG, {"avatar_id": avatar_id, "org_id": org_id})
    return [] if found else [FieldError(("avatar_id",), "no such avatar in this organisation")]


async def _validated(tx: Tx, model: type[M], org_id: str, body: object) -> M:
    """The whole body checked at once: every offending field is reported, none is stored."""
    parsed, errors = _parse(model, body)
    avatar_paths = {e.path for e in errors}
    if ("avatar_id",) not in avatar_paths:
        errors += await _check_avatar(tx, org_id, body)
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


async def _commit_change(
    tx: Tx,
    assistant: AssistantRecord,
    values: dict[str, Any],
    *,
    change_type: str,
    changes: list[dict[str, Any]],
    writer: Writer,
) -> None:
    """A real change: `values`, the next version and a later `updated_at` in one UPDATE (built
    once per set of columns), and its revision. The record takes the new values."""
    values = {
        **values,
        "version": assistant.version + 1,
        "updated_at": next_instant(assistant.updated_at),
    }
    columns = tuple(sorted(values))
    parameters = update_parameters("seq", assistant.seq, values)
    await tx.execute(update_statement(TABLE, "seq", columns), parameters)
    for column, value in values.items():
        setattr(assistant, column, value)
    await record_revision(
        tx,
        assistant,
        change_type=change_type,
        changes=changes,
        writer=writer,
        changed_at=assistant.updated_at,
    )


def _column_changes(assistant: AssistantRecord, values: dict[str, Any]) -> dict[str, Any]:
    return {
        column: value for column, value in values.items() if getattr(assistant, column) != value
    }


async def _apply(
    tx: Tx,
    assistant: AssistantRecord,
    changed: dict[str, Any],
    *,
    change_type: str,
    writer: Writer,
) -> None:
    changes = [leaf_change(c, getattr(assistant, c), value) for c, value in changed.items()]
    delta = assistant_delta(assistant, changed)  # 0 (no statement) when no size changes
    await charge(tx, assistant.org_id, delta, writer.storage_quota)
    await _commit_change(
        tx, assistant, changed, change_type=change_type, changes=changes, writer=writer
    )


_INSERT = insert_statement(TABLE, returning=True)


class CreationQuota(Protocol):
    """CREATE_ASSISTANT_LIMIT (app/http/ratelimit.py): spends one creation of the organisation, or
    raises RateLimited beyond the limit."""

    async def spend(self, org_id: str) -> None: ...


def check_creator(access: Access, use_case: str = "create_assistant") -> None:
    """A key restricted to some assistants cannot make one (create, duplicate)."""
    if access.bound:
        raise InsufficientScope(
            "this API key is restricted to some assistants: it cannot create assistants",
            use_case=use_case,
        )


async def insert_assistant(
    tx: Tx,
    new: Assistant,
    *,
    writer: Writer,
    more_bytes: int = 0,
    duplicated_from: dict[str, Any] | None = None,
) -> AssistantRecord:
    """Stores a new assistant (create, duplicate): its row; its bytes, with `more_bytes` (the
    children a duplicate copies), charged to ORG_STORAGE_QUOTA; its `created` revision, which
    is its event on the streams and its webhook deliveries (`duplicated_from`: the source a
    duplicate names, docs/duplicate.md)."""
    assistant = await tx.first(_INSERT, new.model_dump(exclude={"seq"}), AssistantRecord)
    assert assistant is not None
    size = assistant_bytes(assistant) + more_bytes
    await charge(tx, assistant.org_id, size, writer.storage_quota)
    changes = [{"path": p, "from": None, "to": v} for p, v in leaf_values(assistant).items()]
    origin = None if duplicated_from is None else {DUPLICATED_FROM: duplicated_from}
    await record_revision(
        tx,
        assistant,
        change_type=CREATED,
        changes=changes,
        writer=writer,
        changed_at=new.created_at,
        snapshot=None if origin is None else {**snapshot_of(assistant), **origin},
        event_fields=origin,
    )
    return assistant


@requires(Scope.WRITE)
async def create_assistant(
    tx: Tx,
    *,
    access: Access,
    body: object,
    default_model: str,
    writer: Writer,
    quota: CreationQuota | None = None,
) -> AssistantRecord:
    """A new assistant; a key restricted to some assistants cannot make one. With a `quota`,
    a creation that passes authorisation and validation counts against it (an invalid body
    spends nothing), and beyond it nothing is created."""
    check_creator(access)
    org_id = access.org_id
    data = await _validated(tx, AssistantCreate, org_id, body)
    values = column_values(data.set_fields())
    await check_ref_free(tx, org_id, values, None)
    if quota is not None:
        await quota.spend(org_id)
    now = utcnow()
    new = Assistant(  # the model's defaults for every column the body leaves out
        id=new_id(),
        org_id=org_id,
        name=data.name,
        model=default_model,
        created_at=now,
        updated_at=now,
        suggested_messages=[],
    )
    for column, value in values.items():
        setattr(new, column, value)
    if data.generate_secret_key:
        new.secret_key = new_secret_key()
    assistant = await insert_assistant(tx, new, writer=writer)
    await record_audit(
        tx, access, "assistant.create", "assistant", assistant.id, version=assistant.version
    )
    return assistant


# built once, compiled once per dialect: the hot path only binds its parameters
_ONE_CLAUSE = select(TABLE).where(
    TABLE.c.org_id == bindparam("org_id"),
    TABLE.c.id == bindparam("assistant_id"),
    TABLE.c.deleted.is_(False),
)
_ONE = Statement(_ONE_CLAUSE)
_ONE_FOR_UPDATE = Statement(_ONE_CLAUSE.with_for_update())


async def find_assistant(
    tx: Tx, access: Access, assistant_id: str, *, for_update: bool = False
) -> AssistantRecord:
    """A live assistant the caller sees (locked when `for_update`); NOT_FOUND otherwise, the
    same whether it does not exist or the key is restricted to other assistants."""
    assistant = None
    if access.sees(assistant_id):
        stmt = _ONE_FOR_UPDATE if for_update else _ONE
        parameters = {"org_id": access.org_id, "assistant_id": assistant_id}
        assistant = await tx.first(stmt, parameters, AssistantRecord)
    if assistant is None:
        raise NotFound(f"no assistant '{assistant_id}' in this organisation")
    return assistant


@requires(Scope.READ)
async def get_assistant(tx: Tx, *, access: Access, assistant_id: str) -> AssistantRecord:
    return await find_assistant(tx, access, assistant_id)


def check_version(assistant: AssistantRecord, expected_versions: Sequence[int] | None) -> None:
    if expected_versions is not None and assistant.version not in expected_versions:
        raise PreconditionFailed(
            f"the assistant is at version {assistant.version}, not the one expected"
        )


@requires(Scope.WRITE)
async def update_assistant(
    tx: Tx,
    *,
    access: Access,
    assistant_id: str,
    patch: object,
    writer: Writer,
    expected_versions: Sequence[int] | None = None,
    dry_run: bool = False,
) -> AssistantRecord:
    """Partial update: merge what was sent, store only real changes.

    The row is locked first (FOR UPDATE on PostgreSQL; the write transaction already holds
    SQLite's write lock), so concurrent updates of one assistant run one after another.
    A dry run goes through the very same steps and answers an unsaved copy.
    """
    assistant = await find_assistant(tx, access, assistant_id, for_update=True)
    check_version(assistant, expected_versions)
    data = await _validated(tx, AssistantPatch, access.org_id, patch)
    changed = _column_changes(assistant, column_values(data.set_fields()))
    await check_ref_free(tx, access.org_id, changed, assistant.id)
    if dry_run:
        return replaced(assistant, **changed)
    if changed:
        await _apply(tx, assistant, changed, change_type=UPDATED, writer=writer)
    await record_audit(
        tx, access, "assistant.update", "assistant", assistant.id, version=assistant.version
    )
    return assistant


@requires(Scope.WRITE)
async def restore_revision(
    tx: Tx,
    *,
    access: Access,
    assistant_id: str,
    version: int,
    writer: Writer,
    expected_versions: Sequence[int] | None = None,
) -> AssistantRecord:
    """Name, enabled, avatar and config become those of `version` (a new `restored` revision);
    integrations, actions and the secret key are left alone."""
    assistant = await find_assistant(tx, access, assistant_id, for_update=True)
    check_version(assistant, expected_versions)
    revision = await get_revision(tx, assistant_id=assistant.id, version=version)
    changed = _column_changes(assistant, snapshot_columns(revision.snapshot))
    if changed:
        await _apply(tx, assistant, changed, change_type=RESTORED, writer=writer)
    await record_audit(
        tx, access, "assistant.restore", "assistant", assistant.id, version=assistant.version
    )
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


MAX_SEQ = 2**31 - 1  # seq is a 32-bit integer on PostgreSQL
_VISIBLE = (TABLE.c.org_id == bindparam("org_id")) & TABLE.c.deleted.is_(False)
_OF_KEY = in_list(TABLE.c.id, "assistant_ids")  # a key restricted to some assistants


def _page(visible: Any) -> Statement[Select[Any]]:
    return Statement(
        select(TABLE)
        .where(visible, TABLE.c.seq > bindparam("after_seq"))
        .order_by(TABLE.c.seq)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


# by whether the key is restricted to some assistants: each statement built once
_PAGE = {False: _page(_VISIBLE), True: _page(_VISIBLE & _OF_KEY)}
_COUNT = {
    bound: Statement(select(func.count()).select_from(TABLE).where(visible))
    for bound, visible in ((False, _VISIBLE), (True, _VISIBLE & _OF_KEY))
}


def _visible_to(access: Access) -> dict[str, Any]:
    parameters: dict[str, Any] = {"org_id": access.org_id}
    if access.assistant_ids is not None:
        parameters["assistant_ids"] = sorted(access.assistant_ids)
    return parameters


@requires(Scope.READ)
async def list_assistants(
    tx: Tx,
    *,
    access: Access,
    limit: int,
    offset: int = 0,
    after_seq: int | None = None,
) -> list[AssistantRecord]:
    """The assistants the caller sees, oldest first (by `seq`, which only grows): a window
    after a row (`after_seq`, for cursors) or at an `offset` (for pages)."""
    parameters = {
        **_visible_to(access),
        "after_seq": 0 if after_seq is None else min(after_seq, MAX_SEQ),
        "limit": limit,
        "offset": offset,
    }
    return await tx.all(_PAGE[access.bound], parameters, AssistantRecord)


@requires(Scope.READ)
async def count_assistants(tx: Tx, *, access: Access) -> int:
    """How many assistants the caller sees."""
    return int(await tx.scalar(_COUNT[access.bound], _visible_to(access)) or 0)


# mypy ignore below: SQLModel's metaclass sets __table__
_INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]
_ACTIONS = Action.__table__  # type: ignore[attr-defined]
_DELETE_INTEGRATIONS = Statement(
    delete(_INTEGRATIONS).where(_INTEGRATIONS.c.assistant_id == bindparam("assistant_id"))
)
_DELETE_ACTIONS = Statement(
    delete(_ACTIONS).where(_ACTIONS.c.assistant_id == bindparam("assistant_id"))
)
# its releases and environments go with it (docs/releases.md)
_RELEASES = AssistantRelease.__table__  # type: ignore[attr-defined]
_ENVIRONMENTS = AssistantEnvironment.__table__  # type: ignore[attr-defined]
_DELETE_ENVIRONMENTS = Statement(
    delete(_ENVIRONMENTS).where(_ENVIRONMENTS.c.assistant_id == bindparam("assistant_id"))
)
_DELETE_RELEASES = Statement(
    delete(_RELEASES).where(_RELEASES.c.assistant_id == bindparam("assistant_id"))
)


@requires(Scope.WRITE)
async def delete_assistant(
    tx: Tx,
    *,
    access: Access,
    assistant_id: str,
    writer: Writer,
    expected_versions: Sequence[int] | None = None,
) -> AssistantRecord:
    """Soft-deletes the assistant (it answers 404 from now on) and removes its children, its
    releases and its environments; their bytes are given back to the organisation's storage
    quota."""
    assistant = await find_assistant(tx, access, assistant_id, for_update=True)
    check_version(assistant, expected_versions)
    freed = assistant_bytes(assistant) + await children_bytes(tx, assistant.id)
    await tx.execute(_DELETE_INTEGRATIONS, {"assistant_id": assistant.id})
    await tx.execute(_DELETE_ACTIONS, {"assistant_id": assistant.id})
    await tx.execute(_DELETE_ENVIRONMENTS, {"assistant_id": assistant.id})
    await tx.execute(_DELETE_RELEASES, {"assistant_id": assistant.id})
    changes = [{"path": "deleted", "from": False, "to": True}]
    await _commit_change(
        tx, assistant, {"deleted": True}, change_type=DELETED, changes=changes, writer=writer
    )
    await give_back(tx, assistant.org_id, freed)
    await record_audit(
        tx, access, "assistant.delete", "assistant", assistant.id, version=assistant.version
    )
    return assistant


@requires(Scope.WRITE)
async def rotate_secret_key(
    tx: Tx,
    *,
    access: Access,
    assistant_id: str,
    writer: Writer,
    expected_versions: Sequence[int] | None = None,
) -> AssistantRecord:
    """A fresh secret key from the OS's CSPRNG; the old one stops being the assistant's."""
    assistant = await find_assistant(tx, access, assistant_id, for_update=True)
    check_version(assistant, expected_versions)
    changes = [{"path": "secret_key", "from": None, "to": None}]  # values never recorded
    await _commit_change(
        tx,
        assistant,
        {"secret_key": new_secret_key()},
        change_type=SECRET_KEY_ROTATED,
        changes=changes,
        writer=writer,
    )
    await record_audit(
        tx,
        access,
        "assistant.rotate_secret_key",
        "assistant",
        assistant.id,
        version=assistant.version,
    )
    return assistant
