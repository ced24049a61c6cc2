"""`python -m app backup PATH`: a consistent copy of a live SQLite database.

SQLite's online backup API (`sqlite3.Connection.backup`) copies every page within one read
transaction, so the copy is the database as of one commit, while the server keeps writing
(in WAL mode writers do not wait for it). The copy is written to a temporary file beside PATH,
checked (`PRAGMA integrity_check`), switched to a rollback journal (one self-contained file; the
server turns WAL back on when it opens it) and only then renamed to PATH: an interrupted backup
never leaves a half-written PATH. An existing PATH is refused unless `replace` is set; missing
parent directories are made.
PostgreSQL is backed up with `pg_dump` (docs/production.md, Backups and restore).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from app.store.sqlite import database_path

PAGES_PER_STEP = -1  # every page in one step: one read transaction, one commit's state
BUSY_SECONDS = 30.0  # a checkpoint or a recovering writer may hold the file for a moment


class BackupError(Exception):
    """The backup was refused or failed (the message says why, in one line)."""


def _copy(source: Path, target: Path) -> int:
    """Copies `source` into the new file `target`; the number of assistants in the copy."""
    with (
        contextlib.closing(sqlite3.connect(source, timeout=BUSY_SECONDS)) as live,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        live.backup(copy, pages=PAGES_PER_STEP)
        (verdict,) = copy.execute("PRAGMA integrity_check").fetchone()
        if verdict != "ok":
            raise BackupError(f"the copy failed its integrity check: {verdict}")
        copy.execute("PRAGMA journal_mode=DELETE").fetchone()
        (count,) = copy.execute("SELECT count(*) FROM assistants WHERE NOT deleted").fetchone()
    return int(count)


def backup_sqlite(database_url: str, target: str, *, replace: bool = False) -> dict[str, Any]:
    """Copies the database of `database_url` to `target`: `{"path", "bytes", "assistants"}`."""
    source = Path(database_path(database_url))
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    path = Path(target).resolve()
    if path.exists() and not replace:
        raise BackupError(f"{path} exists; choose a new name, or pass --force to replace it")
    if path.parent.exists() and not path.parent.is_dir():
        raise BackupError(f"{path.parent} is not a directory")
    path.parent.mkdir(parents=True, exist_ok=True)  # `backup backups/x.db` on a fresh checkout
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        count = _copy(source, partial)
        partial.replace(path)
    except sqlite3.Error as exc:
        raise BackupError(f"the backup failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return {"path": str(path), "bytes": path.stat().st_size, "assistants": count}
