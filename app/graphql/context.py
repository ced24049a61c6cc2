"""The per-request context: the store, settings, loaders and the caller's API key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from app.auth import KeyUsage, authenticate, authorize
from app.domain.access import CLI_ORIGIN, Access, Origin
from app.domain.audit import record_denial
from app.domain.errors import InsufficientScope, Unauthenticated
from app.domain.revisions import Writer
from app.graphql.loaders import Loaders
from app.http.origin import origin_of
from app.models import utcnow
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
    _principal: Access | None = field(default=None, init=False)
    # refusals for a missing scope, for their audit entries once the operation is done
    denied: list[InsufficientScope] = field(default_factory=list, init=False)
    shared_loaders: ClassVar[bool] = True  # one read transaction for the request's loaders

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.db, shared=self.shared_loaders)

    async def caller(self, tx: Tx) -> Access:
        """The caller (its API key, authenticated once per request or websocket; 401
        otherwise, also when the key has expired since)."""
        expires_at = None if self._principal is None else self._principal.expires_at
        if expires_at is not None and expires_at <= utcnow():  # a websocket lives on
            raise Unauthenticated("the API key has expired")
        if self._principal is None:
            usage: KeyUsage | None = None
            if self.request is not None:
                usage = getattr(self.request.app.state, "key_usage", None)
            origin = CLI_ORIGIN if self.request is None else self._origin()
            self._principal = await authenticate(tx, self.authorization, usage, origin)
            if self.request is not None:  # for the access log and the rate limiter
                self.request.state.principal = self._principal
        return self._principal

    def _origin(self) -> Origin:
        transport = "websocket" if isinstance(self.request, WebSocket) else "graphql"
        return origin_of(self.request, transport)

    async def record_denials(self) -> None:
        """The audit entries of the operation's refusals for a missing scope (each in a
        transaction of its own: the resolvers' have rolled back)."""
        denied, self.denied = self.denied, []
        for error in denied:
            await record_denial(self.db, error, self._principal)

    async def authenticated(self) -> bool:
        """Whether the request carries a valid API key (its own read transaction; the key is
        then known for the rest of the request)."""
        if self._principal is None and self.authorization is None:
            return False
        try:
            async with self.db.read() as tx:
                await self.caller(tx)
        except Unauthenticated:
            return False
        return True

    async def access(self, tx: Tx, org_id: str) -> Access:
        """The caller's access to the organisation an operation names (401/403 otherwise);
        the use cases check the scope each needs, and which assistants the key sees."""
        return authorize(await self.caller(tx), org_id)

    @property
    def principal(self) -> Access | None:
        return self._principal

    @property
    def writer(self) -> Writer:
        """Who writes, for the revisions (call after `org()` has authenticated)."""
        assert self._principal is not None
        settings = self.settings
        return Writer(
            self._principal.key_id, "graphql", settings.revisions_keep, settings.org_storage_quota
        )


Info = StrawberryInfo[Context, None]
