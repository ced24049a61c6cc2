"""API key use cases: make, list, read, revoke; the caller's own key.

A secret is `ak_` and 32 random bytes (URL-safe base64); it is shown once, in the answer that
made it, and only its SHA-256 is stored, with its first 8 characters (`prefix`) to recognise
it. A key never makes a key with more than it holds: scopes within its own, assistants within
its own, `expires_at` no later than its own (INSUFFICIENT_SCOPE otherwise, nothing made).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_core import PydanticCustomError
from sqlalchemy import bindparam, func, select, update

from app.domain.access import ANY_SCOPE, SCOPE_ORDER, Access, Scope, ordered, requires
from app.domain.audit import record_audit
from app.domain.documents import rfc3339
from app.domain.errors import (
    BadRequest,
    FieldError,
    InsufficientScope,
    NotFound,
    invalid_input,
    validation_failed,
)
from app.domain.fields import NO_CONTROL, NO_NUL, Identifier, Input, NotNull, limits
from app.models import ApiKey, Assistant, Organisation, new_id, utcnow
from app.store import Statement, Tx, in_list
from app.store.records import ApiKeyRecord
from app.store.statements import insert_statement

SECRET_PREFIX = "ak_"
PREFIX_LENGTH = 8
MAX_KEYS = 100  # unrevoked keys per organisation
MAX_KEY_ASSISTANTS = 100
CLI_KEY_NAME = "Command-line key"
FIRST_KEY_NAME = "First key"


def hash_key(token: str) -> str:
    """The SHA-256 of a secret: all that is stored (and all that is ever logged)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


# -- the body of a new key ------------------------------------------------------------------


