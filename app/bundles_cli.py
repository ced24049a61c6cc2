"""`python -m app export ORG_ID …` and `python -m app apply FILE --org ORG_ID …` (docs/bundles.md):
the command line's side of bundles, on the use cases the HTTP routes call."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from app.settings import Settings

if TYPE_CHECKING:
    from app.store import Tx

T = TypeVar("T")
InTransaction = Callable[[Settings, Callable[["Tx"], Awaitable[Any]]], Any]


class BundleFileError(Exception):
    """The bundle file cannot be read: missing, too large, or neither JSON nor YAML."""


def read_bundle_file(path: str) -> Any:
    """The document of a bundle file (`-`: standard input): JSON for `.json`, YAML (safe loader
    only) for `.yaml` and `.yml`, otherwise JSON when it parses as JSON, else YAML; at most
    5 MiB."""
    from app.domain.bundle_format import MAX_BUNDLE_BYTES

    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_BUNDLE_BYTES + 1)
        else:
            with Path(path).open("rb") as handle:
                data = handle.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise BundleFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleFileError(f"{path} is over {MAX_BUNDLE_BYTES} bytes (5 MiB)")
    suffix = "" if path == "-" else Path(path).suffix.lower()
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and _looks_like_json(data)):
        try:
            return json.loads(data)
        except ValueError as exc:
            raise BundleFileError(f"{path} is not valid JSON: {exc}") from None
    return _yaml(path, data)


def _looks_like_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def _yaml(path: str, data: bytes) -> Any:
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no types (no types-PyYAML pinned)

    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BundleFileError(f"{path} is not valid YAML: {first}") from None


def dump(document: Any, fmt: str) -> str:
    if fmt == "yaml":
        import yaml

        text: str = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        return text
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def cmd_export(settings: Settings, args: argparse.Namespace, in_transaction: InTransaction) -> None:
    from app.domain.bundles import export_bundle
    from app.domain.keys import organisation_access

    async def work(tx: Tx) -> dict[str, Any]:
        access = await organisation_access(tx, args.org_id)
        return await export_bundle(tx, access=access, refs=args.ref or ())

    sys.stdout.write(dump(in_transaction(settings, work), args.format))


def cmd_apply(settings: Settings, args: argparse.Namespace, in_transaction: InTransaction) -> None:
    from app.domain.bundles import apply_bundle
    from app.domain.keys import organisation_access
    from app.domain.revisions import Writer

    document = read_bundle_file(args.file)
    writer = Writer(None, "bundle", settings.revisions_keep, settings.org_storage_quota)

    async def work(tx: Tx) -> dict[str, Any]:
        access = await organisation_access(tx, args.org)
        return await apply_bundle(
            tx,
            access=access,
            document=document,
            writer=writer,
            default_model=settings.default_model,
            env=dict(os.environ),
            dry_run=args.dry_run,
            prune=args.prune,
        )

    sys.stdout.write(json.dumps(in_transaction(settings, work)) + "\n")


def add_parsers(sub: Any, in_transaction: InTransaction) -> None:
    """The `export` and `apply` commands."""
    export = sub.add_parser("export", help="print an organisation's assistants as a bundle")
    export.add_argument("org_id")
    export.add_argument("--ref", action="append", help="only this assistant (repeatable)")
    export.add_argument("--format", choices=("json", "yaml"), default="json")
    export.set_defaults(func=lambda s, a: cmd_export(s, a, in_transaction))
    apply = sub.add_parser("apply", help="apply a bundle file (JSON or YAML) to an organisation")
    apply.add_argument("file")
    apply.add_argument("--org", required=True, help="the organisation's id")
    apply.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    apply.add_argument(
        "--prune", action="store_true", help="delete assistants whose ref is not in the bundle"
    )
    apply.set_defaults(func=lambda s, a: cmd_apply(s, a, in_transaction))
