"""Per-request DataLoaders: the children of many assistants cost one statement each."""

from __future__ import annotations

from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from app.db import Database
from app.domain.actions import actions_by_assistant
from app.domain.integrations import integrations_by_assistant
from app.models import Action, Integration


class Loaders:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.integrations = DataLoader(load_fn=self._integrations)
        self.actions = DataLoader(load_fn=self._actions)

    async def _integrations(self, ids: Sequence[str]) -> list[list[Integration]]:
        async with self._db.read() as session:
            grouped = await integrations_by_assistant(session, ids)
        return [grouped.get(i, []) for i in ids]

    async def _actions(self, ids: Sequence[str]) -> list[list[Action]]:
        async with self._db.read() as session:
            grouped = await actions_by_assistant(session, ids)
        return [grouped.get(i, []) for i in ids]
