"""Who calls, and what they may do: scopes, assistant-bound keys, and the one check.

Every use case a transport calls declares the scope it needs, next to itself:

    @requires(Scope.WRITE)
    async def update_assistant(tx: Tx, *, access: Access, assistant_id: str, ...) -> ...

`requires` records the scope (`required_scope(update_assistant)`) and wraps the use case so that
calling it checks the caller's `access` first (`check_scope`): REST, GraphQL, the event stream
and the subscription all call use cases, so none of them can skip or re-decide the check. The
helpers that use cases share (`find_assistant`, …) are not decorated: only the entry point a
transport calls is checked, once.

An `Access` is the caller: the API key's id (None on the command line), its organisation, its
scopes, and the assistants it is restricted to (None: every assistant of the organisation). A
restricted key sees only those: any other assistant is NOT_FOUND, as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, ParamSpec, TypeVar

from app.domain.errors import InsufficientScope

P = ParamSpec("P")
R = TypeVar("R")


class Scope(StrEnum):
    READ = "assistants:read"
    WRITE = "assistants:write"
    MANAGE = "api_keys:manage"
    WEBHOOKS = "webhooks:manage"
    AUDIT = "audit:read"


SCOPE_ORDER: Final = (Scope.READ, Scope.WRITE, Scope.MANAGE, Scope.WEBHOOKS, Scope.AUDIT)
ALL_SCOPES: Final = frozenset(SCOPE_ORDER)
ANY_SCOPE: Final = "any"  # declared by what every key may do (its own description)


def ordered(scopes: Collection[str]) -> list[str]:
    """Scope names in their documented order (read, write, manage, webhooks, audit)."""
    return [str(scope) for scope in SCOPE_ORDER if scope in scopes]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a call comes from, for the audit log (docs/audit-log.md): the transport (`rest`,
    `graphql`, `websocket` or `cli`) and the request's id, client address and User-Agent."""

    transport: str
    request_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None


CLI_ORIGIN: Final = Origin("cli")


@dataclass(frozen=True, slots=True)
class Access:
    key_id: str | None  # None: the command line
    org_id: str
    scopes: frozenset[str] = ALL_SCOPES
    assistant_ids: frozenset[str] | None = None  # None: every assistant of the organisation
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    key_name: str | None = None
    key_prefix: str | None = None
    origin: Origin = CLI_ORIGIN
    # False inside a request that writes its own single audit entry (a bundle apply): the use
    # cases it runs write none (docs/audit-log.md)
    audited: bool = True

    @classmethod
    def everything(cls, org_id: str) -> Access:
        """The command line's access: every scope, every assistant of the organisation."""
        return cls(key_id=None, org_id=org_id)

    @property
    def bound(self) -> bool:
        """Restricted to some assistants."""
        return self.assistant_ids is not None

    def sees(self, assistant_id: str) -> bool:
        return self.assistant_ids is None or assistant_id in self.assistant_ids


_REQUIRED: dict[Callable[..., Any], str] = {}


def check_scope(
    access: Access, scope: str, use_case: str | None = None, arguments: dict[str, Any] | None = None
) -> None:
    """The check: INSUFFICIENT_SCOPE unless the caller holds `scope` (any scope for ANY_SCOPE).
    The refusal names the use case and the ids it was called with, for its audit entry."""
    if scope != ANY_SCOPE and scope not in access.scopes:
        ids = {
            name: value
            for name, value in (arguments or {}).items()
            if name.endswith("_id") and isinstance(value, str)
        }
        raise InsufficientScope(
            f"this API key lacks the scope '{scope}'",
            scope,
            use_case=use_case,
            access=access,
            resource_ids=ids,
        )


def requires(scope: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declares the scope a use case needs and checks it on every call (see the module doc)."""

    def declare(use_case: Callable[P, R]) -> Callable[P, R]:
        name = use_case.__name__

        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            # mypy ignore below: every use case takes access=Access by keyword
            check_scope(kwargs["access"], scope, name, kwargs)  # type: ignore[arg-type]
            return use_case(*args, **kwargs)  # the coroutine itself: no extra frame per call

        checked.__name__ = use_case.__name__
        checked.__qualname__ = use_case.__qualname__
        checked.__doc__ = use_case.__doc__
        checked.__module__ = use_case.__module__
        # mypy ignore below: functools' convention, not in Callable's type
        checked.__wrapped__ = use_case  # type: ignore[attr-defined]
        _REQUIRED[checked] = scope
        return checked

    return declare


def required_scope(use_case: Any) -> str | None:
    """The scope a use case declared with `requires` (None: not a use case)."""
    try:
        return _REQUIRED.get(use_case)
    except TypeError:  # not hashable: not a use case
        return None


def check_use(access: Access, use_case: Callable[..., Any]) -> None:
    """The check of `use_case`, made before the call (before reading a large body, say)."""
    scope = required_scope(use_case)
    if scope is None:
        raise TypeError(f"{use_case!r} declares no scope")
    check_scope(access, scope, getattr(use_case, "__name__", None))
