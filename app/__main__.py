"""The command line: `python -m app serve|migrate|orgs|keys|releases|environments|webhooks|
deliver|export-schema|demo|backup|export|apply` (bundles: app/bundles_cli.py).

Data commands print one JSON object on stdout; errors go to stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from app.bundles_cli import add_parsers as add_bundle_parsers
from app.cli_audit import add_audit_commands
from app.settings import Settings

if TYPE_CHECKING:
    from app.store import Tx

T = TypeVar("T")
DURATION_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
SCOPES = (
    "assistants:read",
    "assistants:write",
    "api_keys:manage",
    "webhooks:manage",
    "audit:read",
)


def _print(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")


class DatabaseError(Exception):
    """The database refused or could not be reached (its driver's error, in one line)."""


def _in_transaction(settings: Settings, work: Callable[[Tx], Awaitable[T]]) -> T:
    """`work` in one write transaction of the store (the same use cases as the server's; its
    revisions reach the live subscribers of every process too)."""
    import sqlite3

    import asyncpg

    from app.store import open_store

    async def main() -> T:
        store = open_store(settings)
        try:
            async with store.write() as tx:
                return await work(tx)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise DatabaseError((str(exc) or type(exc).__name__).splitlines()[0]) from exc


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> None:
    from app.migrate import upgrade

    upgrade(settings)
    _print({"migrated": True})


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from app.migrate import upgrade

    if args.host:
        os.environ["HOST"] = args.host
    if args.port:
        os.environ["PORT"] = str(args.port)
    settings = Settings()
    if settings.graphql_trusted_documents is not None:  # a bad manifest stops here, not per worker
        from app.graphql.persisted import ManifestError, check_manifest

        try:
            check_manifest(settings)
        except ManifestError as exc:
            sys.stderr.write(f"error: TRUSTED_DOCUMENTS: {exc}\n")
            raise SystemExit(2) from None
    upgrade(settings)
    metrics_directory(args.workers)
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully: exit 0 then
    # (and if SIGTERM comes before uvicorn listens, there is nothing to drain either)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        proxy_headers=False,  # the app owns X-Forwarded-For (FORWARDED_ALLOW_IPS, main.py)
        # (a whole number for uvicorn; app/shutdown.py gives it what is left of the grace)
        timeout_graceful_shutdown=max(math.ceil(settings.shutdown_grace_seconds), 1),
    )


def metrics_directory(workers: int) -> None:
    """With several workers, Prometheus metrics are kept in prometheus-client's multiprocess
    mode: PROMETHEUS_MULTIPROC_DIR as the operator set it, else a fresh directory of our own
    (removed on exit); set before any worker imports prometheus-client."""
    if workers <= 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    import atexit
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="assistants-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


def cmd_orgs_create(settings: Settings, args: argparse.Namespace) -> None:
    from app.auth import create_organisation

    async def work(tx: Tx) -> dict[str, Any]:
        org, key_id, token = await create_organisation(tx, name=args.name)
        return {"org_id": org.id, "name": org.name, "key_id": key_id, "api_key": token}

    _print(_in_transaction(settings, work))


def _duration(text: str) -> timedelta:
    """`30d`, `12h` or `45m` (a whole number of days, hours or minutes, at least 1)."""
    unit = DURATION_UNITS.get(text[-1:])
    if unit is None or not text[:-1].isdigit() or int(text[:-1]) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration such as 30d, 12h or 45m")
    return timedelta(**{unit: int(text[:-1])})


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> None:
    from app.domain.keys import CLI_KEY_NAME, create_api_key, organisation_access
    from app.models import utcnow

    body: dict[str, Any] = {
        "name": CLI_KEY_NAME if args.name is None else args.name,
        "scopes": args.scope or list(SCOPES),
    }
    if args.assistant:
        body["assistant_ids"] = args.assistant
    if args.expires_in is not None:
        body["expires_at"] = utcnow() + args.expires_in

    async def work(tx: Tx) -> dict[str, Any]:
        access = await organisation_access(tx, args.org_id)
        key, token = await create_api_key(tx, access=access, body=body)
        return {"org_id": key.org_id, "key_id": key.id, "api_key": token}

    _print(_in_transaction(settings, work))


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> None:
    from app.domain.keys import count_api_keys, key_document, list_api_keys, organisation_access

    async def work(tx: Tx) -> list[dict[str, Any]]:
        access = await organisation_access(tx, args.org_id)
        total = await count_api_keys(tx, access=access)
        keys = await list_api_keys(tx, access=access, limit=max(total, 1))
        return [key_document(key) for key in keys]

    sys.stdout.write(json.dumps(_in_transaction(settings, work)) + "\n")


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> None:
    from app.auth import revoke_key

    async def work(tx: Tx) -> dict[str, Any]:
        await revoke_key(tx, key_id=args.key_id)
        return {"key_id": args.key_id, "revoked": True}

    _print(_in_transaction(settings, work))


