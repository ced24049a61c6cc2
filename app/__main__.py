"""The command line: `python -m app serve|migrate|orgs|keys|export-schema|demo`.

Data commands print one JSON object on stdout; errors go to stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import Settings

T = TypeVar("T")
DEMO_FILE = Path("data/demo.json")


def _print(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from app.db import Database, create_engine
    from app.events import install_revision_notices

    install_revision_notices()  # revisions written here reach live subscribers too

    async def main() -> T:
        db = Database(create_engine(settings))
        try:
            async with db.write() as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(main())


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> None:
    from app.migrate import upgrade

    upgrade(settings)
    _print({"migrated": True})


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from app.migrate import upgrade

    if args.host:
        os.environ["HOST"] = args.host
    if args.port:
        os.environ["PORT"] = str(args.port)
    settings = Settings()
    upgrade(settings)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
    )


def cmd_orgs_create(settings: Settings, args: argparse.Namespace) -> None:
    from app.auth import create_organisation

    async def work(session: AsyncSession) -> dict[str, Any]:
        org, key_id, token = await create_organisation(session, name=args.name)
        return {"org_id": org.id, "name": org.name, "key_id": key_id, "api_key": token}

    _print(_in_transaction(settings, work))


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> None:
    from app.auth import create_key

    async def work(session: AsyncSession) -> dict[str, Any]:
        key_id, token = await create_key(session, org_id=args.org_id)
        return {"org_id": args.org_id, "key_id": key_id, "api_key": token}

    _print(_in_transaction(settings, work))


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> None:
    from app.auth import revoke_key

    async def work(session: AsyncSession) -> dict[str, Any]:
        await revoke_key(session, key_id=args.key_id)
        return {"key_id": args.key_id, "revoked": True}

    _print(_in_transaction(settings, work))


def cmd_export_schema(_settings: Settings, _args: argparse.Namespace) -> None:
    from app.graphql.schema import schema

    sys.stdout.write(schema.as_str() + "\n")


def cmd_demo(settings: Settings, _args: argparse.Namespace) -> None:
    """Makes sure a demo organisation, assistant and key exist; prints how to use them."""
    from app.demo import ensure_demo
    from app.migrate import upgrade

    upgrade(settings)
    demo = _in_transaction(settings, lambda session: ensure_demo(session, settings, DEMO_FILE))
    base = settings.base_url
    sys.stderr.write(
        "\nDemo organisation ready.\n"
        f"  API key:   {demo['api_key']}\n"
        f"  GraphiQL:  {base}/graphql  (header: Authorization: Bearer {demo['api_key']})\n"
        "  Try the documented PATCH route:\n"
        f"    curl -X PATCH {base}/orgs/{demo['org_id']}/assistants/{demo['assistant_id']} \\\n"
        f"      -H 'Authorization: Bearer {demo['api_key']}' \\\n"
        "      -H 'Content-Type: application/json' \\\n"
        """      -d '{"config": {"tts": {"voice_id": "v2"}}}'\n\n"""
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
    sub.add_parser("export-schema", help="print the SDL").set_defaults(func=cmd_export_schema)
    sub.add_parser("demo", help="ensure the demo organisation").set_defaults(func=cmd_demo)

    orgs = sub.add_parser("orgs").add_subparsers(dest="action", required=True)
    create_org = orgs.add_parser("create", help="a new organisation and its first API key")
    create_org.add_argument("name")
    create_org.set_defaults(func=cmd_orgs_create)

    keys = sub.add_parser("keys").add_subparsers(dest="action", required=True)
    create_key = keys.add_parser("create", help="a new API key of an organisation")
    create_key.add_argument("org_id")
    create_key.set_defaults(func=cmd_keys_create)
    revoke = keys.add_parser("revoke", help="revoke an API key, at once, everywhere")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_keys_revoke)
    return root


def main(argv: list[str] | None = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.domain.errors import DomainError
    from app.logs import configure_logging

    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        args.func(settings, args)
    except DomainError as exc:
        sys.stderr.write(f"error: {exc.code}: {exc.message}\n")
        return 1
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        sys.stderr.write(
            f"error: DATABASE_ERROR: {reason} (is the database migrated? run 'migrate')\n"
        )
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
