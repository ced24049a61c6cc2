"""`python -m app audit …`: export an organisation's audit log as NDJSON, verify its hash
chain, remove entries older than AUDIT_KEEP_DAYS (docs/audit-log.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from app.settings import Settings

T = TypeVar("T")


def _run(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """`work(store)`, the store closed after; a database error is one line and exit 1."""
    import sqlite3

    import asyncpg

    from app.store import open_store

    async def main() -> T:
        store = open_store(settings)
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        line = (str(exc) or type(exc).__name__).splitlines()[0]
        sys.stderr.write(f"error: DATABASE_ERROR: {line} (is the database migrated?)\n")
        raise SystemExit(1) from exc


async def _check_organisation(store: Any, org_id: str) -> None:
    from sqlalchemy import bindparam, select

    from app.domain.errors import NotFound
    from app.models import Organisation

    # mypy ignore below: SQLModel's metaclass sets __table__
    table = Organisation.__table__  # type: ignore[attr-defined]
    async with store.read() as tx:
        found = await tx.first(
            select(table.c.id).where(table.c.id == bindparam("org_id")), {"org_id": org_id}
        )
    if found is None:
        raise NotFound(f"no organisation '{org_id}'")


def cmd_audit_export(settings: Settings, args: argparse.Namespace) -> None:
    from app.domain.audit import entry_document
    from app.domain.audit_log import entries_in_order, parse_instant

    since = None if args.since is None else parse_instant(args.since, "--since")

    async def work(store: Any) -> None:
        await _check_organisation(store, args.org_id)
        async for entry in entries_in_order(store, args.org_id, since):
            sys.stdout.write(
                json.dumps(entry_document(entry), ensure_ascii=False, separators=(",", ":")) + "\n"
            )

    _run(settings, work)


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> None:
    from app.domain.audit_log import verify_chain

    async def work(store: Any) -> Any:
        await _check_organisation(store, args.org_id)
        return await verify_chain(store, args.org_id)

    verdict = _run(settings, work)
    sys.stdout.write(json.dumps(verdict.document()) + "\n")
    if verdict.broken_at is not None:
        sys.stderr.write(
            f"error: AUDIT_CHAIN_BROKEN: entry {verdict.broken_at}: {verdict.reason}\n"
        )
        raise SystemExit(1)


def cmd_audit_prune(settings: Settings, args: argparse.Namespace) -> None:
    from app.domain.audit_log import prune

    days = args.keep_days if args.keep_days is not None else settings.audit_keep_days
    if days is None:
        sys.stderr.write("error: set AUDIT_KEEP_DAYS or pass --keep-days\n")
        raise SystemExit(2)
    removed = _run(settings, lambda store: prune(store, days))
    sys.stdout.write(json.dumps({"removed": removed, "keep_days": days}) + "\n")


def add_audit_commands(sub: Any) -> None:
    """`audit export|verify|prune` on the CLI's parser."""
    audit = sub.add_parser("audit").add_subparsers(dest="action", required=True)
    export = audit.add_parser("export", help="the organisation's audit log as NDJSON, oldest first")
    export.add_argument("org_id")
    export.add_argument("--since", help="only entries written at or after (RFC 3339)")
    export.set_defaults(func=cmd_audit_export)
    verify = audit.add_parser("verify", help="check the organisation's hash chain")
    verify.add_argument("org_id")
    verify.set_defaults(func=cmd_audit_verify)
    prune = audit.add_parser("prune", help="remove entries older than AUDIT_KEEP_DAYS")
    prune.add_argument("--keep-days", type=float, default=None)
    prune.set_defaults(func=cmd_audit_prune)