def cmd_releases_publish(settings: Settings, args: argparse.Namespace) -> None:
    """A release of the draft as it is now (docs/releases.md), its document on stdout."""
    from app.domain.keys import organisation_access
    from app.domain.releases import publish_release
    from app.domain.revisions import CLI_WRITER

    async def work(tx: Tx) -> dict[str, Any]:
        access = await organisation_access(tx, args.org_id)
        release = await publish_release(
            tx,
            access=access,
            assistant_id=args.assistant_id,
            writer=CLI_WRITER,
            base_url=settings.base_url,
            environment=args.environment,
            note=args.note,
        )
        document: dict[str, Any] = json.loads(release.document)
        return document

    _print(_in_transaction(settings, work))


def cmd_environments_pin(settings: Settings, args: argparse.Namespace) -> None:
    from app.domain.keys import organisation_access
    from app.domain.releases import pin_environment
    from app.domain.revisions import CLI_WRITER

    async def work(tx: Tx) -> dict[str, Any]:
        access = await organisation_access(tx, args.org_id)
        environment, release = await pin_environment(
            tx,
            access=access,
            assistant_id=args.assistant_id,
            name=args.name,
            release=args.release,
            writer=CLI_WRITER,
        )
        return {
            "name": environment.name,
            "release": environment.release,
            **json.loads(release.document),
        }

    _print(_in_transaction(settings, work))


def cmd_environments_show(settings: Settings, args: argparse.Namespace) -> None:
    """The pinned release's document, as `GET …/environments/{name}` answers it."""
    from app.domain.keys import organisation_access
    from app.domain.releases import read_environment

    async def work(tx: Tx) -> dict[str, Any]:
        access = await organisation_access(tx, args.org_id)
        _, text = await read_environment(
            tx, access=access, assistant_id=args.assistant_id, name=args.name
        )
        document: dict[str, Any] = json.loads(text)
        return document

    _print(_in_transaction(settings, work))


def cmd_webhooks_list(settings: Settings, args: argparse.Namespace) -> None:
    from app.domain.keys import organisation_access
    from app.domain.webhooks import count_webhooks, list_webhooks, webhook_document

    async def work(tx: Tx) -> list[dict[str, Any]]:
        access = await organisation_access(tx, args.org_id)
        total = await count_webhooks(tx, access=access)
        rows = await list_webhooks(tx, access=access, limit=max(total, 1))
        return [webhook_document(row) for row in rows]

    sys.stdout.write(json.dumps(_in_transaction(settings, work)) + "\n")


class NotVerified(Exception):
    """`webhooks verify`: the delivery does not verify (exit 1)."""


def cmd_webhooks_verify(_settings: Settings, args: argparse.Namespace) -> None:
    """Reads `{"headers": {...}, "body": "..."}` on stdin; exit 0 when the signature verifies
    with the secret (within 5 minutes of its timestamp), 1 otherwise."""
    from app.webhooks.signing import verify

    try:
        sent = json.loads(sys.stdin.read())
        headers, body = sent["headers"], sent["body"]
        if not isinstance(headers, dict) or not isinstance(body, str):
            raise TypeError("headers must be an object, body a string")
        good = verify(args.secret, {str(k): str(v) for k, v in headers.items()}, body.encode())
    except (ValueError, KeyError, TypeError) as exc:
        raise NotVerified(
            f'stdin must be JSON {{"headers": {{...}}, "body": "..."}} ({exc})'
        ) from None
    if not good:
        raise NotVerified("the signature does not verify")
    _print({"verified": True})


