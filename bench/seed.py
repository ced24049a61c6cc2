"""Seeds a benchmark database, SQLite or PostgreSQL: the app's migrations, then bulk inserts.

`python bench/seed.py PATH --assistants 10000 --orgs 100` makes the SQLite database PATH
(replacing it) with ORGS organisations, one API key each, ASSISTANTS assistants spread evenly
over them and two integrations and two actions per assistant, in one transaction of the sqlite3
module. It writes PATH.json: the org ids, their API keys and the assistant ids of the first
organisation (the one the bench drives).

`python bench/seed.py postgresql+asyncpg://… --assistants 100 --orgs 1 --meta FILE` does the
same in that PostgreSQL database, which it may wipe: it drops every table of its `public`
schema, migrates, makes each organisation and its API key with the app's own command
(`python -m app orgs create NAME`), then copies the assistants and their children in with
asyncpg's COPY and writes FILE.

Both write the same rows (`assistant_rows`, `child_rows`: Python values, which each database's
writer converts). The schema comes from `python -m app migrate`; columns are read back from the
table, so a column added by a later migration is filled with its SQL default, or NULL, or a
neutral value of its type when it is NOT NULL.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import itertools
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY_PREFIX = "ak_"  # as app.auth makes them; only the SHA-256 of the key is stored
ALL_SCOPES = '["assistants:read", "assistants:write", "api_keys:manage"]'
T0 = datetime(2026, 1, 1, tzinfo=UTC)

Row = dict[str, Any]


# -- the rows, the same for both databases --------------------------------------------------


def hex_ids(count: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(count)]


def org_of(orgs: list[str], ids: list[str]) -> Callable[[int], str]:
    """The organisation of the n-th assistant: the assistants spread evenly over the orgs."""
    per_org = max(len(ids) // len(orgs), 1)
    return lambda n: orgs[min(n // per_org, len(orgs) - 1)]


def assistant_rows(orgs: list[str], ids: list[str]) -> Iterator[Row]:
    org = org_of(orgs, ids)
    for n, assistant_id in enumerate(ids):
        at = T0 + timedelta(microseconds=n)
        yield {
            "id": assistant_id,
            "org_id": org(n),
            "name": f"Assistant {n}",
            "enabled": True,
            "deleted": False,
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
            "enable_memories": True,
            "enable_transfer_to_human_tool": False,
            "welcome_banner": "Hello!",
            "suggested_messages": '["Where is my order?","Talk to a human"]',
            "auto_intro_message": None,
            "enable_end_conversation_tool": True,
            "enable_block_contact_tool": False,
            "enable_private_chats": False,
            "enable_auto_resolve": True,
            "enable_auto_follow_ups": False,
            "enable_auto_csat": False,
            "enable_update_contact_tool": False,
            "created_at": at,
            "updated_at": at,
        }


def child_rows(kind: str, orgs: list[str], ids: list[str]) -> Iterator[Row]:
    org = org_of(orgs, ids)
    for n, assistant_id in enumerate(ids):
        for k in range(2):
            common = {"id": uuid.uuid4().hex, "org_id": org(n), "assistant_id": assistant_id}
            if kind == "integrations":
                yield {
                    **common,
                    "integration_id": ("whatsapp", "internal")[k],
                    "enabled": True,
                    "connection_id": f"conn-{k}",
                    "config": '{"phone":"+33123456789","greeting":true}',
                    "error": None,
                    "created_at": T0,
                    "updated_at": T0,
                }
            else:
                yield {
                    **common,
                    "action_id": "TOOLS:HTTP_REQUEST",
                    "enabled": True,
                    "name": f"lookup_{k}",
                    "instructions": "Look the order up by its number.",
                    "connection_id": None,
                    "config": '{"input":{"url":"https://example.com/orders"},'
                    '"definitions":[{"path":"order","definition":{"type":"string"}}]}',
                    "position": 100 * (k + 1),
                    "created_at": T0,
                    "updated_at": T0,
                }


def content_rows(orgs: list[str], ids: list[str]) -> list[tuple[str, Iterator[Row]]]:
    """(table, rows) of the assistants and their children, in the order of the foreign keys."""
    return [
        ("assistants", assistant_rows(orgs, ids)),
        ("integrations", child_rows("integrations", orgs, ids)),
        ("actions", child_rows("actions", orgs, ids)),
    ]


def meta_of(database: str, orgs: list[str], keys: list[str], ids: list[str]) -> dict[str, Any]:
    """What the bench reads back: the organisations, their keys, and the assistants of the
    first organisation (the one it drives)."""
    return {
        "database": database,
        "assistants": len(ids),
        "orgs": [{"org_id": o, "api_key": k} for o, k in zip(orgs, keys, strict=True)],
        "bench_org": orgs[0],
        "bench_key": keys[0],
        "bench_assistants": ids[: max(len(ids) // len(orgs), 1)],
    }


# -- columns the seed does not know ----------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    declared: str  # the declared SQL type
    not_null: bool
    has_default: bool
    primary_key: bool


def neutral(declared: str) -> Any:
    declared = declared.upper()
    if "BOOL" in declared:
        return False
    if "INT" in declared or "NUM" in declared or "REAL" in declared or "DOUBLE" in declared:
        return 0
    if "JSON" in declared:
        return "{}"
    if "DATE" in declared or "TIME" in declared:
        return T0
    return ""


class Table:
    """The columns of one table as migrated; fills in those the seed does not know (defaulted
    columns are left to the database; the others get NULL, or a neutral value when NOT NULL)."""

    def __init__(self, name: str, columns: Iterable[Column]) -> None:
        self.name = name
        self.extra = {
            c.name: neutral(c.declared) if c.not_null and not c.primary_key else None
            for c in columns
            if not c.has_default
        }

    def records(
        self, rows: Iterator[Row], convert: Callable[[Any], Any] | None = None
    ) -> tuple[list[str], Iterator[tuple[Any, ...]]] | None:
        """(columns, value tuples) of the rows and the extra columns, each value through
        `convert` if given (the rows of a table hold the same types in every row, so only the
        columns whose first value it changes are converted); None when there are no rows."""
        first = next(rows, None)
        if first is None:
            return None
        same: Callable[[Any], Any] = convert or (lambda v: v)
        fill = [(c, same(v)) for c, v in self.extra.items() if c not in first]
        columns = list(first) + [c for c, _ in fill]
        extra = tuple(v for _, v in fill)
        changed = [i for i, v in enumerate(first.values()) if same(v) is not v]

        def values() -> Iterator[tuple[Any, ...]]:
            for row in itertools.chain([first], rows):
                if not changed:
                    yield (*row.values(), *extra)
                    continue
                values = list(row.values())
                for i in changed:
                    values[i] = same(values[i])
                yield (*values, *extra)

        return columns, values()


def migrate(database_url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
        stdout=subprocess.DEVNULL,
    )


# -- SQLite ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)  # the children share a few moments
def stamp(moment: datetime) -> str:
    """SQLAlchemy's SQLite DateTime storage format (naive UTC, microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return stamp(value)
    if isinstance(value, bool):
        return int(value)
    return value


