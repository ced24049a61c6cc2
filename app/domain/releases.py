"""Releases and environments (docs/releases.md): publish the draft as an immutable, numbered
document; point named environments at releases; read an environment; diff releases.

A release is stored once as the JSON text of its document (`assistant_releases.document`), so
reading an environment is one indexed read of that text, never an assembly of the assistant and
its children. Publishing and pinning are revisions of change type `published` made at the
assistant's current version: they reach the event stream, the subscription and every other
reader of revisions, and leave the draft's version alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import Field, StringConstraints
from sqlalchemy import and_, bindparam, delete, func, select, update

from app.domain.access import Access, Scope, requires
from app.domain.assistants import check_version, find_assistant
from app.domain.audit import record_audit
from app.domain.child_input import parse_body
from app.domain.children_of_many import children_by_assistant
from app.domain.documents import assistant_document, rfc3339
from app.domain.errors import FieldError, NotFound, PreconditionFailed, ValidationFailed
from app.domain.fields import Input, NotNull, Text
from app.domain.revisions import PUBLISHED as _PUBLISHED
from app.domain.revisions import Writer, record_revision, snapshot_of
from app.domain.shape import LEAVES
from app.models import AssistantEnvironment, AssistantRelease, utcnow
from app.store import Statement, Tx
from app.store.records import AssistantRecord, EnvironmentRecord, ReleaseRecord
from app.store.statements import insert_statement

PUBLISHED = _PUBLISHED
R = TypeVar("R")
MAX_ENVIRONMENTS = 10
MAX_NOTE = 1024
MAX_RELEASE = 2**31 - 1
DRAFT = "draft"
_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}\Z")

# mypy ignore below: SQLModel's metaclass sets __table__
RELEASES = AssistantRelease.__table__  # type: ignore[attr-defined]
ENVIRONMENTS = AssistantEnvironment.__table__  # type: ignore[attr-defined]

_RELEASE_INSERT = insert_statement(RELEASES)
_ENVIRONMENT_INSERT = insert_statement(ENVIRONMENTS)
_LAST_NUMBER = Statement(
    select(func.max(RELEASES.c.number)).where(RELEASES.c.assistant_id == bindparam("assistant_id"))
)
_RELEASE_COUNT = Statement(
    select(func.count())
    .select_from(RELEASES)
    .where(RELEASES.c.assistant_id == bindparam("assistant_id"))
)
_RELEASE_PAGE = Statement(
    select(RELEASES)
    .where(
        RELEASES.c.assistant_id == bindparam("assistant_id"),
        RELEASES.c.number <= bindparam("highest"),
    )
    .order_by(RELEASES.c.number.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_RELEASE = Statement(
    select(RELEASES).where(
        RELEASES.c.assistant_id == bindparam("assistant_id"),
        RELEASES.c.number == bindparam("number"),
    )
)
_ENVIRONMENT = Statement(
    select(ENVIRONMENTS).where(
        ENVIRONMENTS.c.assistant_id == bindparam("assistant_id"),
        ENVIRONMENTS.c.name == bindparam("name"),
    )
)
_ENVIRONMENT_COUNT = Statement(
    select(func.count())
    .select_from(ENVIRONMENTS)
    .where(ENVIRONMENTS.c.assistant_id == bindparam("assistant_id"))
)
_ENVIRONMENTS_WITH_DOCUMENTS = Statement(
    select(
        ENVIRONMENTS.c.name, ENVIRONMENTS.c.release, ENVIRONMENTS.c.updated_at, RELEASES.c.document
    )
    .join(
        RELEASES,
        and_(
            RELEASES.c.assistant_id == ENVIRONMENTS.c.assistant_id,
            RELEASES.c.number == ENVIRONMENTS.c.release,
        ),
    )
    .where(ENVIRONMENTS.c.assistant_id == bindparam("assistant_id"))
    .order_by(ENVIRONMENTS.c.name)
)
# the runtime's read: the pinned release's number and stored document, by primary keys
_PINNED_DOCUMENT = Statement(
    select(RELEASES.c.number, RELEASES.c.document)
    .select_from(ENVIRONMENTS)
    .join(
        RELEASES,
        and_(
            RELEASES.c.assistant_id == ENVIRONMENTS.c.assistant_id,
            RELEASES.c.number == ENVIRONMENTS.c.release,
        ),
    )
    .where(
        ENVIRONMENTS.c.assistant_id == bindparam("assistant_id"),
        ENVIRONMENTS.c.name == bindparam("name"),
        RELEASES.c.org_id == bindparam("org_id"),
    )
)
_PIN = Statement(
    update(ENVIRONMENTS)
    .where(
        ENVIRONMENTS.c.assistant_id == bindparam("assistant_id"),
        ENVIRONMENTS.c.name == bindparam("name"),
    )
    .values(release=bindparam("release"), updated_at=bindparam("updated_at"))
)
_UNPIN = Statement(
    delete(ENVIRONMENTS).where(
        ENVIRONMENTS.c.assistant_id == bindparam("assistant_id"),
        ENVIRONMENTS.c.name == bindparam("name"),
    )
)


# -- input ------------------------------------------------------------------------------------


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"'{field}' {message}", [FieldError((field,), message)])


def check_environment_name(name: object, field: str = "environment") -> str:
    """An environment's name, `[a-z][a-z0-9-]{0,31}`; 400 naming `field` otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise _invalid(field, "must match [a-z][a-z0-9-]{0,31}")
    return name


