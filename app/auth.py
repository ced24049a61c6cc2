"""API keys on every request: the lookup, the org check, and when each key was last used.

The lookup is ONE statement by the secret's SHA-256 that also returns the key's scopes, its
assistants and its expiry, so what a key may do costs nothing more per request (the runtime's
read of an environment reads the same columns in its own statement, and hands them to
`access_of`: docs/releases.md). `last_used_at`
is written at most once a minute per key: an in-process memo of the last write, and a
conditional UPDATE (in its own short transaction, off the request) that changes nothing when
another process wrote it within the minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update

from app.domain.access import CLI_ORIGIN, Access, Origin
from app.domain.audit import record_audit
from app.domain.audit_actions import ORGANISATION_CREATE
from app.domain.errors import FieldError, Forbidden, Unauthenticated, ValidationFailed
from app.domain.keys import (
    ACCESS_COLUMNS,
    CLI_KEY_NAME,
    FIRST_KEY_NAME,
    KEYS,
    create_api_key,
    hash_key,
    organisation_access,
    revoke_any_key,
)
from app.models import Organisation, new_id, utcnow
from app.store import Statement, Store, Tx
from app.store.statements import insert_statement

__all__ = [
    "OWN_ORG",
    "KeyUsage",
    "access_of",
    "authenticate",
    "authorize",
    "bearer_token",
    "create_key",
    "create_organisation",
    "hash_key",
    "required_token",
    "revoke_key",
]

logger = logging.getLogger("app.auth")

OWN_ORG = "c"
USAGE_INTERVAL_SECONDS = 60.0
USAGE_MEMO_SIZE = 10_000


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


_KEY_LOOKUP = Statement(
    select(*ACCESS_COLUMNS).where(
        KEYS.c.key_hash == bindparam("key_hash"), KEYS.c.revoked_at.is_(None)
    )
)
_TOUCH = Statement(
    update(KEYS)
    .where(
        KEYS.c.id == bindparam("key_id"),
        or_(KEYS.c.last_used_at.is_(None), KEYS.c.last_used_at <= bindparam("cutoff")),
    )
    .values(last_used_at=bindparam("now"))
)


class KeyUsage:
    """Writes each key's `last_used_at` at most once a minute (one per process, and the
    conditional UPDATE makes it one in all), in a task of its own, never on the request."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._written: dict[str, float] = {}  # key id: monotonic time of the value stored
        self._tasks: set[asyncio.Task[None]] = set()

    def used(self, key_id: str, stored: datetime | None) -> datetime | None:
        """Notes a use of the key whose stored `last_used_at` is `stored`; the value to show
        for this use (now, when this use is the one written)."""
        now = time.monotonic()
        written = self._written.get(key_id)
        if written is not None and now - written < USAGE_INTERVAL_SECONDS:
            return stored
        wall = utcnow()
        if stored is not None and (age := (wall - stored).total_seconds()) < USAGE_INTERVAL_SECONDS:
            self._remember(key_id, now - max(age, 0.0))  # written lately, by any process
            return stored
        self._remember(key_id, now)
        task = asyncio.get_running_loop().create_task(self._write(key_id, wall))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return wall

    def _remember(self, key_id: str, when: float) -> None:
        if len(self._written) >= USAGE_MEMO_SIZE:
            horizon = time.monotonic() - USAGE_INTERVAL_SECONDS
            self._written = {k: t for k, t in self._written.items() if t > horizon}
        self._written[key_id] = when

    async def _write(self, key_id: str, when: datetime) -> None:
        cutoff = when - timedelta(seconds=USAGE_INTERVAL_SECONDS)
        try:
            async with self._store.write() as tx:
                await tx.execute(_TOUCH, {"key_id": key_id, "now": when, "cutoff": cutoff})
        except Exception as exc:  # noqa: BLE001  (a lost write of a timestamp: tried again later)
            self._written.pop(key_id, None)
            logger.warning("could not record the use of API key %s: %s", key_id, exc)

    async def close(self) -> None:
        """Waits for the writes under way (at shutdown, before the store closes)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)


async def authenticate(
    tx: Tx,
    authorization: str | None,
    usage: KeyUsage | None = None,
    origin: Origin = CLI_ORIGIN,
) -> Access:
    """The caller of an `Authorization: Bearer …` header: 401 for no key, or a key that is
    unknown, revoked or expired. `origin`: where the request comes from (for the audit log)."""
    row = await tx.first(_KEY_LOOKUP, {"key_hash": hash_key(required_token(authorization))})
    return access_of(row, usage, origin)


def required_token(authorization: str | None) -> str:
    """The bearer token of an `Authorization` header; 401 without one."""
    token = bearer_token(authorization)
    if token is None:
        raise Unauthenticated(
            "missing API key: send 'Authorization: Bearer <api_key>'", invalid_token=False
        )
    return token


def access_of(
    row: Sequence[Any] | None, usage: KeyUsage | None = None, origin: Origin = CLI_ORIGIN
) -> Access:
    """The caller whose key lookup found `row` (its first columns: `ACCESS_COLUMNS` of
    app/domain/keys.py, read alone or with what a request reads in the same statement, see
    docs/releases.md); 401 when no key was found or it has expired."""
    if row is None:
        raise Unauthenticated("invalid or revoked API key")
    key_id, org_id, scopes, assistant_ids, expires_at, last_used_at, name, prefix = row[:8]
    if expires_at is not None and expires_at <= utcnow():
        raise Unauthenticated("the API key has expired")
    if usage is not None:
        last_used_at = usage.used(key_id, last_used_at)
    return Access(
        key_id=key_id,
        org_id=org_id,
        scopes=frozenset(scopes),
        assistant_ids=None if assistant_ids is None else frozenset(assistant_ids),
        expires_at=expires_at,
        last_used_at=last_used_at,
        key_name=name,
        key_prefix=prefix,
        origin=origin,
    )


def authorize(access: Access, org_id: str) -> Access:
    """The caller's access to the organisation a request names: `c` is the key's own; any
    other is 403 (whether or not it exists)."""
    if org_id == OWN_ORG or org_id == access.org_id:
        return access
    raise Forbidden("this API key does not open that organisation")


# -- the command line and the tests: organisations and keys by id ------------------------------

# mypy ignore below: SQLModel's metaclass sets __table__
_ORGS = Organisation.__table__  # type: ignore[attr-defined]
_INSERT_ORG = insert_statement(_ORGS)


async def create_key(
    tx: Tx,
    *,
    org_id: str,
    name: str = CLI_KEY_NAME,
    scopes: list[str] | None = None,
    assistant_ids: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, str]:
    """A new key of the organisation (every scope and assistant unless told): (key_id, api_key).
    The secret itself is never stored."""
    access = await organisation_access(tx, org_id)
    body: dict[str, Any] = {"name": name, "scopes": scopes or sorted(access.scopes)}
    if assistant_ids is not None:
        body["assistant_ids"] = assistant_ids
    if expires_at is not None:
        body["expires_at"] = expires_at
    key, token = await create_api_key(tx, access=access, body=body)
    return key.id, token


async def create_organisation(tx: Tx, *, name: str) -> tuple[Organisation, str, str]:
    """A new organisation and its first API key (every scope): (organisation, key_id, api_key)."""
    name = name.strip()
    if not 1 <= len(name) <= 1024:
        raise ValidationFailed("invalid name", [FieldError(("name",), "must be 1-1024 characters")])
    org = Organisation(id=new_id(), name=name, created_at=utcnow())
    values = {"id": org.id, "name": org.name, "created_at": org.created_at, "storage_used": 0}
    await tx.execute(_INSERT_ORG, values)
    await record_audit(tx, Access.everything(org.id), ORGANISATION_CREATE, "organisation", org.id)
    key_id, token = await create_key(tx, org_id=org.id, name=FIRST_KEY_NAME)
    return org, key_id, token


async def revoke_key(tx: Tx, *, key_id: str) -> None:
    """Revokes a key of any organisation by its id (NOT_FOUND when there is none)."""
    await revoke_any_key(tx, key_id=key_id)
