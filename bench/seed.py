"""Seeds a benchmark SQLite database: the app's migrations, then fast bulk inserts.

`python bench/seed.py PATH --assistants 10000 --orgs 100` makes PATH (replacing it) with ORGS
organisations, one API key each, ASSISTANTS assistants spread evenly over them and two
integrations and two actions per assistant. It writes PATH.json: the org ids, their API keys and
the assistant ids of the first organisation (the one the bench drives).

The schema comes from `python -m app migrate`; rows are written with the sqlite3 module in one
transaction. Columns are read back from the table, so a column added by a later migration is
filled with its SQL default, or NULL, or a neutral value of its type when it is NOT NULL.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY_PREFIX = "ak_"  # as app.auth makes them; only the SHA-256 of the key is stored
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    """SQLAlchemy's SQLite DateTime storage format (naive UTC, microseconds)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def migrate(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".json"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{path}"}
    subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _neutral(declared: str) -> Any:
    declared = declared.upper()
    if "INT" in declared or "BOOL" in declared or "NUM" in declared or "REAL" in declared:
        return 0
    if "JSON" in declared:
        return "{}"
    if "DATE" in declared or "TIME" in declared:
        return stamp(T0)
    return ""


class Table:
    """The columns of one table as migrated; fills in those the seed does not know."""

    def __init__(self, db: sqlite3.Connection, name: str) -> None:
        self.name = name
        info = db.execute(f"PRAGMA table_info({name})").fetchall()
        # (cid, name, type, notnull, dflt_value, pk); defaulted columns are left to SQLite
        self.extra = {
            col: _neutral(kind) if notnull and not pk else None
            for _, col, kind, notnull, default, pk in info
            if default is None
        }

    def insert(self, db: sqlite3.Connection, rows: Iterator[dict[str, Any]]) -> None:
        first = next(rows, None)
        if first is None:
            return
        columns = list(first) + [c for c in self.extra if c not in first]
        fill = [(c, self.extra[c]) for c in columns if c not in first]
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {self.name} ({', '.join(columns)}) VALUES ({marks})"

        def values() -> Iterator[tuple[Any, ...]]:
            for row in _chain(first, rows):
                yield (*row.values(), *(value for _, value in fill))

        db.executemany(sql, values())


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


def hex_ids(count: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(count)]


def assistant_rows(orgs: list[str], ids: list[str]) -> Iterator[dict[str, Any]]:
    per_org = len(ids) // len(orgs)
    for n, assistant_id in enumerate(ids):
        at = stamp(T0 + timedelta(microseconds=n))
        yield {
            "id": assistant_id,
            "org_id": orgs[min(n // per_org, len(orgs) - 1)],
            "name": f"Assistant {n}",
            "enabled": 1,
            "deleted": 0,
            "version": 1,
            "secret_key": None,
            "avatar_id": None,
            "language": "en",
            "model": "gpt-4o-mini",
            "instructions": "You are a helpful support assistant. Answer briefly and politely.",
            "knowledge_scope": "all",
            "timezone": "Europe/Paris",
            "stt_model": "whisper-1",
            "tts_model": "tts-1",
            "tts_voice_id": "alloy",
            "thread_mode": "new",
            "enable_memories": 1,
            "enable_transfer_to_human_tool": 0,
            "welcome_banner": "Hello!",
            "suggested_messages": '["Where is my order?","Talk to a human"]',
            "auto_intro_message": None,
            "enable_end_conversation_tool": 1,
            "enable_block_contact_tool": 0,
            "enable_private_chats": 0,
            "enable_auto_resolve": 1,
            "enable_auto_follow_ups": 0,
            "enable_auto_csat": 0,
            "enable_update_contact_tool": 0,
            "created_at": at,
            "updated_at": at,
        }


def child_rows(kind: str, orgs: list[str], ids: list[str]) -> Iterator[dict[str, Any]]:
    per_org = len(ids) // len(orgs)
    at = stamp(T0)
    for n, assistant_id in enumerate(ids):
        org_id = orgs[min(n // per_org, len(orgs) - 1)]
        for k in range(2):
            common = {"id": uuid.uuid4().hex, "org_id": org_id, "assistant_id": assistant_id}
            if kind == "integrations":
                yield {
                    **common,
                    "integration_id": ("whatsapp", "internal")[k],
                    "enabled": 1,
                    "connection_id": f"conn-{k}",
                    "config": '{"phone":"+33123456789","greeting":true}',
                    "error": None,
                    "created_at": at,
                    "updated_at": at,
                }
            else:
                yield {
                    **common,
                    "action_id": "TOOLS:HTTP_REQUEST",
                    "enabled": 1,
                    "name": f"lookup_{k}",
                    "instructions": "Look the order up by its number.",
                    "connection_id": None,
                    "config": '{"input":{"url":"https://example.com/orders"},'
                    '"definitions":[{"path":"order","definition":{"type":"string"}}]}',
                    "position": 100 * (k + 1),
                    "created_at": at,
                    "updated_at": at,
                }


def seed(path: Path, assistants: int, org_count: int) -> dict[str, Any]:
    migrate(path)
    orgs = hex_ids(org_count)
    keys = [KEY_PREFIX + secrets.token_urlsafe(32) for _ in orgs]
    ids = hex_ids(assistants)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")
        db.execute("BEGIN")
        Table(db, "organisations").insert(
            db,
            iter(
                {"id": o, "name": f"Org {n}", "created_at": stamp(T0)} for n, o in enumerate(orgs)
            ),
        )
        Table(db, "api_keys").insert(
            db,
            iter(
                {
                    "id": uuid.uuid4().hex,
                    "org_id": o,
                    "key_hash": hashlib.sha256(k.encode()).hexdigest(),
                    "created_at": stamp(T0),
                    "revoked_at": None,
                }
                for o, k in zip(orgs, keys, strict=True)
            ),
        )
        Table(db, "assistants").insert(db, assistant_rows(orgs, ids))
        Table(db, "integrations").insert(db, child_rows("integrations", orgs, ids))
        Table(db, "actions").insert(db, child_rows("actions", orgs, ids))
        db.execute("COMMIT")
        db.execute("ANALYZE")
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
    per_org = assistants // org_count
    meta = {
        "database": str(path),
        "assistants": assistants,
        "orgs": [{"org_id": o, "api_key": k} for o, k in zip(orgs, keys, strict=True)],
        "bench_org": orgs[0],
        "bench_key": keys[0],
        "bench_assistants": ids[:per_org],
    }
    Path(f"{path}.json").write_text(json.dumps(meta))
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--assistants", type=int, default=10_000)
    parser.add_argument("--orgs", type=int, default=100)
    args = parser.parse_args()
    started = time.perf_counter()
    seed(args.path.resolve(), args.assistants, args.orgs)
    took = time.perf_counter() - started
    print(f"seeded {args.assistants} assistants over {args.orgs} orgs in {took:.1f} s")


if __name__ == "__main__":
    main()
