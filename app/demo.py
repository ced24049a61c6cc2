"""The demo organisation of `make run`: one organisation, one assistant, one API key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select

from app.auth import create_organisation, hash_key
from app.domain.access import Access
from app.domain.actions import create_action
from app.domain.assistants import create_assistant
from app.domain.integrations import create_integration
from app.domain.revisions import Writer
from app.models import ApiKey, Assistant
from app.settings import Settings
from app.store import Statement, Tx

DEMO_FILE = Path("data/demo.json")  # written by `python -m app demo`, relative to the cwd

# mypy ignore below: SQLModel's metaclass sets __table__
_KEYS = ApiKey.__table__  # type: ignore[attr-defined]
_ASSISTANTS = Assistant.__table__  # type: ignore[attr-defined]
_LIVE_KEY = Statement(
    select(_KEYS.c.id).where(
        _KEYS.c.key_hash == bindparam("key_hash"), _KEYS.c.revoked_at.is_(None)
    )
)
_LIVE_ASSISTANT = Statement(
    select(_ASSISTANTS.c.id).where(
        _ASSISTANTS.c.id == bindparam("assistant_id"), _ASSISTANTS.c.deleted.is_(False)
    )
)


async def _still_valid(tx: Tx, demo: dict[str, Any]) -> bool:
    key = await tx.first(_LIVE_KEY, {"key_hash": hash_key(demo["api_key"])})
    assistant = await tx.first(_LIVE_ASSISTANT, {"assistant_id": demo["assistant_id"]})
    return key is not None and assistant is not None


async def ensure_demo(tx: Tx, settings: Settings, path: Path) -> dict[str, Any]:
    """Reuses the demo recorded in `path` while it still works; otherwise makes a new one."""
    if path.exists():
        demo: dict[str, Any] = json.loads(path.read_text())
        if await _still_valid(tx, demo):
            return demo
    org, key_id, token = await create_organisation(tx, name="Demo organisation")
    access = Access.everything(org.id)
    assistant = await create_assistant(
        tx,
        access=access,
        body={"name": "Demo assistant", "config": {"tts": {"voice_id": "v1"}}},
        default_model=settings.default_model,
        writer=Writer(None, "cli", storage_quota=settings.org_storage_quota),
    )
    await create_integration(
        tx,
        access=access,
        assistant_id=assistant.id,
        body={"integration_id": "whatsapp"},
        storage_quota=settings.org_storage_quota,
    )
    await create_action(
        tx,
        access=access,
        assistant_id=assistant.id,
        body={
            "action_id": "TOOLS:HTTP_REQUEST",
            "name": "Order status",
            "instructions": "Look up an order when the customer gives its number.",
            "config": {"input": {"method": "GET"}, "definitions": []},
        },
        storage_quota=settings.org_storage_quota,
    )
    demo = {"org_id": org.id, "assistant_id": assistant.id, "key_id": key_id, "api_key": token}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(demo))
    path.chmod(0o600)
    return demo