def check_note(note: object) -> str | None:
    if note is None:
        return None
    if not isinstance(note, str):
        raise _invalid("note", "must be a string or null")
    if len(note) > MAX_NOTE:
        raise _invalid("note", f"must be at most {MAX_NOTE} characters")
    return note


def check_release_number(value: object, field: str = "release") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RELEASE:
        raise _invalid(field, "must be a release number (an integer from 1)")
    return value


EnvironmentName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]


class ReleaseCreate(Input):
    """Body of `POST …/releases`: an environment to point at the new release, and a note."""

    environment: EnvironmentName | None = None
    note: Annotated[Text | None, Field(max_length=MAX_NOTE)] = None


class EnvironmentPin(Input):
    """Body of `PUT …/environments/{name}`: the release to point at."""

    release: Annotated[int, NotNull, Field(ge=1, le=MAX_RELEASE)]


def publish_body(body: object) -> tuple[str | None, str | None]:
    """(environment, note) of `{"environment"?, "note"?}` (REST; no body: neither)."""
    if body is None:
        return None, None
    data = parse_body(ReleaseCreate, body)
    return data.environment, data.note


def pin_body(body: object) -> int:
    """The release of `{"release": n}` (REST)."""
    return parse_body(EnvironmentPin, body).release


# -- documents --------------------------------------------------------------------------------


def frozen_assistant(assistant: AssistantRecord, children: Any, base_url: str) -> dict[str, Any]:
    """The assistant as the REST GETs show it, without its secret key and `deleted`."""
    document = assistant_document(
        assistant,
        base_url=base_url,
        integrations=children.integrations.get(assistant.id, []),
        actions=children.actions.get(assistant.id, []),
    )
    del document["secret_key"], document["deleted"]
    return document


def release_document(row: ReleaseRecord) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(row.document)
    return document


async def _draft_document(tx: Tx, assistant: AssistantRecord, base_url: str) -> dict[str, Any]:
    children = await children_by_assistant(tx, [assistant.id])
    return frozen_assistant(assistant, children, base_url)


async def _published_event(
    tx: Tx,
    assistant: AssistantRecord,
    *,
    writer: Writer,
    release: int,
    environment: str | None,
    changes: list[dict[str, Any]],
) -> None:
    """The `published` revision: at the assistant's version, never changing it (on PostgreSQL
    the revisions' trigger notifies the streams of every process)."""
    await record_revision(
        tx,
        assistant,
        change_type=PUBLISHED,
        changes=changes,
        writer=writer,
        changed_at=utcnow(),
        snapshot={**snapshot_of(assistant), "release": release, "environment": environment},
        event_fields={"release": release, "environment": environment},
    )


