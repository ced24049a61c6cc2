"""The integrations and actions of one bundle entry against those of its assistant
(docs/bundles.md, "Matching"): matched by key, changed through their own use cases.

An integration's key is its `integration_id`, an action's its `name`; the second of the same
is `<key>~2`, and so on. A matched child whose fields differ is updated (only what differs);
an action whose `action_id` differs is replaced (deleted, then created); unmatched children of
the assistant are deleted and unmatched ones of the entry created; when the actions' order
then differs from the entry's, they are reordered. Changes are leaves in the revisions'
format: `integrations.<key>.<field>`, `actions.<key>` (added or removed) and `actions.order`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from app.domain.access import Access
from app.domain.actions import create_action, delete_action, reorder_actions, update_action
from app.domain.bundle_format import BundleAssistant, action_entry, integration_entry
from app.domain.child_input import MAX_REORDER
from app.domain.integrations import create_integration, delete_integration, update_integration
from app.store import Tx

POSITION_STEP = 100
INTEGRATION_FIELDS = ("enabled", "connection_id", "config")
ACTION_FIELDS = ("enabled", "instructions", "connection_id", "config")


def keyed(items: Sequence[Any], base: Callable[[Any], str]) -> dict[str, Any]:
    """{key: item}: the key is `base(item)`, then `base~2`, `base~3` for the next of the same."""
    seen: Counter[str] = Counter()
    out: dict[str, Any] = {}
    for item in items:
        name = base(item)
        seen[name] += 1
        out[name if seen[name] == 1 else f"{name}~{seen[name]}"] = item
    return out


def entry_integrations(entry: BundleAssistant) -> dict[str, dict[str, Any]]:
    return keyed([i.model_dump() for i in entry.integrations], lambda d: d["integration_id"])


def entry_actions(entry: BundleAssistant) -> dict[str, dict[str, Any]]:
    return keyed([a.model_dump() for a in entry.actions], lambda d: d["name"])


def added(kind: str, key: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {"path": f"{kind}.{key}", "from": None, "to": doc}


def _field_changes(
    kind: str, key: str, old: dict[str, Any], new: dict[str, Any], fields: Sequence[str]
) -> list[dict[str, Any]]:
    return [
        {"path": f"{kind}.{key}.{name}", "from": old[name], "to": new[name]}
        for name in fields
        if old[name] != new[name]
    ]


class ChildSync:
    """One entry's children against its assistant's, carried out unless `dry_run`."""

    def __init__(
        self, tx: Tx, access: Access, assistant_id: str, storage_quota: int, dry_run: bool
    ) -> None:
        self.tx, self.access, self.assistant_id = tx, access, assistant_id
        self.storage_quota, self.dry_run = storage_quota, dry_run

    def _args(self) -> dict[str, Any]:
        return {"access": self.access, "assistant_id": self.assistant_id}

    async def integrations(self, entry: BundleAssistant, rows: list[Any]) -> list[dict[str, Any]]:
        current = keyed(rows, lambda row: row.integration_id)
        wanted = entry_integrations(entry)
        changes: list[dict[str, Any]] = []
        for key, row in current.items():
            if key not in wanted:
                changes.append(
                    {"path": f"integrations.{key}", "from": integration_entry(row), "to": None}
                )
                if not self.dry_run:
                    await delete_integration(self.tx, **self._args(), integration_id=row.id)
        for key, doc in wanted.items():
            row = current.get(key)
            if row is None:
                changes.append(added("integrations", key, doc))
                if not self.dry_run:
                    await create_integration(
                        self.tx, **self._args(), body=doc, storage_quota=self.storage_quota
                    )
                continue
            diff = _field_changes(
                "integrations", key, integration_entry(row), doc, INTEGRATION_FIELDS
            )
            changes += diff
            if diff and not self.dry_run:
                patch = {c["path"].rsplit(".", 1)[1]: c["to"] for c in diff}
                await update_integration(
                    self.tx,
                    **self._args(),
                    integration_id=row.id,
                    patch=patch,
                    storage_quota=self.storage_quota,
                )
        return changes

    async def actions(self, entry: BundleAssistant, rows: list[Any]) -> list[dict[str, Any]]:
        current = keyed(rows, lambda row: row.name)
        wanted = entry_actions(entry)
        changes: list[dict[str, Any]] = []
        ids: dict[str, str] = {}  # key → the id of the action that holds it afterwards
        for key, row in current.items():
            doc = wanted.get(key)
            if doc is None or doc["action_id"] != row.action_id:
                changes.append({"path": f"actions.{key}", "from": action_entry(row), "to": doc})
                if not self.dry_run:
                    await delete_action(self.tx, **self._args(), action_id=row.id)
                continue
            ids[key] = row.id
            diff = _field_changes("actions", key, action_entry(row), doc, ACTION_FIELDS)
            changes += diff
            if diff and not self.dry_run:
                patch = {c["path"].rsplit(".", 1)[1]: c["to"] for c in diff}
                await update_action(
                    self.tx,
                    **self._args(),
                    action_id=row.id,
                    patch=patch,
                    storage_quota=self.storage_quota,
                )
        kept_order = [key for key in current if key in ids]
        for key, doc in wanted.items():
            if key in ids:
                continue
            if not any(c["path"] == f"actions.{key}" for c in changes):
                changes.append(added("actions", key, doc))
            if not self.dry_run:
                created = await create_action(
                    self.tx, **self._args(), body=doc, storage_quota=self.storage_quota
                )
                ids[key] = created.id
            kept_order.append(key)
        order = list(wanted)
        if kept_order != order:
            changes.append({"path": "actions.order", "from": list(current), "to": order})
            if not self.dry_run:
                await self._reorder([ids[key] for key in order])
        return changes

    async def _reorder(self, ids: list[str]) -> None:
        positions = [
            {"id": action_id, "position": (index + 1) * POSITION_STEP}
            for index, action_id in enumerate(ids)
        ]
        for start in range(0, len(positions), MAX_REORDER):
            body = {"positions": positions[start : start + MAX_REORDER]}
            await reorder_actions(self.tx, **self._args(), body=body)


async def sync_children(
    tx: Tx,
    access: Access,
    assistant_id: str,
    entry: BundleAssistant,
    kids: tuple[list[Any], list[Any]],
    *,
    storage_quota: int,
    dry_run: bool,
) -> list[dict[str, Any]]:
    """The changes of the entry's children (carried out unless `dry_run`)."""
    sync = ChildSync(tx, access, assistant_id, storage_quota, dry_run)
    return await sync.integrations(entry, kids[0]) + await sync.actions(entry, kids[1])
