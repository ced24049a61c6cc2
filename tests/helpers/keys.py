"""Keys with each scope for tests: made over REST by the organisation's first key, and a
snapshot of everything stored, to show that a refused request changed nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, update

from app.auth import revoke_key
from app.models import (
    Action,
    ApiKey,
    Assistant,
    AssistantEnvironment,
    AssistantRelease,
    AssistantRevision,
    Avatar,
    Integration,
)
from app.store import Store
from tests.helpers.factories import Org

READ, WRITE, MANAGE = "assistants:read", "assistants:write", "api_keys:manage"
HOOKS = "webhooks:manage"
ALL = [READ, WRITE, MANAGE]  # every scope before webhooks
KEYS = ApiKey.__table__  # type: ignore[attr-defined]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def make_key(client: httpx.AsyncClient, admin: Org, scopes: list[str], **extra: Any) -> Org:
    """A key made over REST by `admin` (its secret, from the answer that made it)."""
    body = {"name": extra.pop("name", "test key"), "scopes": scopes, **extra}
    response = await client.post("/orgs/c/api-keys", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    made = response.json()
    return Org(admin.org_id, made["id"], made["api_key"])


@dataclass
class Target:
    """A fresh assistant with one integration, one action and two revisions."""

    assistant_id: str
    integration_id: str
    action_id: str


async def make_target(client: httpx.AsyncClient, admin: Org, name: str = "Target") -> Target:
    headers = admin.headers
    created = await client.post("/orgs/c/assistants", json={"name": name}, headers=headers)
    assert created.status_code == 201, created.text
    base = f"/orgs/c/assistants/{created.json()['id']}"
    integration = await client.post(
        f"{base}/integrations", json={"integration_id": "whatsapp"}, headers=headers
    )
    action = await client.post(
        f"{base}/actions", json={"action_id": "TOOLS:HTTP_REQUEST", "name": "call"}, headers=headers
    )
    patched = await client.patch(base, json={"name": f"{name} 2"}, headers=headers)
    assert (integration.status_code, action.status_code, patched.status_code) == (201, 201, 200)
    return Target(created.json()["id"], integration.json()["id"], action.json()["id"])


TABLES = [
    Assistant,
    Integration,
    Action,
    AssistantRevision,
    ApiKey,
    Avatar,
    AssistantRelease,
    AssistantEnvironment,
]


async def everything(db: Store, avatars_dir: Path | None = None) -> dict[str, Any]:
    """Every stored row (but when keys were last used, which any request may write), and the
    avatar files."""
    snapshot: dict[str, Any] = {}
    async with db.read() as tx:
        for model in TABLES:
            table = model.__table__  # type: ignore[attr-defined]
            columns = [c for c in table.c if c.key != "last_used_at"]
            rows = await tx.all(select(*columns))
            snapshot[table.name] = sorted(rows, key=repr)
    if avatars_dir is not None:
        snapshot["files"] = files_in(avatars_dir)
    return snapshot


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*")) if directory.exists() else []


async def end_the_key(how: str, client: httpx.AsyncClient, db: Store, admin: Org, key: Org) -> str:
    """Revokes the key (with the command line's use case, or over REST) or makes it expire (as
    if its time had come); the reason its streams give when they close."""
    if how == "revoked":
        async with db.write() as tx:
            await revoke_key(tx, key_id=key.key_id)
    elif how == "revoked over REST":
        response = await client.delete(f"/orgs/c/api-keys/{key.key_id}", headers=admin.headers)
        assert response.status_code == 204
    else:
        past = datetime.now(UTC) - timedelta(seconds=1)
        async with db.write() as tx:
            await tx.execute(update(KEYS).where(KEYS.c.id == key.key_id).values(expires_at=past))
        return "the API key has expired"
    return "the API key was revoked"
