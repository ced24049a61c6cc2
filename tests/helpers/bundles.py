"""What the bundle tests share: an organisation worth exporting, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.factories import Org

ROOT = Path(__file__).resolve().parent.parent.parent
KIND = "assistants-api/bundle"


def bundle(*assistants: dict[str, Any]) -> dict[str, Any]:
    return {"kind": KIND, "version": 1, "assistants": list(assistants)}


async def seed(client: httpx.AsyncClient, org: Org) -> list[dict[str, Any]]:
    """Three assistants: one with a ref, children and a full config; one with a ref only; one
    without a ref (exported under its id)."""
    headers = org.headers
    base = f"/orgs/{org.org_id}/assistants"
    made = []
    bodies: list[dict[str, Any]] = [
        {
            "name": "Support",
            "ref": "support",
            "enabled": False,
            "config": {
                "language": "pt-BR",
                "instructions": "Be kind.",
                "tts": {"voice_id": "v1"},
                "conversation": {"suggested_messages": ["Hi", "Help"], "enable_memories": True},
            },
        },
        {"name": "Sales", "ref": "sales"},
        {"name": "No ref"},
    ]
    for body in bodies:
        answer = await client.post(base, json=body, headers=headers)
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
    support = f"{base}/{made[0]['id']}"
    for integration in (
        {"integration_id": "whatsapp", "config": {"phone": "+351"}},
        {"integration_id": "internal", "enabled": False},
    ):
        answer = await client.post(f"{support}/integrations", json=integration, headers=headers)
        assert answer.status_code == 201, answer.text
    for action in (
        {"action_id": "TOOLS:HTTP_REQUEST", "name": "Lookup", "config": {"input": {"u": 1}}},
        {"action_id": "TOOLS:EMAIL", "name": "Mail", "instructions": "Short."},
    ):
        answer = await client.post(f"{support}/actions", json=action, headers=headers)
        assert answer.status_code == 201, answer.text
    return made


class BundleCli:
    """`python -m app export|apply` in a subprocess on the test's database."""

    def __init__(self, database_url: str, tmp_path: Path) -> None:
        self.env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
        self.tmp_path = tmp_path

    def run(
        self, *args: str, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", *args],
            input=stdin,
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def export(self, org_id: str, *args: str) -> str:
        done = self.run("export", org_id, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def write(self, text: str, name: str = "bundle.json") -> Path:
        path = self.tmp_path / name
        path.write_text(text)
        return path

    def apply(self, path: Path, org_id: str, *args: str, **env: str) -> dict[str, Any]:
        done = self.run("apply", str(path), "--org", org_id, *args, **env)
        assert done.returncode == 0, done.stderr
        plan: dict[str, Any] = json.loads(done.stdout)
        return plan
