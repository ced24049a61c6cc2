"""Per-request DataLoaders: the children of many assistants cost one statement in all.

One loader fetches integrations and actions together (app/domain/family.py). A resolver that
already holds a transaction primes it (`prime()`), so the children come from that transaction;
what is left loads through at most one read session per request, opened on first use and closed
when the request ends (`close()`, called by the view). A socket's loaders (`shared=False`) open
a short session per batch instead, never one for the socket's lifetime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from app.db import Database
from app.domain.family import Children, children_by_assistant

Family = tuple[list[Any], list[Any]]  # (integrations, actions) of one assistant


class Loaders:
    def __init__(self, db: Database, *, shared: bool = True) -> None:
        self._db = db
        self._shared = shared
        self._lock = asyncio.Lock()
        self._opened: AbstractAsyncContextManager[AsyncSession] | None = None
        self._session: AsyncSession | None = None
        self.children = DataLoader(load_fn=self._children)

    def prime(self, children: Children, assistant_ids: Sequence[str]) -> None:
        """Children loaded by a resolver's own transaction, for the fields that ask for them."""
        for i in assistant_ids:
            family = (children.integrations.get(i, []), children.actions.get(i, []))
            self.children.prime(i, family, force=True)

    async def _children(self, ids: Sequence[str]) -> list[Family]:
        async with self._lock:
            if not self._shared:
                async with self._db.read() as session:
                    found = await children_by_assistant(session, ids)
            else:
                found = await children_by_assistant(await self._read_session(), ids)
        return [(found.integrations.get(i, []), found.actions.get(i, [])) for i in ids]

    async def _read_session(self) -> AsyncSession:
        if self._session is None:
            self._opened = self._db.read()
            self._session = await self._opened.__aenter__()
        return self._session

    async def close(self) -> None:
        """Ends the request's read session, if one was opened."""
        opened, self._opened, self._session = self._opened, None, None
        if opened is not None:
            await opened.__aexit__(None, None, None)