def _instant(value: Any) -> Any:
    """An RFC 3339 date-time with its offset (a string), or a datetime with a zone."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)  # `Z` included (Python 3.11)
        except ValueError:
            raise PydanticCustomError("date_time", "must be an RFC 3339 date-time") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise PydanticCustomError(
                "date_time", "must carry a time zone, e.g. 2030-01-31T12:00:00Z"
            )
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):  # e.g. 9999-12-31T23:59:59-23:59
            raise PydanticCustomError("date_time", "is out of range") from None
    return value


def _in_the_future(value: datetime) -> datetime:
    if value <= utcnow():
        raise PydanticCustomError("past", "must be in the future")
    return value


KeyName = Annotated[str, limits(1, 200, strip=True), NO_NUL, NO_CONTROL]
ScopeName = Literal[
    "assistants:read", "assistants:write", "api_keys:manage", "webhooks:manage", "audit:read"
]
Expiry = Annotated[datetime, BeforeValidator(_instant), AfterValidator(_in_the_future)]


class ApiKeyCreate(Input):
    """Body of `POST /orgs/{org_id}/api-keys` and of `CreateApiKeyInput`."""

    name: Annotated[KeyName, NotNull]
    scopes: Annotated[list[ScopeName], NotNull, Field(min_length=1, max_length=10)]
    assistant_ids: (
        Annotated[list[Identifier], Field(min_length=1, max_length=MAX_KEY_ASSISTANTS)] | None
    ) = None
    expires_at: Expiry | None = None


def _parse(body: Any) -> ApiKeyCreate:
    if not isinstance(body, Mapping):
        raise BadRequest("the body must be a JSON object")
    try:
        return ApiKeyCreate.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from None


# -- statements -------------------------------------------------------------------------------

# mypy ignore below: SQLModel's metaclass sets __table__
KEYS = ApiKey.__table__  # type: ignore[attr-defined]
_ORGS = Organisation.__table__  # type: ignore[attr-defined]
# what a request's key lookup reads of its key (app/auth.py): what the key may do, and when
ACCESS_COLUMNS = (
    KEYS.c.id,
    KEYS.c.org_id,
    KEYS.c.scopes,
    KEYS.c.assistant_ids,
    KEYS.c.expires_at,
    KEYS.c.last_used_at,
    KEYS.c.name,
    KEYS.c.prefix,
)
# mypy ignore below: SQLModel's metaclass sets __table__
_ASSISTANTS = Assistant.__table__  # type: ignore[attr-defined]
_INSERT = insert_statement(KEYS, returning=True)
_ORG_FOR_UPDATE = Statement(
    select(_ORGS.c.id).where(_ORGS.c.id == bindparam("org_id")).with_for_update()
)
_UNREVOKED = Statement(
    select(func.count())
    .select_from(KEYS)
    .where(KEYS.c.org_id == bindparam("org_id"), KEYS.c.revoked_at.is_(None))
)
_LIVE_ASSISTANTS = Statement(
    select(_ASSISTANTS.c.id).where(
        _ASSISTANTS.c.org_id == bindparam("org_id"),
        _ASSISTANTS.c.deleted.is_(False),
        in_list(_ASSISTANTS.c.id, "ids"),
    )
)
_OF_ORG = KEYS.c.org_id == bindparam("org_id")
_PAGE = Statement(
    select(KEYS)
    .where(_OF_ORG)
    .order_by(KEYS.c.created_at, KEYS.c.id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_COUNT = Statement(select(func.count()).select_from(KEYS).where(_OF_ORG))
_ONE = Statement(select(KEYS).where(_OF_ORG, KEYS.c.id == bindparam("key_id")))
_BY_ID = Statement(select(KEYS).where(KEYS.c.id == bindparam("key_id")))
_REVOKE = Statement(
    update(KEYS)
    .where(KEYS.c.id == bindparam("key_id"), KEYS.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)


# -- making a key -----------------------------------------------------------------------------


async def _unknown_assistants(tx: Tx, org_id: str, ids: list[str]) -> list[FieldError]:
    found = {row[0] for row in await tx.all(_LIVE_ASSISTANTS, {"org_id": org_id, "ids": ids})}
    return [
        FieldError(("assistant_ids", index), "no such assistant in this organisation")
        for index, assistant_id in enumerate(ids)
        if assistant_id not in found
    ]


def _check_no_escalation(access: Access, data: ApiKeyCreate) -> None:
    """A key makes no key with more than it holds (INSUFFICIENT_SCOPE otherwise)."""
    for scope in SCOPE_ORDER:
        if scope in data.scopes and scope not in access.scopes:
            raise InsufficientScope(
                f"this API key lacks the scope '{scope}': it cannot give it to a new key",
                scope,
                use_case="create_api_key",
            )
    if access.assistant_ids is not None and (
        data.assistant_ids is None or not set(data.assistant_ids) <= access.assistant_ids
    ):
        raise InsufficientScope(
            "this API key is restricted to some assistants: a new key must be restricted to "
            "some of them ('assistant_ids')",
            use_case="create_api_key",
        )
    if access.expires_at is not None and (
        data.expires_at is None or data.expires_at > access.expires_at
    ):
        raise InsufficientScope(
            f"this API key expires at {rfc3339(access.expires_at)}: a new key must expire no "
            "later ('expires_at')",
            use_case="create_api_key",
        )


async def _check_room(tx: Tx, org_id: str) -> None:
    """At most MAX_KEYS unrevoked keys; the organisation's row is locked first, so that two
    keys made at once cannot both take the last place."""
    await tx.first(_ORG_FOR_UPDATE, {"org_id": org_id})
    if int(await tx.scalar(_UNREVOKED, {"org_id": org_id}) or 0) >= MAX_KEYS:
        message = f"an organisation holds at most {MAX_KEYS} unrevoked API keys: revoke one first"
        raise invalid_input([FieldError(("api_keys",), message)])


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


@requires(Scope.MANAGE)
async def create_api_key(tx: Tx, *, access: Access, body: Any) -> tuple[ApiKeyRecord, str]:
    """A new key of the caller's organisation: (its record, its secret, shown this once)."""
    data = _parse(body)
    assistant_ids = None if data.assistant_ids is None else _unique(data.assistant_ids)
    if assistant_ids is not None and (
        errors := await _unknown_assistants(tx, access.org_id, assistant_ids)
    ):
        raise invalid_input(errors)
    _check_no_escalation(access, data)
    await _check_room(tx, access.org_id)
    token = new_secret()
    values = {
        "id": new_id(),
        "org_id": access.org_id,
        "key_hash": hash_key(token),
        "created_at": utcnow(),
        "revoked_at": None,
        "name": data.name,
        "prefix": token[:PREFIX_LENGTH],
        "scopes": ordered(data.scopes),
        "assistant_ids": assistant_ids,
        "expires_at": data.expires_at,
        "last_used_at": None,
    }
    key = await tx.first(_INSERT, values, ApiKeyRecord)
    assert key is not None
    await record_audit(tx, access, "api_key.create", "api_key", key.id)
    return key, token


