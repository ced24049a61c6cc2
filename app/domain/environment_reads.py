"""The reads of environments that must stay cheap (docs/releases.md): the runtime's read of one
environment, and the environments of many assistants for a GraphQL page.

The runtime's read is ONE statement, run as a lookup (`Store.lookup`: no transaction): the API
key by the SHA-256 of its secret, the environment by its primary key and the release it points
at by its own, so that the key lookup every request pays and the read share a single trip to
the database. The release's stored text comes back only when its number is not the one the
client already holds (`If-None-Match`), so a 304 never reads the document.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, case, null, select

from app.domain.access import Access, Scope, requires
from app.domain.errors import NotFound
from app.domain.keys import ACCESS_COLUMNS, KEYS
from app.domain.releases import ENVIRONMENTS, RELEASES
from app.store import Statement, Tx, in_list
from app.store.records import EnvironmentRecord

NOT_KNOWN = 0  # `known` when the client holds no single release number (release numbers are ≥ 1)
_PINNED = and_(
    RELEASES.c.assistant_id == ENVIRONMENTS.c.assistant_id,
    RELEASES.c.number == ENVIRONMENTS.c.release,
)
_RUNTIME_READ = Statement(
    select(
        *ACCESS_COLUMNS,
        RELEASES.c.number,
        case((RELEASES.c.number == bindparam("known"), null()), else_=RELEASES.c.document),
    )
    .select_from(
        KEYS.outerjoin(
            ENVIRONMENTS,
            and_(
                ENVIRONMENTS.c.assistant_id == bindparam("assistant_id"),
                ENVIRONMENTS.c.name == bindparam("name"),
            ),
        ).outerjoin(RELEASES, and_(_PINNED, RELEASES.c.org_id == KEYS.c.org_id))
    )
    .where(KEYS.c.key_hash == bindparam("key_hash"), KEYS.c.revoked_at.is_(None))
)
# the environments of many assistants with their releases' stored documents, by assistant
_ENVIRONMENTS_OF_MANY = Statement(
    select(
        ENVIRONMENTS.c.assistant_id,
        ENVIRONMENTS.c.name,
        ENVIRONMENTS.c.release,
        ENVIRONMENTS.c.updated_at,
        RELEASES.c.document,
    )
    .join(RELEASES, _PINNED)
    .where(in_list(ENVIRONMENTS.c.assistant_id, "ids"))
    .order_by(ENVIRONMENTS.c.assistant_id, ENVIRONMENTS.c.name)
)
Pinned = tuple[EnvironmentRecord, str]  # an environment and its release's stored document


async def runtime_read(
    tx: Tx, *, key_hash: str, assistant_id: str, name: str, known: int = NOT_KNOWN
) -> Sequence[Any] | None:
    """The key of `key_hash` (its `ACCESS_COLUMNS`, for app/auth.py's `access_of`), then the
    number of the release `name` points at and its stored document (None when the number is
    `known`), both None when the environment is unknown or of another organisation; None when
    no unrevoked key has that hash. One statement (run it as a lookup)."""
    parameters = {
        "key_hash": key_hash,
        "assistant_id": assistant_id,
        "name": name,
        "known": known,
    }
    return await tx.first(_RUNTIME_READ, parameters)


@requires(Scope.READ)
def pinned_release(
    *, access: Access, row: Sequence[Any], assistant_id: str, name: str
) -> tuple[int, str | None]:
    """(number, stored document or None when it was known) of `runtime_read`'s row, for a
    caller authorised in the organisation; an unknown environment, or an assistant the key does
    not see (or that was deleted: its environments went with it), is NOT_FOUND."""
    number = row[len(ACCESS_COLUMNS)]
    if number is None or not access.sees(assistant_id):
        raise NotFound(f"assistant '{assistant_id}' has no environment '{name}'")
    document: str | None = row[len(ACCESS_COLUMNS) + 1]
    return int(number), document


@requires(Scope.READ)
def check_environments_read(*, access: Access, assistant_id: str) -> None:
    """What reading the environments of an assistant read already (a GraphQL field of it)
    needs: the read scope, and a key that sees it (NOT_FOUND otherwise)."""
    if not access.sees(assistant_id):
        raise NotFound(f"no assistant '{assistant_id}' in this organisation")


async def environments_by_assistant(
    tx: Tx, assistant_ids: Sequence[str]
) -> dict[str, list[Pinned]]:
    """The environments of many assistants (by name) with their releases' documents: one
    statement whatever their number (the assistants are the caller's, read already)."""
    found: dict[str, list[Pinned]] = defaultdict(list)
    if not assistant_ids:
        return found
    rows = await tx.all(_ENVIRONMENTS_OF_MANY, {"ids": list(assistant_ids)})
    for assistant_id, name, release, updated_at, document in rows:
        environment = object.__new__(EnvironmentRecord)
        environment.assistant_id, environment.name = assistant_id, name
        environment.release, environment.updated_at = release, updated_at
        found[assistant_id].append((environment, document))
    return found
