"""A full disk: a write that cannot be stored is 507 STORAGE_FULL (REST
problem details; GraphQL `extensions.code` STORAGE_FULL), avatar uploads included, with no
partial file left behind; reads keep working; `/readyz` answers 503 while writes fail; once
space is freed writes work again without a restart, and the SQLite database passes
`PRAGMA integrity_check`.

For real: a small tmpfs is mounted (root only) and holds the database and the avatars of a real
`python -m app serve`; the test fills it with a file, then deletes the file. Where mounting is
not permitted the test is skipped (REQUIRE_FULL_DISK_TEST=1 makes that a failure).
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth import create_organisation
from app.settings import Settings
from app.store import open_store
from tests.helpers.factories import Org
from tests.helpers.server_process import Server

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 2048
UPDATE = (
    'mutation($id: ID!, $text: String!) { updateAssistant(orgId: "c", assistantId: $id, '
    "input: {config: {instructions: $text}}) { version } }"
)
BIG = 60_000  # characters of instructions: a write that needs new pages


def as_root(*command: str) -> subprocess.CompletedProcess[str]:
    """`command` as root: directly when the tests run as root, else through `sudo -n`."""
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    try:
        return subprocess.run([*sudo, *command], capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:  # no sudo (or no mount) on this machine
        return subprocess.CompletedProcess(command, 127, "", str(exc))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, owned by the user the tests run as, unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    options = f"size=4m,uid={os.geteuid()},gid={os.getegid()},mode=0700"
    done = as_root("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount))
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})"
        if os.environ.get("REQUIRE_FULL_DISK_TEST") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount
    finally:
        as_root("umount", "-l", str(mount))


def fill(directory: Path) -> Path:
    """A file that takes every byte left on the disk of `directory`."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for chunk in (1024 * 1024, 64 * 1024, 4096, 512, 1):
            while _written(fd, b"\xff" * chunk):
                pass
    finally:
        os.close(fd)
    return filler


def _written(fd: int, data: bytes) -> bool:
    """Whether all of `data` was written (False once the disk is full)."""
    try:
        return os.write(fd, data) == len(data)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        return False


async def make_org(settings: Settings) -> Org:
    store = open_store(settings)
    try:
        async with store.write() as tx:
            org, key_id, token = await create_organisation(tx, name="Full disk")
    finally:
        await store.close()
    return Org(org.id, key_id, token)


def assert_storage_full(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "STORAGE_FULL"


def integrity(db_file: Path) -> str:
    with sqlite3.connect(db_file) as connection:
        result: str = connection.execute("PRAGMA integrity_check").fetchone()[0]
    return result


async def test_a_full_disk_is_507_and_503_on_readyz_until_space_is_freed(
    small_disk: Path, sqlite_template: Path, tmp_path: Path
):
    db_file = small_disk / "assistants.db"
    shutil.copy(sqlite_template, db_file)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{db_file}",
        avatars_dir=small_disk / "avatars",
        _env_file=None,  # type: ignore[call-arg]
    )
    org = await make_org(settings)
    with Server(settings, tmp_path, workers=1) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=30, headers=org.headers
        ) as http:
            created = await http.post("/orgs/c/assistants", json={"name": "v1"})
            assert created.status_code == 201
            assistant_id = created.json()["id"]
            path = f"/orgs/c/assistants/{assistant_id}"
            kept = await http.post("/orgs/c/avatars", content=PNG)
            assert kept.status_code == 201
            assert (await http.get("/readyz")).status_code == 200

            filler = fill(small_disk)
            assert (await http.get("/readyz")).status_code == 503
            patch = await http.patch(path, json={"config": {"instructions": "x" * BIG}})
            assert_storage_full(patch)
            body = {"query": UPDATE, "variables": {"id": assistant_id, "text": "y" * BIG}}
            answer = await http.post("/graphql", json=body)
            assert [e["extensions"]["code"] for e in answer.json()["errors"]] == ["STORAGE_FULL"]
            assert answer.json()["data"] is None
            assert_storage_full(await http.post("/orgs/c/avatars", content=PNG * 100))
            assert sorted(p.name for p in (small_disk / "avatars").iterdir()) == [
                kept.json()["id"]
            ]  # no partial file, no temporary one
            # reads keep working
            read = await http.get(path)
            assert (read.status_code, read.json()["version"]) == (200, 1)
            assert (await http.get("/orgs/c/assistants")).status_code == 200
            assert (await http.get(f"/avatars/{kept.json()['id']}")).content == PNG
            assert (await http.get("/readyz")).status_code == 503

            filler.unlink()
            assert (await http.get("/readyz")).status_code == 200
            again = await http.patch(path, json={"config": {"instructions": "x" * BIG}})
            assert again.status_code == 200, again.text
            assert again.json()["version"] == 2
            assert (await http.post("/orgs/c/avatars", content=PNG * 100)).status_code == 201
            answer = await http.post("/graphql", json=body)
            assert answer.json()["data"]["updateAssistant"]["version"] == 3
    assert integrity(db_file) == "ok"


@pytest.fixture
def postgres_settings(postgres_template: Any, small_disk: Path) -> Iterator[Settings]:
    name = postgres_template.take()
    try:
        yield Settings(
            database_url=postgres_template.url_for(name),
            avatars_dir=small_disk / "avatars",
            _env_file=None,  # type: ignore[call-arg]
        )
    finally:
        postgres_template.drop_later(name)


async def test_on_postgresql_a_full_avatar_disk_is_507_and_503_on_readyz(
    postgres_settings: Settings, small_disk: Path, tmp_path: Path
):
    """The database server has room, the avatars' disk has none: an upload is 507 and leaves
    no file, /readyz is 503 until space is freed, every other write still works."""
    org = await make_org(postgres_settings)
    with Server(postgres_settings, tmp_path, workers=1) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=30, headers=org.headers
        ) as http:
            kept = await http.post("/orgs/c/avatars", content=PNG)
            assert kept.status_code == 201
            filler = fill(small_disk)
            assert_storage_full(await http.post("/orgs/c/avatars", content=PNG * 100))
            assert [p.name for p in (small_disk / "avatars").iterdir()] == [kept.json()["id"]]
            assert (await http.get("/readyz")).status_code == 503
            created = await http.post("/orgs/c/assistants", json={"name": "elsewhere"})
            assert created.status_code == 201
            assert (await http.get(f"/avatars/{kept.json()['id']}")).content == PNG
            filler.unlink()
            assert (await http.get("/readyz")).status_code == 200
            assert (await http.post("/orgs/c/avatars", content=PNG * 100)).status_code == 201
