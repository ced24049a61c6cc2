"""The per-request context: the store, settings, loaders and the caller's API key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from strawberry.types import Info as StrawberryInfo

from app.auth import Principal, authenticate, authorize
from app.domain.revisions import Writer
from app.graphql.loaders import Loaders
from app.settings import Settings
from app.store import Store, Tx


@dataclass
class Context:
    db: Store  # the app's store (`app.state.db`)
    settings: Settings
    authorization: str | None
    request: Any = None
    response: Any = None
    loaders: Loaders = field(init=False)
    _principal: Principal | None = field(default=None, init=False)
    shared_loaders: ClassVar[bool] = True  # one read transaction for the request's loaders

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.db, shared=self.shared_loaders)

    async def org(self, tx: Tx, org_id: str) -> str:
        """The organisation this request may act on (401/403 otherwise)."""
        if self._principal is None:
            self._principal = await authenticate(tx, self.authorization)
            if self.request is not None:  # for the access log and the rate limiter
                self.request.state.principal = self._principal
        return authorize(self._principal, org_id)

    @property
    def principal(self) -> Principal | None:
        return self._principal

    @property
    def writer(self) -> Writer:
        """Who writes, for the revisions (call after `org()` has authenticated)."""
        assert self._principal is not None
        return Writer(self._principal.key_id, "graphql", self.settings.revisions_keep)


Info = StrawberryInfo[Context, None]
