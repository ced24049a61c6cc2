"""The organisation (and key) a test acts as, and the types of the factory fixtures of
`tests/conftest.py` (`make_org`, `new_key`, `make_assistant`, `stored`, `gql`, `make_client`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx


@dataclass
class Org:
    """An organisation and one of its keys: `headers` authenticate as that key."""

    org_id: str
    key_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


class MakeOrg(Protocol):
    """`await make_org("Name")`: a new organisation and its first key (every scope)."""

    async def __call__(self, name: str = "Acme") -> Org: ...


class NewKey(Protocol):
    """`await new_key(org)`: another key of the organisation (every scope)."""

    async def __call__(self, org: Org) -> Org: ...


class MakeAssistant(Protocol):
    """`await make_assistant(org, **body)`: an assistant created over REST (name defaults); the
    answer's body."""

    async def __call__(self, org: Org, **body: Any) -> dict[str, Any]: ...


class Stored(Protocol):
    """`await stored(assistant_id)`: the assistant's row as stored, a plain dict (None: no row)."""

    async def __call__(self, assistant_id: str) -> dict[str, Any] | None: ...


class Gql(Protocol):
    """`await gql(query, variables, org)`: the body of a GraphQL POST answered 200, sent with
    the key of `org` (none when `org` is None)."""

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, org: Org | None = None
    ) -> dict[str, Any]: ...


class MakeClient(Protocol):
    """`await make_client(**overrides)`: a client of another app on the same database, built
    with some settings changed (closed with the test)."""

    async def __call__(self, **overrides: Any) -> httpx.AsyncClient: ...