async def _environment(tx: Tx, assistant_id: str, name: str) -> EnvironmentRecord | None:
    return await tx.first(
        _ENVIRONMENT, {"assistant_id": assistant_id, "name": name}, EnvironmentRecord
    )


async def _point(
    tx: Tx,
    assistant: AssistantRecord,
    name: str,
    release: int,
    current: EnvironmentRecord | None,
) -> EnvironmentRecord:
    """Points the environment `name` at `release` (made if new, within MAX_ENVIRONMENTS)."""
    now = utcnow()
    parameters = {"assistant_id": assistant.id, "name": name, "release": release, "updated_at": now}
    if current is None:
        count = int(await tx.scalar(_ENVIRONMENT_COUNT, {"assistant_id": assistant.id}) or 0)
        if count >= MAX_ENVIRONMENTS:
            raise _invalid(
                "environment", f"an assistant has at most {MAX_ENVIRONMENTS} environments"
            )
        await tx.execute(_ENVIRONMENT_INSERT, parameters)
    else:
        await tx.execute(_PIN, parameters)
    return _built(EnvironmentRecord, parameters)


def _built(into: type[R], values: dict[str, Any]) -> R:
    """A record of these values (what was just written)."""
    record = object.__new__(into)
    for key, value in values.items():
        setattr(record, key, value)
    return record


def _change(name: str, before: int | None, after: int) -> list[dict[str, Any]]:
    return [{"path": f"environments.{name}", "from": before, "to": after}]


# -- use cases --------------------------------------------------------------------------------


@requires(Scope.WRITE)
async def publish_release(
    tx: Tx,
    *,
    access: Access,
    assistant_id: str,
    writer: Writer,
    base_url: str,
    environment: str | None = None,
    note: str | None = None,
    expected_versions: Sequence[int] | None = None,
) -> ReleaseRecord:
    """Release n+1 made from the draft as it is now; pointed at by `environment` when given."""
    if environment is not None:
        check_environment_name(environment)
    note = check_note(note)
    assistant = await find_assistant(tx, access, assistant_id, for_update=True)
    check_version(assistant, expected_versions)
    number = int(await tx.scalar(_LAST_NUMBER, {"assistant_id": assistant.id}) or 0) + 1
    now = utcnow()
    values = {
        "assistant_id": assistant.id,
        "number": number,
        "org_id": assistant.org_id,
        "version": assistant.version,
        "note": note,
        "created_at": now,
        "created_by_key_id": writer.key_id,
    }
    document = {
        "number": number,
        "assistant_id": assistant.id,
        "version": assistant.version,
        "note": note,
        "created_at": rfc3339(now),
        "created_by_key_id": writer.key_id,
        "assistant": await _draft_document(tx, assistant, base_url),
    }
    values["document"] = orjson.dumps(document).decode()
    await tx.execute(_RELEASE_INSERT, values)
    release = _built(ReleaseRecord, values)
    changes: list[dict[str, Any]] = []
    if environment is not None:
        current = await _environment(tx, assistant.id, environment)
        await _point(tx, assistant, environment, number, current)
        changes = _change(environment, None if current is None else current.release, number)
    await _published_event(
        tx, assistant, writer=writer, release=number, environment=environment, changes=changes
    )
    await record_audit(tx, access, "release.publish", "assistant", assistant.id)
    return release


async def _release(tx: Tx, assistant_id: str, number: int) -> ReleaseRecord:
    row = None
    if 1 <= number <= MAX_RELEASE:
        parameters = {"assistant_id": assistant_id, "number": number}
        row = await tx.first(_RELEASE, parameters, ReleaseRecord)
    if row is None:
        raise NotFound(f"assistant '{assistant_id}' has no release {number}")
    return row


