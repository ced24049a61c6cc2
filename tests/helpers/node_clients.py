"""Node.js for the client tests: the `node` on PATH and the packages pinned in tests/js/
(installed by `make install`). `run_node` runs a script with those packages; the
`node_clients` fixture (tests/clients/conftest.py) skips a test with a reason when either is
missing, and fails it instead when REQUIRE_NODE_CLIENTS=1 (as .ci/run sets it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

JS = Path(__file__).resolve().parent.parent / "js"
NODE_MODULES = JS / "node_modules"
REQUIRED_ENV = "REQUIRE_NODE_CLIENTS"
TIMEOUT_SECONDS = 120.0


def missing_node() -> str | None:
    """Why the node client tests cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not NODE_MODULES.is_dir():
        return f"{NODE_MODULES} is missing (run `make install`)"
    return None


def run_node(
    script: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """`node script args…` from tests/js (its packages resolve from there; NODE_PATH too, for a
    CommonJS script kept elsewhere); stdout and stderr captured as text, never raises on a
    non-zero exit."""
    node = shutil.which("node")
    assert node is not None, missing_node()
    return subprocess.run(
        [node, str(script), *args],
        cwd=JS,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
