"""API keys: generation, hashing (only the SHA-256 of a key is stored), lookup, the org check."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update

from app.domain.errors import FieldError, Forbidden, NotFound, Unauthenticated, ValidationFailed
from app.models import ApiKey, Organisation, new_id, utcnow
from app.store import Statement, Tx
from app.store.statements import insert_statement

KEY_PREFIX = "ak_"
OWN_ORG = "c"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    org_id: str


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


_KEYS = ApiKey.__table__  # type: ignore[attr-defined]
_KEY_LOOKUP = Statement(
    select(_KEYS.c.id, _KEYS.c.org_id).where(
        _KEYS.c.key_hash == bindparam("key_hash"), _KEYS.c.revoked_at.is_(None)
    )
)


async def authenticate(tx: Tx, authorization: str | None) -> Principal:
    """The principal of an `Authorization: Bearer …` header; 401 for no, unknown or revoked key."""
    token = bearer_token(authorization)
    if token is None:
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <api_key>'")
    row = await tx.first(_KEY_LOOKUP, {"key_hash": hash_key(token)})
    if row is None:
        raise Unauthenticated("invalid or revoked API key")
    return Principal(key_id=row[0], org_id=row[1])


def authorize(principal: Principal, org_id: str) -> str:
    """The organisation a request may act on: `c` is the key's own; any other is 403."""
    if org_id in (OWN_ORG, principal.org_id):
        return principal.org_id
    raise Forbidden("this API key does not open that organisation")


_ORGS = Organisation.__table__  # type: ignore[attr-defined]
_ORG_EXISTS = Statement(select(_ORGS.c.id).where(_ORGS.c.id == bindparam("org_id")))
_INSERT_ORG = insert_statement(_ORGS)
_INSERT_KEY = insert_statement(_KEYS)
_KEY_EXISTS = Statement(select(_KEYS.c.id).where(_KEYS.c.id == bindparam("key_id")))
_REVOKE = Statement(
    update(_KEYS)
    .where(_KEYS.c.id == bindparam("key_id"), _KEYS.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)


async def create_key(tx: Tx, *, org_id: str) -> tuple[str, str]:
    """A new key of the organisation: (key_id, api_key). The key itself is never stored."""
    if await tx.first(_ORG_EXISTS, {"org_id": org_id}) is None:
        raise NotFound(f"no organisation '{org_id}'")
    key_id = new_id()
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    values = {
        "id": key_id,
        "org_id": org_id,
        "key_hash": hash_key(token),
        "created_at": utcnow(),
        "revoked_at": None,
    }
    await tx.execute(_INSERT_KEY, values)
    return key_id, token


async def create_organisation(tx: Tx, *, name: str) -> tuple[Organisation, str, str]:
    """A new organisation and its first API key: (organisation, key_id, api_key)."""
    name = name.strip()
    if not 1 <= len(name) <= 1024:
        raise ValidationFailed("invalid name", [FieldError(("name",), "must be 1-1024 characters")])
    org = Organisation(id=new_id(), name=name, created_at=utcnow())
    await tx.execute(_INSERT_ORG, {"id": org.id, "name": org.name, "created_at": org.created_at})
    key_id, token = await create_key(tx, org_id=org.id)
    return org, key_id, token


async def revoke_key(tx: Tx, *, key_id: str) -> None:
    revoked = await tx.execute(_REVOKE, {"key_id": key_id, "now": utcnow()})
    if revoked == 0 and await tx.first(_KEY_EXISTS, {"key_id": key_id}) is None:
        raise NotFound(f"no API key '{key_id}'")
