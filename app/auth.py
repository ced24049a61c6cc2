"""API keys: generation, hashing (only the SHA-256 of a key is stored), lookup, the org check."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.errors import FieldError, Forbidden, NotFound, Unauthenticated, ValidationFailed
from app.domain.records import core_execute
from app.models import ApiKey, Organisation, new_id, utcnow

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


# built once: SQLAlchemy memoises a statement's cache key, so each request skips building it
_KEY_LOOKUP = select(ApiKey.id, ApiKey.org_id).where(
    ApiKey.key_hash == bindparam("key_hash"),
    ApiKey.revoked_at.is_(None),  # type: ignore[union-attr]
)


async def authenticate(session: AsyncSession, authorization: str | None) -> Principal:
    """The principal of an `Authorization: Bearer …` header; 401 for no, unknown or revoked key."""
    token = bearer_token(authorization)
    if token is None:
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <api_key>'")
    row = (await core_execute(session, _KEY_LOOKUP, {"key_hash": hash_key(token)})).first()
    if row is None:
        raise Unauthenticated("invalid or revoked API key")
    return Principal(key_id=row.id, org_id=row.org_id)


def authorize(principal: Principal, org_id: str) -> str:
    """The organisation a request may act on: `c` is the key's own; any other is 403."""
    if org_id in (OWN_ORG, principal.org_id):
        return principal.org_id
    raise Forbidden("this API key does not open that organisation")


async def create_key(session: AsyncSession, *, org_id: str) -> tuple[str, str]:
    """A new key of the organisation: (key_id, api_key). The key itself is never stored."""
    if await session.get(Organisation, org_id) is None:
        raise NotFound(f"no organisation '{org_id}'")
    key_id = new_id()
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(id=key_id, org_id=org_id, key_hash=hash_key(token), created_at=utcnow()))
    await session.flush()
    return key_id, token


async def create_organisation(session: AsyncSession, *, name: str) -> tuple[Organisation, str, str]:
    name = name.strip()
    if not 1 <= len(name) <= 1024:
        raise ValidationFailed("invalid name", [FieldError(("name",), "must be 1-1024 characters")])
    org = Organisation(id=new_id(), name=name, created_at=utcnow())
    session.add(org)
    await session.flush()
    key_id, token = await create_key(session, org_id=org.id)
    return org, key_id, token


async def revoke_key(session: AsyncSession, *, key_id: str) -> None:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
        .values(revoked_at=utcnow())
    )
    if result.rowcount == 0 and await session.get(ApiKey, key_id) is None:  # type: ignore[attr-defined]
        raise NotFound(f"no API key '{key_id}'")
