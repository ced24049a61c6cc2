"""The demo organisation of `make run`: one organisation, one assistant, one API key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import create_organisation, hash_key
from app.domain.actions import create_action
from app.domain.assistants import create_assistant
from app.domain.integrations import create_integration
from app.domain.revisions import CLI_WRITER
from app.models import ApiKey, Assistant
from app.settings import Settings


async def _still_valid(session: AsyncSession, demo: dict[str, Any]) -> bool:
    key = await session.scalar(
        select(ApiKey.id).where(
            ApiKey.key_hash == hash_key(demo["api_key"]),
            ApiKey.revoked_at.is_(None),  # type: ignore[union-attr]
        )
    )
    assistant = await session.scalar(
        select(Assistant.id).where(
            Assistant.id == demo["assistant_id"], Assistant.deleted.is_(False)
        )  # type: ignore[attr-defined]
    )
    return key is not None and assistant is not None


async def ensure_demo(session: AsyncSession, settings: Settings, path: Path) -> dict[str, Any]:
    """Reuses the demo recorded in `path` while it still works; otherwise makes a new one."""
    if path.exists():
        demo: dict[str, Any] = json.loads(path.read_text())
        if await _still_valid(session, demo):
            return demo
    org, key_id, token = await create_organisation(session, name="Demo organisation")
    assistant = await create_assistant(
        session,
        org_id=org.id,
        body={"name": "Demo assistant", "config": {"tts": {"voice_id": "v1"}}},
        default_model=settings.default_model,
        writer=CLI_WRITER,
    )
    await create_integration(
        session, org_id=org.id, assistant_id=assistant.id, body={"integration_id": "whatsapp"}
    )
    await create_action(
        session,
        org_id=org.id,
        assistant_id=assistant.id,
        body={
            "action_id": "TOOLS:HTTP_REQUEST",
            "name": "Order status",
            "instructions": "Look up an order when the customer gives its number.",
            "config": {"input": {"method": "GET"}, "definitions": []},
        },
    )
    demo = {"org_id": org.id, "assistant_id": assistant.id, "key_id": key_id, "api_key": token}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(demo))
    path.chmod(0o600)
    return demo
