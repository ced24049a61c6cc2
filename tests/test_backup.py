"""`python -m app backup PATH`: a consistent copy of the SQLite database
taken while a real server writes to it; PostgreSQL is told to use pg_dump (exit 2)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.settings import Settings
from app.store import open_store
from tests.helpers.factories import Org
from tests.helpers.server_process import ROOT, Server, server_env

pytestmark = pytest.mark.slow


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=server_env(settings, 0),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def sqlite_settings(sqlite_template: Path, tmp_path: Path) -> Settings:
    db_file = tmp_path / "assistants.db"
    shutil.copy(sqlite_template, db_file)
    return Settings(
        database_url=f"sqlite+aiosqlite:///{db_file}",
        avatars_dir=tmp_path / "avatars",
        _env_file=None,  # type: ignore[call-arg]
    )


async def make_org(settings: Settings) -> Org:
    from app.auth import create_organisation

    store = open_store(settings)
    try:
        async with store.write() as tx:
            org, key_id, token = await create_organisation(tx, name="Backed up")
    finally:
        await store.close()
    return Org(org.id, key_id, token)


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config(str(ROOT / "alembic.ini")) if (ROOT / "alembic.ini").exists() else Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def test_a_backup_taken_while_the_server_writes_is_consistent(
    sqlite_settings: Settings, tmp_path: Path
):
    org = await make_org(sqlite_settings)
    target = tmp_path / "backups" / "nightly.db"
    target.parent.mkdir()
    committed: list[str] = []  # ids of the creates answered 201
    stop, started = asyncio.Event(), asyncio.Event()

    async def write(http: httpx.AsyncClient) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            response = await http.post("/orgs/c/assistants", json={"name": f"a{n}"})
            assert response.status_code == 201, response.text
            committed.append(response.json()["id"])
            if len(committed) >= 20:
                started.set()

    with Server(sqlite_settings, tmp_path, workers=1) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=org.headers, timeout=60
        ) as http:
            writers = [asyncio.create_task(write(http)) for _ in range(3)]
            await asyncio.wait_for(started.wait(), 60)
            before = len(committed)
            done = await asyncio.to_thread(run_cli, sqlite_settings, "backup", str(target))
            after = len(committed)
            stop.set()
            await asyncio.gather(*writers)
            assert after > before, "the server kept writing during the backup"
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["path"] == str(target.resolve())
    assert printed["bytes"] == target.stat().st_size > 0
    # committed before the backup began ≤ in the copy ≤ committed once it ended (in flight)
    assert before <= printed["assistants"] <= after + 3
    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert copy.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (head_revision(),)
        ]
        ids = {row[0] for row in copy.execute("SELECT id FROM assistants")}
        assert len(ids) == printed["assistants"]
        assert set(committed[:before]) <= ids <= set(committed)
        # one commit's state: every assistant has its `created` revision, and nothing else
        created = {
            row[0]
            for row in copy.execute(
                "SELECT assistant_id FROM assistant_revisions WHERE change_type = 'created'"
            )
        }
        assert created == ids
    # the copy is a database the server can serve
    restored = sqlite_settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{target}"})
    with Server(restored, tmp_path, workers=1) as server:
        async with httpx.AsyncClient(base_url=server.base_url, headers=org.headers) as http:
            listed = await http.get("/orgs/c/assistants?take=1")
        assert int(listed.headers["pagination-count"]) == printed["assistants"]


def test_an_existing_file_is_refused_unless_forced(sqlite_settings: Settings, tmp_path: Path):
    target = tmp_path / "kept.db"
    target.write_bytes(b"yesterday")
    refused = run_cli(sqlite_settings, "backup", str(target))
    assert refused.returncode == 1
    assert "exists" in refused.stderr
    assert "--force" in refused.stderr
    assert (refused.stdout, target.read_bytes()) == ("", b"yesterday")
    forced = run_cli(sqlite_settings, "backup", "--force", str(target))
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["assistants"] == 0
    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


def test_a_missing_directory_is_made_and_a_file_in_the_way_is_an_error(
    sqlite_settings: Settings, tmp_path: Path
):
    made = run_cli(sqlite_settings, "backup", str(tmp_path / "backups" / "daily" / "x.db"))
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "backups" / "daily" / "x.db").is_file()
    (tmp_path / "plain").write_text("a file")
    blocked = run_cli(sqlite_settings, "backup", str(tmp_path / "plain" / "x.db"))
    assert (blocked.returncode, blocked.stdout) == (1, "")
    assert "is not a directory" in blocked.stderr


def test_a_missing_database_is_an_error(sqlite_settings: Settings, tmp_path: Path):
    gone = sqlite_settings.model_copy(
        update={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'absent.db'}"}
    )
    no_database = run_cli(gone, "backup", str(tmp_path / "x.db"))
    assert (no_database.returncode, no_database.stdout) == (1, "")
    assert "no SQLite database" in no_database.stderr
    assert not (tmp_path / "absent.db").exists()


def test_postgres_is_told_to_use_pg_dump(postgres_template: Any, tmp_path: Path):
    url = make_url(postgres_template.url_for(postgres_template.template))
    settings = Settings(
        database_url=url.render_as_string(hide_password=False),
        _env_file=None,  # type: ignore[call-arg]
    )
    done = run_cli(settings, "backup", str(tmp_path / "x.dump"))
    assert (done.returncode, done.stdout) == (2, "")
    assert "pg_dump" in done.stderr
    assert not (tmp_path / "x.dump").exists()
