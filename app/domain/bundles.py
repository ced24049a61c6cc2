"""Bundles (docs/bundles.md): export an organisation's assistants as one document, and apply a
document to an organisation: a plan per assistant (`create`, `update`, `unchanged`, `delete`),
carried out by the very use cases REST and GraphQL call, in the caller's one transaction.

Children are matched by a key (docs/bundles.md, "Matching"): an integration by its
`integration_id`, an action by its `name` (the second of the same is `name~2`, and so on).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select

from app.domain.access import Access, Scope, requires
from app.domain.actions import create_action
from app.domain.assistant_input import column_values
from app.domain.assistants import (
    CreationQuota,
    create_assistant,
    delete_assistant,
    update_assistant,
)
from app.domain.audit import record_audit
from app.domain.bundle_children import added, entry_actions, entry_integrations, sync_children
from app.domain.bundle_format import (
    BundleAssistant,
    assistant_entry,
    bundle_document,
    desired_assistant,
    parse_bundle,
)
from app.domain.children_of_many import children_by_assistant
from app.domain.errors import (
    DomainError,
    FieldError,
    InsufficientScope,
    NotFound,
    ValidationFailed,
    invalid_input,
)
from app.domain.integrations import create_integration
from app.domain.revisions import Writer, leaf_values
from app.models import Assistant
from app.store import Statement, Tx
from app.store.records import AssistantRecord

CREATE, UPDATE, UNCHANGED, DELETE = "create", "update", "unchanged", "delete"

# mypy ignore below: SQLModel's metaclass sets __table__
_TABLE = Assistant.__table__  # type: ignore[attr-defined]
_LIVE = Statement(
    select(_TABLE)
    .where(_TABLE.c.org_id == bindparam("org_id"), _TABLE.c.deleted.is_(False))
    .order_by(_TABLE.c.seq)
)


def _unrestricted(access: Access, what: str) -> None:
    if access.bound:
        raise InsufficientScope(
            f"this API key is restricted to some assistants: it cannot {what} bundles"
        )


@requires(Scope.READ)
async def export_bundle(tx: Tx, *, access: Access, refs: Sequence[str] = ()) -> dict[str, Any]:
    """The organisation's live assistants (oldest first) as a bundle; with `refs`, only
    those (an assistant without a ref is named by its id)."""
    _unrestricted(access, "export")
    rows = await tx.all(_LIVE, {"org_id": access.org_id}, AssistantRecord)
    if refs:
        wanted = set(refs)
        missing = sorted(wanted - {row.ref or row.id for row in rows})
        if missing:
            raise NotFound(f"no assistant with the ref '{missing[0]}' in this organisation")
        rows = [row for row in rows if (row.ref or row.id) in wanted]
    children = await children_by_assistant(tx, [row.id for row in rows])
    return bundle_document(
        [
            assistant_entry(
                row, children.integrations.get(row.id, []), children.actions.get(row.id, [])
            )
            for row in rows
        ]
    )


@dataclass(slots=True)
class _Run:
    """What every entry of one apply shares."""

    tx: Tx
    access: Access
    writer: Writer
    default_model: str
    dry_run: bool
    quota: CreationQuota | None


@requires(Scope.WRITE)
async def apply_bundle(
    tx: Tx,
    *,
    access: Access,
    document: object,
    writer: Writer,
    default_model: str,
    env: Mapping[str, str] | None = None,
    dry_run: bool = False,
    prune: bool = False,
    quota: CreationQuota | None = None,
) -> dict[str, Any]:
    """The plan of `document` against the organisation, carried out unless `dry_run` (all of
    it in the caller's transaction: any failure leaves nothing). `env`: the command line's
    environment for `${env:NAME}` (None refuses it)."""
    _unrestricted(access, "apply")
    bundle = parse_bundle(document, env)
    rows = await tx.all(_LIVE, {"org_id": access.org_id}, AssistantRecord)
    by_ref = {row.ref: row for row in rows if row.ref is not None}
    by_id = {row.id: row for row in rows if row.ref is None}
    matched = [by_ref.get(entry.ref) or by_id.get(entry.ref) for entry in bundle.assistants]
    family = await children_by_assistant(tx, [row.id for row in matched if row is not None])
    quiet = dataclasses.replace(access, audited=False)  # the apply writes the one entry
    run = _Run(tx, quiet, writer, default_model, dry_run, None if dry_run else quota)
    plan = []
    for index, (entry, current) in enumerate(zip(bundle.assistants, matched, strict=True)):
        try:
            if current is None:
                plan.append(await _create(run, entry))
            else:
                kids = (family.integrations.get(current.id, []), family.actions.get(current.id, []))
                plan.append(await _update(run, entry, current, kids))
        except DomainError as exc:
            raise _in_entry(exc, index, entry.ref) from None
    if prune:
        kept = {row.id for row in matched if row is not None}
        for row in rows:
            if row.ref is not None and row.id not in kept:
                plan.append(await _delete(run, row))
    counts = Counter(step["action"] for step in plan)
    summary = {action: counts[action] for action in (CREATE, UPDATE, UNCHANGED, DELETE)}
    if not dry_run and counts[CREATE] + counts[UPDATE] + counts[DELETE]:
        await record_audit(tx, access, "bundle.apply", "organisation", access.org_id)
    return {"applied": not dry_run, "summary": summary, "assistants": plan}


def _in_entry(exc: DomainError, index: int, ref: str) -> DomainError:
    """The error of a use case, its fields put under the entry that caused it."""
    named = f"entry {index} (ref '{ref}')"
    fields = [
        FieldError(("assistants", index, *f.path), f"{named}: {f.message}") for f in exc.fields
    ]
    if isinstance(exc, ValidationFailed):
        return (
            invalid_input(fields, exc.more)
            if fields
            else invalid_input([FieldError(("assistants", index), f"{named}: {exc.message}")])
        )
    exc.fields = fields
    exc.message = f"{named}: {exc.message}"
    return exc


def _step(action: str, ref: str, row: Any, changes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"ref": ref, "action": action, "id": None if row is None else row.id, "changes": changes}


async def _create(run: _Run, entry: BundleAssistant) -> dict[str, Any]:
    body = {**desired_assistant(entry, run.default_model), "ref": entry.ref}
    new = Assistant(
        id="",
        org_id=run.access.org_id,
        name=entry.name,
        model=run.default_model,
        suggested_messages=[],
    )
    for column, value in column_values(body).items():
        setattr(new, column, value)
    changes = [{"path": p, "from": None, "to": v} for p, v in leaf_values(new).items()]
    changes += [added("integrations", key, doc) for key, doc in entry_integrations(entry).items()]
    changes += [added("actions", key, doc) for key, doc in entry_actions(entry).items()]
    if run.dry_run:
        return _step(CREATE, entry.ref, None, changes)
    row = await create_assistant(
        run.tx,
        access=run.access,
        body=body,
        default_model=run.default_model,
        writer=run.writer,
        quota=run.quota,
    )
    quota = run.writer.storage_quota
    for integration in entry.integrations:
        await create_integration(
            run.tx,
            access=run.access,
            assistant_id=row.id,
            body=integration.model_dump(),
            storage_quota=quota,
        )
    for action in entry.actions:
        await create_action(
            run.tx,
            access=run.access,
            assistant_id=row.id,
            body=action.model_dump(),
            storage_quota=quota,
        )
    return _step(CREATE, entry.ref, row, changes)


async def _update(
    run: _Run, entry: BundleAssistant, current: AssistantRecord, kids: tuple[list[Any], list[Any]]
) -> dict[str, Any]:
    patch = desired_assistant(entry, run.default_model)
    before = leaf_values(current)
    common: dict[str, Any] = {"access": run.access, "assistant_id": current.id, "patch": patch}
    after = await update_assistant(run.tx, **common, writer=run.writer, dry_run=True)
    changes = [
        {"path": path, "from": before[path], "to": value}
        for path, value in leaf_values(after).items()
        if before[path] != value
    ]
    if changes and not run.dry_run:
        await update_assistant(run.tx, **common, writer=run.writer)
    changes += await sync_children(
        run.tx,
        run.access,
        current.id,
        entry,
        kids,
        storage_quota=run.writer.storage_quota,
        dry_run=run.dry_run,
    )
    return _step(UPDATE if changes else UNCHANGED, entry.ref, current, changes)


async def _delete(run: _Run, row: AssistantRecord) -> dict[str, Any]:
    if not run.dry_run:
        await delete_assistant(run.tx, access=run.access, assistant_id=row.id, writer=run.writer)
    return _step(DELETE, str(row.ref), row, [{"path": "deleted", "from": False, "to": True}])