@requires(Scope.READ)
async def list_releases(
    tx: Tx,
    *,
    access: Access,
    assistant_id: str,
    limit: int,
    offset: int = 0,
    before_number: int | None = None,
    read_already: bool = False,
) -> tuple[list[ReleaseRecord], int]:
    """A window of the releases, newest first, and how many there are: at an `offset` (pages)
    or below a number (cursors)."""
    if read_already:
        if not access.sees(assistant_id):
            raise NotFound(f"no assistant '{assistant_id}' in this organisation")
    else:
        assistant_id = (await find_assistant(tx, access, assistant_id)).id
    highest = MAX_RELEASE if before_number is None else min(before_number - 1, MAX_RELEASE)
    parameters = {
        "assistant_id": assistant_id,
        "highest": highest,
        "limit": limit,
        "offset": offset,
    }
    rows = await tx.all(_RELEASE_PAGE, parameters, ReleaseRecord)
    total = int(await tx.scalar(_RELEASE_COUNT, {"assistant_id": assistant_id}) or 0)
    return rows, total


@requires(Scope.READ)
async def get_release(
    tx: Tx, *, access: Access, assistant_id: str, number: int, read_already: bool = False
) -> ReleaseRecord:
    if read_already:
        if not access.sees(assistant_id):
            raise NotFound(f"no assistant '{assistant_id}' in this organisation")
    else:
        assistant_id = (await find_assistant(tx, access, assistant_id)).id
    return await _release(tx, assistant_id, number)


@requires(Scope.WRITE)
async def pin_environment(
    tx: Tx,
    *,
    access: Access,
    assistant_id: str,
    name: str,
    release: int,
    writer: Writer,
    expected_releases: Sequence[int] | None = None,
) -> tuple[EnvironmentRecord, ReleaseRecord]:
    """Points `name` at `release` (promote or roll back), and answers it with that release.
    With `expected_releases`, refused (PRECONDITION_FAILED) unless the environment exists and
    points at one of them."""
    check_environment_name(name)
    check_release_number(release)
    assistant = await find_assistant(tx, access, assistant_id, for_update=True)
    pinned = await _release(tx, assistant.id, release)
    current = await _environment(tx, assistant.id, name)
    if expected_releases is not None and (
        current is None or current.release not in expected_releases
    ):
        at = "does not exist" if current is None else f"points at release {current.release}"
        raise PreconditionFailed(f"the environment '{name}' {at}, not the one expected")
    await record_audit(tx, access, "environment.pin", "assistant", assistant.id)
    if current is not None and current.release == release:
        return current, pinned
    environment = await _point(tx, assistant, name, release, current)
    before = None if current is None else current.release
    await _published_event(
        tx,
        assistant,
        writer=writer,
        release=release,
        environment=name,
        changes=_change(name, before, release),
    )
    return environment, pinned


@requires(Scope.READ)
async def list_environments(
    tx: Tx, *, access: Access, assistant_id: str, read_already: bool = False
) -> list[tuple[EnvironmentRecord, str]]:
    """Every environment of the assistant by name, each with its release's stored document."""
    if read_already:
        if not access.sees(assistant_id):
            raise NotFound(f"no assistant '{assistant_id}' in this organisation")
    else:
        assistant_id = (await find_assistant(tx, access, assistant_id)).id
    rows = await tx.all(_ENVIRONMENTS_WITH_DOCUMENTS, {"assistant_id": assistant_id})
    listed = []
    for name, release, updated_at, document in rows:
        values = {"assistant_id": assistant_id, "name": name, "release": release}
        environment = _built(EnvironmentRecord, {**values, "updated_at": updated_at})
        listed.append((environment, document))
    return listed