def cmd_deliver(settings: Settings, _args: argparse.Namespace) -> None:
    """A dedicated delivery process (docs/webhooks.md): until SIGTERM or SIGINT, then the
    attempts in flight get SHUTDOWN_GRACE_SECONDS."""
    from app.logs import configure_logging
    from app.migrate import upgrade
    from app.observability import metrics
    from app.webhooks.engine import Engine

    upgrade(settings)
    configure_logging(settings.log_level)
    metrics.configure(settings.metrics_enabled)

    async def main() -> None:
        engine = Engine(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        engine.start()
        sys.stderr.write("delivering webhooks (SIGTERM to stop)\n")
        await stop.wait()
        await engine.stop(settings.shutdown_grace_seconds)

    asyncio.run(main())


def cmd_export_schema(_settings: Settings, args: argparse.Namespace) -> None:
    """schema.graphql; with `--federation`, the subgraph SDL (`_service { sdl }`)."""
    from app.graphql.schema import build_schema, schema

    if args.bundle:  # docs/bundle.schema.json
        from app.domain.bundle_format import bundle_json_schema

        sys.stdout.write(json.dumps(bundle_json_schema(), indent=2) + "\n")
        return
    exported = build_schema() if args.federation else schema
    sys.stdout.write(exported.as_str() + "\n")


class UsePgDump(Exception):
    """`backup` on PostgreSQL: the database's own tool does it (exit 2)."""


def cmd_backup(settings: Settings, args: argparse.Namespace) -> None:
    """A consistent copy of the live SQLite database (see app/store/backup.py)."""
    from app.store.backup import BackupError, backup_sqlite

    if not settings.is_sqlite:
        raise UsePgDump
    try:
        _print(backup_sqlite(settings.database_url, args.path, replace=args.force))
    except BackupError as exc:
        raise DatabaseError(str(exc)) from None


def cmd_demo(settings: Settings, _args: argparse.Namespace) -> None:
    """Makes sure a demo organisation, assistant and key exist; prints how to use them."""
    from app.demo import DEMO_FILE, ensure_demo
    from app.migrate import upgrade

    upgrade(settings)
    demo = _in_transaction(settings, lambda tx: ensure_demo(tx, settings, DEMO_FILE))
    base = settings.base_url
    sys.stderr.write(
        "\nDemo organisation ready.\n"
        f"  API key:   {demo['api_key']}\n"
        f"  GraphiQL:  {base}/graphql  (header: Authorization: Bearer {demo['api_key']})\n"
        "  Try the documented PATCH route:\n"
        f"    curl -X PATCH {base}/orgs/{demo['org_id']}/assistants/{demo['assistant_id']} \\\n"
        f"      -H 'Authorization: Bearer {demo['api_key']}' \\\n"
        "      -H 'Content-Type: application/json' \\\n"
        """      -d '{"config": {"tts": {"voice_id": "v2"}}}'\n"""
        "  For the README's examples, in your shell:\n"
        f"    export KEY={demo['api_key']} ASSISTANT={demo['assistant_id']}\n\n"
    )
    _print(demo)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="apply pending migrations, then serve")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)
    export = sub.add_parser("export-schema", help="print the SDL")
    export.add_argument(
        "--federation",
        action="store_true",
        help="the Apollo Federation 2 subgraph SDL (what `_service { sdl }` answers)",
    )
    export.add_argument("--bundle", action="store_true", help="the JSON Schema of bundles")
    export.set_defaults(func=cmd_export_schema)
    add_bundle_parsers(sub, _in_transaction)  # export, apply (docs/bundles.md)
    sub.add_parser("demo", help="ensure the demo organisation").set_defaults(func=cmd_demo)
    backup = sub.add_parser("backup", help="a consistent copy of the live SQLite database")
    backup.add_argument("path", help="the new file (an existing one is refused)")
    backup.add_argument("--force", action="store_true", help="replace PATH if it exists")
    backup.set_defaults(func=cmd_backup)

    orgs = sub.add_parser("orgs").add_subparsers(dest="action", required=True)
    create_org = orgs.add_parser("create", help="a new organisation and its first API key")
    create_org.add_argument("name")
    create_org.set_defaults(func=cmd_orgs_create)

    keys = sub.add_parser("keys").add_subparsers(dest="action", required=True)
    create_key = keys.add_parser(
        "create", help="a new API key of an organisation (every scope and assistant unless told)"
    )
    create_key.add_argument("org_id")
    create_key.add_argument("--name", help="what the key is for (1-200 characters)")
    create_key.add_argument(
        "--scope", action="append", choices=SCOPES, help="a scope it holds (repeat for more)"
    )
    create_key.add_argument(
        "--assistant", action="append", metavar="ID", help="restrict it to this assistant (repeat)"
    )
    create_key.add_argument(
        "--expires-in", type=_duration, metavar="30d|12h|45m", help="it stops working after this"
    )
    create_key.set_defaults(func=cmd_keys_create)
    list_keys = keys.add_parser(
        "list", help="the organisation's keys, as a JSON array (no secrets)"
    )
    list_keys.add_argument("org_id")
    list_keys.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke an API key, at once, everywhere")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_keys_revoke)

    releases = sub.add_parser("releases").add_subparsers(dest="action", required=True)
    publish = releases.add_parser("publish", help="publish the draft as the next release")
    publish.add_argument("org_id")
    publish.add_argument("assistant_id")
    publish.add_argument("--environment", help="point this environment at the new release")
    publish.add_argument("--note", help="a note kept with the release")
    publish.set_defaults(func=cmd_releases_publish)
    environments = sub.add_parser("environments").add_subparsers(dest="action", required=True)
    pin = environments.add_parser("pin", help="point an environment at a release")
    pin.add_argument("org_id")
    pin.add_argument("assistant_id")
    pin.add_argument("name")
    pin.add_argument("release", type=int)
    pin.set_defaults(func=cmd_environments_pin)
    show = environments.add_parser("show", help="the document of an environment's release")
    show.add_argument("org_id")
    show.add_argument("assistant_id")
    show.add_argument("name")
    show.set_defaults(func=cmd_environments_show)
    hooks = sub.add_parser("webhooks").add_subparsers(dest="action", required=True)
    list_hooks = hooks.add_parser("list", help="the organisation's webhooks (no secrets)")
    list_hooks.add_argument("org_id")
    list_hooks.set_defaults(func=cmd_webhooks_list)
    verify = hooks.add_parser(
        "verify",
        help='check a delivery read as JSON {"headers", "body"} on stdin (exit 0: it verifies)',
    )
    verify.add_argument("--secret", required=True, help="the webhook's secret (whsec_…)")
    verify.set_defaults(func=cmd_webhooks_verify)
    sub.add_parser(
        "deliver", help="deliver webhooks in this process (serve does it too, unless told not to)"
    ).set_defaults(func=cmd_deliver)
    add_audit_commands(sub)  # audit export|verify|prune (app/cli_audit.py)
    return root


def main(argv: list[str] | None = None) -> int:
    from app.bundles_cli import BundleFileError
    from app.domain.errors import DomainError
    from app.logs import configure_logging

    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        args.func(settings, args)
    except DomainError as exc:
        sys.stderr.write(f"error: {exc.code}: {exc.message}\n")
        for field in exc.fields:  # each offending field (a bundle's: under its entry)
            path = ".".join(str(p) for p in field.path)
            sys.stderr.write(f"  {path}: {field.message}\n")
        return 1
    except BundleFileError as exc:
        sys.stderr.write(f"error: BAD_REQUEST: {exc}\n")
        return 1
    except DatabaseError as exc:
        hint = "" if args.command == "backup" else " (is the database migrated? run 'migrate')"
        sys.stderr.write(f"error: DATABASE_ERROR: {exc}{hint}\n")
        return 1
    except NotVerified as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except UsePgDump:
        sys.stderr.write(
            "error: backup copies SQLite databases only; for PostgreSQL use pg_dump, e.g.\n"
            '  pg_dump --format=custom --file=assistants.dump "$DATABASE_URL"\n'
            "(with the URL as postgresql://…, without '+asyncpg'; see docs/production.md)\n"
        )
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