# -- reading and revoking ---------------------------------------------------------------------


@requires(Scope.MANAGE)
async def list_api_keys(
    tx: Tx, *, access: Access, limit: int, offset: int = 0
) -> list[ApiKeyRecord]:
    """The organisation's keys, revoked ones too, oldest first (a new key goes last)."""
    parameters = {"org_id": access.org_id, "limit": limit, "offset": offset}
    return await tx.all(_PAGE, parameters, ApiKeyRecord)


@requires(Scope.MANAGE)
async def count_api_keys(tx: Tx, *, access: Access) -> int:
    return int(await tx.scalar(_COUNT, {"org_id": access.org_id}) or 0)


async def _key_of_org(tx: Tx, org_id: str, key_id: str) -> ApiKeyRecord:
    key = await tx.first(_ONE, {"org_id": org_id, "key_id": key_id}, ApiKeyRecord)
    if key is None:
        raise NotFound(f"no API key '{key_id}' in this organisation")
    return key


@requires(Scope.MANAGE)
async def get_api_key(tx: Tx, *, access: Access, key_id: str) -> ApiKeyRecord:
    return await _key_of_org(tx, access.org_id, key_id)


@requires(Scope.MANAGE)
async def revoke_api_key(tx: Tx, *, access: Access, key_id: str) -> ApiKeyRecord:
    """Revokes a key of the organisation (the caller's own too); it stops working at once, in
    every process. Revoking a revoked key changes nothing."""
    key = await _key_of_org(tx, access.org_id, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await tx.execute(_REVOKE, {"key_id": key.id, "now": key.revoked_at})
    await record_audit(tx, access, "api_key.revoke", "api_key", key.id)
    return key


@requires(ANY_SCOPE)
async def current_api_key(tx: Tx, *, access: Access) -> ApiKeyRecord:
    """The caller's own key (whatever its scopes)."""
    if access.key_id is None:
        raise NotFound("the command line uses no API key")
    key = await _key_of_org(tx, access.org_id, access.key_id)
    if access.last_used_at is not None and (
        key.last_used_at is None or key.last_used_at < access.last_used_at
    ):
        key.last_used_at = access.last_used_at  # this very use, being written meanwhile
    return key


def key_document(key: ApiKeyRecord) -> dict[str, Any]:
    """The documented JSON of a key (never its hash)."""
    return {
        "id": key.id,
        "org_id": key.org_id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": ordered(key.scopes),
        "assistant_ids": None if key.assistant_ids is None else list(key.assistant_ids),
        "expires_at": None if key.expires_at is None else rfc3339(key.expires_at),
        "created_at": rfc3339(key.created_at),
        "last_used_at": None if key.last_used_at is None else rfc3339(key.last_used_at),
        "revoked_at": None if key.revoked_at is None else rfc3339(key.revoked_at),
    }


# -- the command line (no API key: the organisation is named, every scope is held) ------------


async def organisation_access(tx: Tx, org_id: str) -> Access:
    """The command line's access to an existing organisation."""
    if await tx.first(_ORG_FOR_UPDATE, {"org_id": org_id}) is None:
        raise NotFound(f"no organisation '{org_id}'")
    return Access.everything(org_id)


async def revoke_any_key(tx: Tx, *, key_id: str) -> ApiKeyRecord:
    """Revokes a key of any organisation by its id (`keys revoke KEY_ID`)."""
    key = await tx.first(_BY_ID, {"key_id": key_id}, ApiKeyRecord)
    if key is None:
        raise NotFound(f"no API key '{key_id}'")
    return await revoke_api_key(tx, access=Access.everything(key.org_id), key_id=key_id)
