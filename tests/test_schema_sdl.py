"""The committed schema.graphql is exactly what the code exports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_committed_sdl_matches_the_code():
    exported = subprocess.run(
        [sys.executable, "-m", "app", "export-schema"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert exported == (ROOT / "schema.graphql").read_text(), (
        "schema.graphql is stale: run `make schema`"
    )