@requires(Scope.READ)
async def read_environment(
    tx: Tx, *, access: Access, assistant_id: str, name: str
) -> tuple[int, str]:
    """The runtime's read: the pinned release's number (its ETag) and its stored document, in
    one indexed read. An unknown environment, or an assistant the caller does not see (or that
    was deleted: its environments went with it), is NOT_FOUND."""
    row = None
    if access.sees(assistant_id) and _NAME.match(name):
        parameters = {"assistant_id": assistant_id, "name": name, "org_id": access.org_id}
        row = await tx.first(_PINNED_DOCUMENT, parameters)
    if row is None:
        raise NotFound(f"assistant '{assistant_id}' has no environment '{name}'")
    return int(row[0]), str(row[1])


@requires(Scope.WRITE)
async def remove_environment(
    tx: Tx,
    *,
    access: Access,
    assistant_id: str,
    name: str,
    expected_releases: Sequence[int] | None = None,
) -> EnvironmentRecord:
    assistant = await find_assistant(tx, access, assistant_id, for_update=True)
    current = await _environment(tx, assistant.id, name) if _NAME.match(name) else None
    if current is None:
        raise NotFound(f"assistant '{assistant_id}' has no environment '{name}'")
    if expected_releases is not None and current.release not in expected_releases:
        raise PreconditionFailed(
            f"the environment '{name}' points at release {current.release}, not the one expected"
        )
    await tx.execute(_UNPIN, {"assistant_id": assistant.id, "name": name})
    await record_audit(tx, access, "environment.remove", "assistant", assistant.id)
    return current


# -- diffs ------------------------------------------------------------------------------------

_INTEGRATION_LEAVES = ("enabled", "integration_id", "connection_id", "config", "error")
_ACTION_LEAVES = ("enabled", "name", "instructions", "action_id", "connection_id")


def document_leaves(assistant: dict[str, Any]) -> dict[str, Any]:
    """{"name": …, "config.tts.voice_id": …, "integrations.<id>.enabled": …, "actions.order":
    [ids], …}: every leaf of a frozen assistant by its dotted path (children by their id)."""
    leaves: dict[str, Any] = {}
    for path in LEAVES:
        node: Any = assistant
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        leaves[".".join(path)] = node
    for integration in assistant.get("integrations", []):
        for key in _INTEGRATION_LEAVES:
            leaves[f"integrations.{integration['id']}.{key}"] = integration.get(key)
    for action in assistant.get("actions", []):
        for key in _ACTION_LEAVES:
            leaves[f"actions.{action['id']}.{key}"] = action.get(key)
        config = action.get("config") or {}
        for key in ("input", "definitions"):
            leaves[f"actions.{action['id']}.config.{key}"] = config.get(key)
    leaves["actions.order"] = [action["id"] for action in assistant.get("actions", [])]
    return leaves


def leaf_diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """The changed leaves from one frozen assistant to another, in the revisions' format."""
    old, new = document_leaves(before), document_leaves(after)
    paths = list(old) + [path for path in new if path not in old]
    return [
        {"path": path, "from": old.get(path), "to": new.get(path)}
        for path in paths
        if old.get(path) != new.get(path)
    ]


@requires(Scope.READ)
async def diff_release(
    tx: Tx,
    *,
    access: Access,
    assistant_id: str,
    number: int,
    against: str,
    base_url: str,
) -> list[dict[str, Any]]:
    """What changes from `against` (`draft`, a release number or an environment's name) to
    release `number`: leaf changes in the revisions' format. Unknown ones are NOT_FOUND."""
    assistant = await find_assistant(tx, access, assistant_id)
    release = release_document(await _release(tx, assistant.id, number))["assistant"]
    if against == DRAFT:
        other = await _draft_document(tx, assistant, base_url)
    elif against.isascii() and against.isdigit() and len(against) <= 10:
        other = release_document(await _release(tx, assistant.id, int(against)))["assistant"]
    else:
        if not _NAME.match(against):
            raise NotFound(f"assistant '{assistant_id}' has no environment '{against}'")
        _, text = await read_environment(tx, access=access, assistant_id=assistant.id, name=against)
        other = orjson.loads(text)["assistant"]
    return leaf_diff(other, release)