def sqlite_table(db: sqlite3.Connection, name: str) -> Table:
    # (cid, name, type, notnull, dflt_value, pk)
    info = db.execute(f"PRAGMA table_info({name})").fetchall()
    columns = (
        Column(c, kind, bool(nn), dflt is not None, bool(pk)) for _, c, kind, nn, dflt, pk in info
    )
    return Table(name, columns)


def sqlite_insert(db: sqlite3.Connection, name: str, rows: Iterator[Row]) -> None:
    records = sqlite_table(db, name).records(rows, sqlite_value)
    if records is not None:
        columns, values = records
        marks = ", ".join("?" for _ in columns)
        db.executemany(f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})", values)


def seed_sqlite(path: Path, assistants: int, org_count: int) -> dict[str, Any]:
    for suffix in ("", "-wal", "-shm", ".json"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    migrate(f"sqlite+aiosqlite:///{path}")
    orgs = hex_ids(org_count)
    keys = [KEY_PREFIX + secrets.token_urlsafe(32) for _ in orgs]
    ids = hex_ids(assistants)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")
        db.execute("BEGIN")
        org_rows = ({"id": o, "name": f"Org {n}", "created_at": T0} for n, o in enumerate(orgs))
        sqlite_insert(db, "organisations", org_rows)
        key_rows = (
            {
                "id": uuid.uuid4().hex,
                "org_id": o,
                "key_hash": hashlib.sha256(k.encode()).hexdigest(),
                "created_at": T0,
                "revoked_at": None,
                "name": "Bench key",
                "prefix": k[:8],
                "scopes": ALL_SCOPES,  # every scope, every assistant, as `orgs create` makes
            }
            for o, k in zip(orgs, keys, strict=True)
        )
        sqlite_insert(db, "api_keys", key_rows)
        for table, rows in content_rows(orgs, ids):
            sqlite_insert(db, table, rows)
        db.execute("COMMIT")
        db.execute("ANALYZE")
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
    meta = meta_of(str(path), orgs, keys, ids)
    Path(f"{path}.json").write_text(json.dumps(meta))
    return meta


# -- PostgreSQL ------------------------------------------------------------------------------


def libpq_url(url: str) -> str:
    """postgresql+asyncpg://… (SQLAlchemy's form) as the postgres://… that libpq and asyncpg
    take."""
    scheme, rest = url.split("://", 1)
    if not scheme.startswith("postgres"):
        raise ValueError(f"not a PostgreSQL URL: {scheme}://…")
    return f"postgres://{rest}"


def create_org(database_url: str, name: str) -> tuple[str, str]:
    """An organisation and its first API key, made by the app itself: (org_id, api_key)."""
    out = subprocess.run(
        [sys.executable, "-m", "app", "orgs", "create", name],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
        capture_output=True,
        text=True,
    )
    made = json.loads(out.stdout)
    return made["org_id"], made["api_key"]


async def wipe_postgres(url: str) -> None:
    """Drops every table of the public schema (the database is the bench's to wipe)."""
    import asyncpg

    conn = await asyncpg.connect(libpq_url(url))
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        if tables:
            names = ", ".join(f'public."{t}"' for t in tables)
            await conn.execute(f"DROP TABLE IF EXISTS {names} CASCADE")
    finally:
        await conn.close()


COLUMNS_SQL = """
SELECT c.column_name, c.data_type, c.is_nullable = 'NO' AS not_null,
       c.column_default IS NOT NULL OR c.is_identity = 'YES' AS has_default,
       EXISTS (SELECT 1 FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
               WHERE i.indrelid = format('public.%I', c.table_name)::regclass
                 AND i.indisprimary AND a.attname = c.column_name) AS primary_key
FROM information_schema.columns c
WHERE c.table_schema = 'public' AND c.table_name = $1
ORDER BY c.ordinal_position
"""


async def copy_postgres(url: str, orgs: list[str], ids: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(libpq_url(url))
    try:
        async with conn.transaction():
            for table, rows in content_rows(orgs, ids):
                columns = [Column(*r) for r in await conn.fetch(COLUMNS_SQL, table)]
                records = Table(table, columns).records(rows)
                if records is not None:
                    names, values = records
                    await conn.copy_records_to_table(table, records=list(values), columns=names)
        for table, _ in content_rows(orgs, ids):
            await conn.execute(f"ANALYZE {table}")
    finally:
        await conn.close()


def seed_postgres(url: str, assistants: int, org_count: int, meta_file: Path) -> dict[str, Any]:
    asyncio.run(wipe_postgres(url))
    migrate(url)
    made = [create_org(url, f"Bench org {n}") for n in range(org_count)]
    orgs, keys = [o for o, _ in made], [k for _, k in made]
    ids = hex_ids(assistants)
    asyncio.run(copy_postgres(url, orgs, ids))
    host = url.split("@", 1)[-1]  # no password in the file
    meta = meta_of(f"postgresql://…@{host}", orgs, keys, ids)
    meta_file.parent.mkdir(parents=True, exist_ok=True)
    meta_file.write_text(json.dumps(meta))
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a SQLite file, or a postgresql+asyncpg:// URL")
    parser.add_argument("--assistants", type=int, default=10_000)
    parser.add_argument("--orgs", type=int, default=100)
    parser.add_argument("--meta", type=Path, help="PostgreSQL: where to write the JSON")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.target.startswith("postgres"):
        if args.meta is None:
            parser.error("a PostgreSQL target needs --meta FILE")
        seed_postgres(args.target, args.assistants, args.orgs, args.meta.resolve())
    else:
        seed_sqlite(Path(args.target).resolve(), args.assistants, args.orgs)
    took = time.perf_counter() - started
    print(f"seeded {args.assistants} assistants over {args.orgs} orgs in {took:.1f} s")


if __name__ == "__main__":
    main()
