"""Bundles (issue 26, docs/bundles.md): `apply` of a 1,000-assistant bundle with 10 changes on
SQLite, and a re-apply of it unchanged, which must write nothing.

A fresh database in data/bench/bundles.db: migrated, one organisation, then a bundle of 1,000
assistants (each with 2 integrations and 2 actions) applied once to create them. The figures:
the wall time of `python -m app apply FILE --org ORG` (the process a team runs, its start
included) with 10 assistants changed (one leaf each, plus one integration's config), and the
same file applied again: its plan must be all `unchanged` and every table byte for byte the
same (revisions, versions, `updated_at` included). Target: under 10 s.

Runs alone as `python bench/bundles.py`, or as `BENCH_ONLY=bundles make bench`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "bench"
ASSISTANTS = 1000
CHANGED = 10
TARGET_SECONDS = 10.0


def _cli(database: Path, *args: str) -> tuple[str, float]:
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{database}", "LOG_LEVEL": "WARNING"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"python -m app {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout, elapsed


def _entry(index: int) -> dict[str, Any]:
    return {
        "ref": f"assistant-{index:04d}",
        "name": f"Assistant {index}",
        "config": {
            "language": "en",
            "instructions": f"You are assistant {index}. " * 20,
            "tts": {"model": "tts-1", "voice_id": f"voice-{index % 7}"},
            "conversation": {"suggested_messages": ["Hello", "Help"], "enable_memories": True},
        },
        "integrations": [
            {"integration_id": "whatsapp", "config": {"phone": f"+351{index:06d}"}},
            {"integration_id": "internal", "enabled": False},
        ],
        "actions": [
            {
                "action_id": "TOOLS:HTTP_REQUEST",
                "name": "Lookup",
                "config": {"input": {"i": index}},
            },
            {"action_id": "TOOLS:EMAIL", "name": "Mail", "instructions": "Be short."},
        ],
    }


def _fingerprint(database: Path) -> str:
    """A hash of every row of every table (but when keys were last used)."""
    digest = hashlib.sha256()
    with sqlite3.connect(database) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        for table in tables:
            if table == "api_keys":
                continue
            for row in connection.execute(f'SELECT * FROM "{table}" ORDER BY 1'):
                digest.update(repr(row).encode())
    return digest.hexdigest()


def run() -> dict[str, Any]:
    DATA.mkdir(parents=True, exist_ok=True)
    database = DATA / "bundles.db"
    for stale in DATA.glob("bundles.db*"):
        stale.unlink()
    _cli(database, "migrate")
    org_id = json.loads(_cli(database, "orgs", "create", "Bundles bench")[0])["org_id"]
    document = {"kind": "assistants-api/bundle", "version": 1}
    entries = [_entry(i) for i in range(ASSISTANTS)]
    path = DATA / "bundle.json"
    path.write_text(json.dumps({**document, "assistants": entries}))
    created, create_s = _cli(database, "apply", str(path), "--org", org_id)
    assert json.loads(created)["summary"]["create"] == ASSISTANTS
    step = ASSISTANTS // CHANGED
    for index in range(0, ASSISTANTS, step):
        entries[index]["config"]["tts"]["voice_id"] = "voice-changed"
        entries[index]["integrations"][0]["config"] = {"phone": "+44"}
    path.write_text(json.dumps({**document, "assistants": entries}))
    changed, change_s = _cli(database, "apply", str(path), "--org", org_id)
    summary = json.loads(changed)["summary"]
    before = _fingerprint(database)
    again, again_s = _cli(database, "apply", str(path), "--org", org_id)
    unchanged = json.loads(again)["summary"]
    wrote_nothing = _fingerprint(database) == before and unchanged["unchanged"] == ASSISTANTS
    return {
        "assistants": ASSISTANTS,
        "bytes": path.stat().st_size,
        "create_s": round(create_s, 2),
        "apply_10_changes_s": round(change_s, 2),
        "apply_10_changes_summary": summary,
        "reapply_unchanged_s": round(again_s, 2),
        "reapply_wrote_nothing": wrote_nothing,
        "target_s": TARGET_SECONDS,
        "met": change_s < TARGET_SECONDS and wrote_nothing and summary["update"] == CHANGED,
    }


def render(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            "Bundles (SQLite, `python -m app apply`, process start included)",
            f"  bundle: {result['assistants']} assistants, {result['bytes']:,} bytes",
            f"  first apply (creates all): {result['create_s']} s",
            f"  apply with {CHANGED} changes: {result['apply_10_changes_s']} s "
            f"(target < {result['target_s']:.0f} s) {result['apply_10_changes_summary']}",
            f"  re-apply unchanged: {result['reapply_unchanged_s']} s, wrote nothing: "
            f"{result['reapply_wrote_nothing']}",
            f"  target met: {result['met']}",
        ]
    )


def main() -> None:
    result = run()
    print(render(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
