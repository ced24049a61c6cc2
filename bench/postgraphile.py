"""PostGraphile 4, the peer of the PostgreSQL half: installed, started, and its requests.

bench/peers/package.json and package-lock.json pin it; the bench installs it there with
`npm ci --no-audit --no-fund` when it is missing (node_modules is not committed). It serves the
same tables as the server (`postgraphile -c postgres://… --schema public`, with
`--dynamic-json` so that JSON columns come out as JSON as ours do, without its query log and
GraphiQL), under NODE_ENV=production, pinned to the server core like every measured server.

Its requests select every column of the assistant, its integrations and its actions (the leaf
fields of PostGraphile's types but `nodeId`, read from its live schema): the update is
`updateAssistantById` (keyed by the `id` column, the one our API uses) with a patch of `name`
and `ttsVoiceId`; the list is `allAssistants(first: 100)` of the organisation in `seq` order,
with `totalCount`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
from load import Template
from paths import named
from procs import Server

PEERS = Path(__file__).resolve().parent / "peers"
CLI = PEERS / "node_modules" / "postgraphile" / "cli.js"
# the child types selected under an assistant, by connection field
CHILDREN = {"integrationsByAssistantId": "Integration", "actionsByAssistantId": "Action"}
FLAGS = ["--dynamic-json", "--disable-query-log", "--disable-graphiql"]

INTROSPECTION = """
query {
  __schema { queryType { name } mutationType { name } }
  types: __schema { types { name fields { name args { name } type { ...T } } } }
}
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
"""


def pinned_version() -> str:
    """The version package.json pins."""
    package = json.loads((PEERS / "package.json").read_text())
    version: str = package["dependencies"]["postgraphile"]
    return version


def installed_version() -> str:
    try:
        package = json.loads((CLI.parent / "package.json").read_text())
    except (OSError, ValueError):
        return ""
    version: str = package.get("version", "")
    return version


def ensure_installed() -> str:
    """Installs the pinned PostGraphile into bench/peers when it is missing; '' when it is
    there, else why it is not."""
    if not shutil.which("node"):
        return "node not found (PostGraphile needs Node.js)"
    if installed_version() == pinned_version():
        return ""
    if not shutil.which("npm"):
        return "npm not found: cannot install PostGraphile into bench/peers"
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PEERS,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"npm ci in bench/peers failed: {(done.stderr or done.stdout).strip()[-300:]}"
    if installed_version() != pinned_version():
        return f"npm ci installed postgraphile {installed_version()!r}, not {pinned_version()}"
    return ""


def start(libpq_url: str, log: Path) -> Server:
    node = shutil.which("node") or "node"
    argv = [node, str(CLI), "-c", libpq_url, "--schema", "public"]
    argv += ["--host", "127.0.0.1", "--port", "{port}", *FLAGS]
    server = Server("postgraphile", argv, {"NODE_ENV": "production"}, log)
    server.wait_ready("/graphql")
    return server


def leaves(types: dict[str, Any], name: str, node_id: str) -> list[str]:
    """The columns of a PostGraphile table type: its leaf fields without arguments, but the
    Relay node id (`nodeId` in PostGraphile 4, `id` in 5)."""
    return [
        f["name"]
        for f in types[name]["fields"]
        if not f["args"] and f["name"] != node_id and named(f["type"])["kind"] in ("SCALAR", "ENUM")
    ]


def selection(types: dict[str, Any], node_id: str) -> str:
    """Every column of the assistant, and every column of each of its children."""
    parts = leaves(types, "Assistant", node_id)
    for field, child in CHILDREN.items():
        parts.append(f"{field} {{ nodes {{ {' '.join(leaves(types, child, node_id))} }} }}")
    return " ".join(parts)


def discover(url: str, update: str = "updateAssistantById", node_id: str = "nodeId") -> str:
    """The full selection of an assistant, from the live schema of a PostGraphile (4 by
    default; bench/postgraphile5.py passes 5's names); raises RuntimeError when the schema
    lacks what the bench sends."""
    body = httpx.post(f"{url}/graphql", json={"query": INTROSPECTION}, timeout=30).json()
    types = {t["name"]: t for t in body["data"]["types"]["types"] if t["fields"]}
    missing = [n for n in ("Assistant", *CHILDREN.values()) if n not in types]
    mutations = {
        f["name"] for f in types[body["data"]["__schema"]["mutationType"]["name"]]["fields"]
    }
    queries = {f["name"] for f in types[body["data"]["__schema"]["queryType"]["name"]]["fields"]}
    missing += [n for n in (update,) if n not in mutations]
    missing += [n for n in ("allAssistants",) if n not in queries]
    if missing:
        raise RuntimeError(f"PostGraphile's schema lacks {', '.join(missing)}")
    return selection(types, node_id)


def update_mutation(fields: str) -> str:
    return (
        "mutation Update($id: String!, $name: String!, $voice: String!) { "
        "updateAssistantById(input: {id: $id, assistantPatch: {name: $name, ttsVoiceId: $voice}}) "
        f"{{ assistant {{ {fields} }} }} }}"
    )


def list_query(org: str, fields: str) -> str:
    return (
        f'query List {{ allAssistants(first: 100, condition: {{orgId: "{org}"}}, '
        f"orderBy: SEQ_ASC) {{ totalCount nodes {{ {fields} }} }} }}"
    )


def templates(org: str, fields: str) -> dict[str, list[Template]]:
    update_vars = {"id": "@ID@", "name": "Bench @N@", "voice": "voice-@N@"}
    return {
        "postgraphile_update": [
            Template(
                "POST", "/graphql", {"query": update_mutation(fields), "variables": update_vars}
            )
        ],
        "postgraphile_list": [
            Template("POST", "/graphql", {"query": list_query(org, fields), "variables": {}})
        ],
    }
