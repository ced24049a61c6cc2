"""Per-request DataLoaders: the children of many assistants cost one statement in all, and so
do their environments (with their releases' documents, app/domain/environment_reads.py).

One loader fetches integrations and actions together (app/domain/children_of_many.py). A
resolver that already holds a transaction primes it (`prime()`), so the children come from that
transaction; what is left loads through at most one read transaction per request, opened on
first use and ended when the request ends (`close()`, called by the view). A socket's loaders
(`shared=False`) open a short transaction per batch instead, never one for the socket's
lifetime.

Within a query (never a mutation, whose fields write in turn), the children of one assistant
are read once per request (`children_once`): ten aliases of `assistant(id:)` selecting its
integrations share one read and one decoding of their configs (docs/graphql-bounds.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from app.domain.children_of_many import Children, children_by_assistant
from app.domain.environment_reads import Pinned, environments_by_assistant
from app.store import Store, Tx
from app.store.base import Transaction

T = TypeVar("T")
Family = tuple[list[Any], list[Any]]  # (integrations, actions) of one assistant


class Loaders:
    def __init__(self, store: Store, *, shared: bool = True) -> None:
        self._store = store
        self._shared = shared
        self._lock = asyncio.Lock()
        self._opened: Transaction | None = None
        self._tx: Tx | None = None
        self.children = DataLoader(load_fn=self._children)
        self.environments = DataLoader(load_fn=self._environments)
        # children_once: per assistant id, the read that holds (or will hold) its children
        self._once: dict[str, asyncio.Future[Children | None]] = {}
        # converted: id(rows) -> (rows, their objects)
        self._converted: dict[int, tuple[list[Any], list[Any]]] = {}

    def prime(self, children: Children, assistant_ids: Sequence[str]) -> None:
        """Children loaded by a resolver's own transaction, for the fields that ask for them."""
        for i in assistant_ids:
            family = (children.integrations.get(i, []), children.actions.get(i, []))
            self.children.prime(i, family, force=True)

    def converted(self, rows: list[Any], convert: Callable[[Any], T]) -> list[T]:
        """`[convert(row) for row in rows]`, made once per list of rows the loader answered
        (aliases of one assistant share its integrations' objects, as they share its rows)."""
        found = self._converted.get(id(rows))
        if found is not None and found[0] is rows:
            return found[1]
        made = [convert(row) for row in rows]
        self._converted[id(rows)] = (rows, made)  # the rows kept alive: the id stays theirs
        return made

    async def children_once(self, tx: Tx, ids: Sequence[str]) -> Children | None:
        """`children_by_assistant(tx, ids)` in a query, each assistant's children read once per
        request: None when another resolver of this request has read them or is reading them
        (the `integrations`/`actions` fields then load them through `children`, which waits
        for that read: the resolver's transaction is not held meanwhile, so aliases of one
        assistant hold no connection waiting for each other). A socket's loaders (which live
        as long as the socket) read every time."""
        if not self._shared:
            return await children_by_assistant(tx, ids, stored_configs=True)
        once = self._once
        if all(i in once for i in ids):
            return None
        missing = [i for i in ids if i not in once]
        future: asyncio.Future[Children | None] = asyncio.get_running_loop().create_future()
        for i in missing:
            once[i] = future
        found: Children | None = None
        try:
            found = await children_by_assistant(tx, ids, stored_configs=True)
        finally:
            if found is None:  # failed or cancelled: whoever asks next reads them itself
                for i in missing:
                    if once.get(i) is future:
                        del once[i]
            future.set_result(found)
        return found

    async def _children(self, ids: Sequence[str]) -> list[Family]:
        families: dict[str, Family] = {}
        for i in ids:  # those another resolver read (children_once): its read
            read = await self._once[i] if i in self._once else None
            if read is not None:
                families[i] = (read.integrations.get(i, []), read.actions.get(i, []))
        left = [i for i in ids if i not in families]
        if left:
            found = await self._batch(partial(children_by_assistant, stored_configs=True), left)
            for i in left:
                families[i] = (found.integrations.get(i, []), found.actions.get(i, []))
        return [families[i] for i in ids]

    async def _environments(self, ids: Sequence[str]) -> list[list[Pinned]]:
        found = await self._batch(environments_by_assistant, ids)
        return [found.get(i, []) for i in ids]

    async def _batch(
        self, read: Callable[[Tx, Sequence[str]], Awaitable[T]], ids: Sequence[str]
    ) -> T:
        """`read(tx, ids)` in the request's read transaction (a socket's: a short one of its
        own), one batch at a time."""
        async with self._lock:
            if not self._shared:
                async with self._store.read() as tx:
                    return await read(tx, ids)
            return await read(await self._read_tx(), ids)

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
