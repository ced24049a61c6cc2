"""Per-request DataLoaders: the children of many assistants cost one statement in all.

One loader fetches integrations and actions together (app/domain/children_of_many.py). A
resolver that already holds a transaction primes it (`prime()`), so the children come from that
transaction; what is left loads through at most one read transaction per request, opened on
first use and ended when the request ends (`close()`, called by the view). A socket's loaders
(`shared=False`) open a short transaction per batch instead, never one for the socket's
lifetime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from strawberry.dataloader import DataLoader

from app.domain.children_of_many import Children, children_by_assistant
from app.store import Store, Tx
from app.store.base import Transaction

Family = tuple[list[Any], list[Any]]  # (integrations, actions) of one assistant


class Loaders:
    def __init__(self, store: Store, *, shared: bool = True) -> None:
        self._store = store
        self._shared = shared
        self._lock = asyncio.Lock()
        self._opened: Transaction | None = None
        self._tx: Tx | None = None
        self.children = DataLoader(load_fn=self._children)

    def prime(self, children: Children, assistant_ids: Sequence[str]) -> None:
        """Children loaded by a resolver's own transaction, for the fields that ask for them."""
        for i in assistant_ids:
            family = (children.integrations.get(i, []), children.actions.get(i, []))
            self.children.prime(i, family, force=True)

    async def _children(self, ids: Sequence[str]) -> list[Family]:
        async with self._lock:
            if not self._shared:
                async with self._store.read() as tx:
                    found = await children_by_assistant(tx, ids)
            else:
                found = await children_by_assistant(await self._read_tx(), ids)
        return [(found.integrations.get(i, []), found.actions.get(i, [])) for i in ids]

    async def _read_tx(self) -> Tx:
        if self._tx is None:
            opened = self._store.read()
            self._tx = await opened.__aenter__()
            self._opened = opened
        return self._tx

    async def close(self) -> None:
        """Ends the request's read transaction, if one was opened."""
        opened, self._opened, self._tx = self._opened, None, None
        if opened is not None:
            await opened.__aexit__(None, None, None)
