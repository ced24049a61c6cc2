"""The command line through a subprocess, on a SQLite file that the app then serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


EVERY_SCOPE = [
    "assistants:read",
    "assistants:write",
    "api_keys:manage",
    "webhooks:manage",
    "audit:read",
]


class Cli:
    def __init__(self, database_url: str) -> None:
        self.env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def data(self, *args: str) -> dict[str, Any]:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        [line] = done.stdout.splitlines()
        result: dict[str, Any] = json.loads(line)
        return result


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('cli') / 'cli.db'}"


@pytest.fixture(scope="module")
def cli(database_url: str) -> Cli:
    made = Cli(database_url)
    made.data("migrate")
    return made


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the database file the CLI wrote."""
    app = create_app(Settings(database_url=database_url, _env_file=None))  # type: ignore[call-arg]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def test_migrate_is_idempotent(cli):
    assert cli.data("migrate") == {"migrated": True}


def test_orgs_create(cli):
    made = cli.data("orgs", "create", "  Acme Corp  ")
    assert set(made) == {"org_id", "name", "key_id", "api_key"}
    assert made["name"] == "Acme Corp"
    assert made["api_key"]
    assert made["key_id"] != made["api_key"]


async def test_keys_create_revoke_and_the_app_agrees(cli, served):
    org = cli.data("orgs", "create", "Keys")
    key = cli.data("keys", "create", org["org_id"])
    assert set(key) == {"org_id", "key_id", "api_key"}
    assert key["org_id"] == org["org_id"]
    assert key["api_key"] != org["api_key"]

    for api_key in (org["api_key"], key["api_key"]):
        created = await served.post(
            "/orgs/c/assistants", json={"name": "Via CLI key"}, headers=bearer(api_key)
        )
        assert created.status_code == 201, created.text

    assert cli.data("keys", "revoke", key["key_id"]) == {"key_id": key["key_id"], "revoked": True}
    refused = await served.get(f"/orgs/{org['org_id']}/assistants", headers=bearer(key["api_key"]))
    assert refused.status_code == 401
    assert refused.json()["code"] == "UNAUTHENTICATED"
    still = await served.get(f"/orgs/{org['org_id']}/assistants", headers=bearer(org["api_key"]))
    assert still.status_code == 200


async def test_keys_create_with_options_and_keys_list(cli, served):
    org = cli.data("orgs", "create", "Scoped")
    created = await served.post(
        "/orgs/c/assistants", json={"name": "Worker's"}, headers=bearer(org["api_key"])
    )
    assistant_id = created.json()["id"]
    key = cli.data(
        "keys", "create", org["org_id"], "--name", "Conversation worker",
        "--scope", "assistants:read", "--assistant", assistant_id, "--expires-in", "30d",
    )  # fmt: skip
    assert set(key) == {"org_id", "key_id", "api_key"}
    done = cli.run("keys", "list", org["org_id"])
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [k["id"] for k in listed] == [org["key_id"], key["key_id"]]
    assert org["api_key"] not in done.stdout
    assert key["api_key"] not in done.stdout
    first, made = listed
    assert (first["name"], first["assistant_ids"], first["expires_at"]) == ("First key", None, None)
    assert first["scopes"] == EVERY_SCOPE
    assert (made["name"], made["scopes"]) == ("Conversation worker", ["assistants:read"])
    assert made["assistant_ids"] == [assistant_id]
    assert made["prefix"] == key["api_key"][:8]
    assert made["expires_at"] is not None

    headers = bearer(key["api_key"])
    assert (await served.get(f"/orgs/c/assistants/{assistant_id}", headers=headers)).is_success
    refused = await served.patch(
        f"/orgs/c/assistants/{assistant_id}", json={"name": "x"}, headers=headers
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "INSUFFICIENT_SCOPE")
    plain = cli.data("keys", "create", org["org_id"])
    current = await served.get("/orgs/c/api-keys/current", headers=bearer(plain["api_key"]))
    assert current.json()["scopes"] == EVERY_SCOPE
    assert (current.json()["name"], current.json()["assistant_ids"]) == ("Command-line key", None)


async def test_releases_publish_and_environments_pin_and_show(cli, served):
    org = cli.data("orgs", "create", "Releases")
    headers = bearer(org["api_key"])
    created = await served.post("/orgs/c/assistants", json={"name": "One"}, headers=headers)
    assistant_id = created.json()["id"]
    first = cli.data(
        "releases", "publish", org["org_id"], assistant_id, "--environment", "production",
        "--note", "first",
    )  # fmt: skip
    assert (first["number"], first["note"], first["created_by_key_id"]) == (1, "first", None)
    assert first["assistant"]["name"] == "One"
    await served.patch(f"/orgs/c/assistants/{assistant_id}", json={"name": "Two"}, headers=headers)
    second = cli.data("releases", "publish", org["org_id"], assistant_id)
    assert (second["number"], second["assistant"]["name"]) == (2, "Two")
    pinned = cli.data("environments", "pin", org["org_id"], assistant_id, "production", "2")
    assert (pinned["name"], pinned["release"], pinned["number"]) == ("production", 2, 2)
    shown = cli.data("environments", "show", org["org_id"], assistant_id, "production")
    read = await served.get(
        f"/orgs/c/assistants/{assistant_id}/environments/production", headers=headers
    )
    assert shown == read.json() == second
    back = cli.data("environments", "pin", org["org_id"], assistant_id, "production", "1")
    assert back["assistant"]["name"] == "One"
    missing = cli.run("environments", "show", org["org_id"], assistant_id, "staging")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: NOT_FOUND")
    assert missing.stdout == ""


def test_export_schema_equals_the_committed_sdl(cli):
    done = cli.run("export-schema")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "schema.graphql").read_text()


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "revoke", "no-such-key"),
        ("keys", "create", "no-such-org"),
        ("keys", "list", "no-such-org"),
        ("keys", "create", "{org}", "--scope", "assistants:delete"),
        ("keys", "create", "{org}", "--expires-in", "3w"),
        ("keys", "create", "{org}", "--expires-in", "0d"),
        ("keys", "create", "{org}", "--name", ""),
        ("keys", "create", "{org}", "--assistant", "no-such-assistant"),
        ("orgs", "create", "   "),
        ("orgs", "frobnicate"),
    ],
)
def test_errors_go_to_stderr_with_a_non_zero_exit(cli, args):
    if "{org}" in args:
        org_id = cli.data("orgs", "create", "Errors")["org_id"]
        args = tuple(arg.replace("{org}", org_id) for arg in args)
    done = cli.run(*args)
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.strip()
    assert "Traceback" not in done.stderr


def test_unmigrated_database_is_a_clean_error(tmp_path):
    fresh = Cli(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    done = fresh.run("orgs", "create", "Too early")
    assert done.returncode != 0
    assert done.stdout == ""
    assert "migrate" in done.stderr
    assert "Traceback" not in done.stderr
