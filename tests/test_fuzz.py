"""Fuzzing with schemathesis against a live server on 127.0.0.1 (SQLite): OpenAPI mode on the REST
routes (from /openapi.json) and GraphQL mode on /graphql, authenticated, at most MAX_EXAMPLES
generated cases per operation, with a fixed seed (FUZZ_SEED overrides it) so CI is repeatable.

Checks: REST `not_a_server_error`, `status_code_conformance`, `response_schema_conformance`;
GraphQL `no_internal_error` (below), `status_code_conformance`, `response_schema_conformance`.
Schemathesis' own GraphQL `not_a_server_error` counts every `errors` entry with a path as a
server failure, while this API answers expected outcomes (NOT_FOUND, FORBIDDEN, BAD_USER_INPUT)
that way; `no_internal_error` fails on any 5xx and on any error coded INTERNAL_SERVER_ERROR or
without a code. Whatever the run, the server log must hold no masked failure.

Run as the CLI (`schemathesis run`) in a subprocess; this module is also its hooks module
(SCHEMATHESIS_HOOKS=tests.test_fuzz), which registers that check and the custom scalars.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

ROOT = Path(__file__).resolve().parent.parent
MAX_EXAMPLES = 25
SEED = os.environ.get("FUZZ_SEED", "20260101")
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


# --- hooks, loaded by the schemathesis CLI ---------------------------------------------------


@schemathesis.check
def no_internal_error(_ctx: Any, response: Any, _case: Any) -> None:
    """No 5xx; on GraphQL, no error that is INTERNAL_SERVER_ERROR or carries no code."""
    if response.status_code >= 500:
        raise AssertionError(f"server error {response.status_code}: {response.text[:500]}")
    try:
        body = json.loads(response.content)
    except ValueError:
        return
    for error in body.get("errors") or [] if isinstance(body, dict) else []:
        code = (error.get("extensions") or {}).get("code")
        if code in (None, "INTERNAL_SERVER_ERROR"):
            raise AssertionError(f"unexpected GraphQL error: {error}")


def _object(entries: dict[str, graphql.ValueNode]) -> graphql.ValueNode:
    return nodes.Object(
        [
            graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v)
            for k, v in entries.items()
        ]
    )


_LEAF = st.one_of(
    st.integers(-(10**6), 10**6).map(nodes.Int),
    st.text(max_size=20).map(nodes.String),
    st.booleans().map(nodes.Boolean),
    st.just(nodes.Null),
)
_JSON = st.one_of(
    st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), _LEAF, max_size=4).map(_object),
    _LEAF,
)
schemathesis.graphql.scalar("JSON", _JSON)
schemathesis.graphql.scalar(
    "DateTime", st.datetimes(timezones=st.just(UTC)).map(lambda d: nodes.String(d.isoformat()))
)


# --- the live server -------------------------------------------------------------------------


@dataclass
class Live:
    base_url: str
    api_key: str
    ids: dict[str, list[str]]
    log: Path
    work: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _app_command(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _wait_healthy(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not start:\n{log.read_text()}")


def _seed_data(base_url: str, api_key: str) -> dict[str, list[str]]:
    """Real ids, so that generated requests reach past the 404s."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as http:
        assistant = http.post("/orgs/c/assistants", json={"name": "Fuzz"}).json()["id"]
        base = f"/orgs/c/assistants/{assistant}"
        integration = http.post(f"{base}/integrations", json={"integration_id": "whatsapp"})
        action = http.post(
            f"{base}/actions", json={"action_id": "TOOLS:HTTP_REQUEST", "name": "call"}
        )
        avatar = http.post("/orgs/c/avatars", content=PNG, headers={"content-type": "image/png"})
        return {
            "orgs": ["c"],
            "assistants": [assistant],
            "integrations": [integration.json()["id"]],
            "actions": [action.json()["id"]],
            "avatars": [avatar.json()["id"]],
        }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("fuzz")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"HOST", "PORT", "PUBLIC_URL"}}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{work / 'fuzz.db'}",
        AVATARS_DIR=str(work / "avatars"),
        RATE_LIMIT="1000000/minute",
        GRAPHQL_POINTS="100000000",
        PYTHONUNBUFFERED="1",
    )
    _app_command(env, "migrate")
    org = _app_command(env, "orgs", "create", "Fuzz")
    log = work / "server.log"
    command = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base_url, process, log)
        yield Live(base_url, org["api_key"], _seed_data(base_url, org["api_key"]), log, work)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _config(live: Live, bindings: dict[str, str]) -> Path:
    lines = ["[parameters]"]
    lines += [
        f'"{key}" = {{ dictionary = "{name}", probability = 0.8 }}'
        for key, name in bindings.items()
    ]
    for name, values in live.ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]
    path = live.work / f"schemathesis-{len(bindings)}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _schemathesis(live: Live, config: Path, location: str, checks: str, *extra: str) -> str:
    executable = Path(sys.executable).parent / "schemathesis"
    command = [str(executable), "--config-file", str(config), "run", location]
    command += ["-H", f"Authorization: Bearer {live.api_key}", "--checks", checks]
    command += ["--max-examples", str(MAX_EXAMPLES), "--seed", SEED, "--no-color", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.test_fuzz"}
    done = subprocess.run(
        command, cwd=live.work, env=env, capture_output=True, text=True, timeout=600
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


def _cases(output: str) -> int:
    match = re.search(r"Test cases:\s+(\d+) generated, (\d+) passed", output)
    assert match, output[-3000:]
    assert match.group(1) == match.group(2), output[-3000:]
    return int(match.group(1))


def _no_masked_failures(live: Live) -> None:
    masked = [line for line in live.log.read_text().splitlines() if '"level":"ERROR"' in line]
    assert masked == [], "\n".join(masked[:5])


PATH_BINDINGS = {
    "path.org_id": "orgs",
    "path.assistant_id": "assistants",
    "path.integration_id": "integrations",
    "path.action_id": "actions",
    "path.avatar_id": "avatars",
}
GRAPHQL_BINDINGS = {
    "*.*.orgId": "orgs",
    "*.*.assistantId": "assistants",
    "*.*.id": "assistants",
    "*.*.integrationId": "integrations",
    "*.*.actionId": "actions",
}


@pytest.mark.slow
def test_rest_routes_survive_openapi_fuzzing(live):
    output = _schemathesis(
        live,
        _config(live, PATH_BINDINGS),
        f"{live.base_url}/openapi.json",
        "not_a_server_error,status_code_conformance,response_schema_conformance",
        "--phases",
        "examples,coverage,fuzzing",
        "--exclude-path",
        "/orgs/{org_id}/events",  # a stream that never ends; tested in its own module
    )
    cases = _cases(output)
    print(f"\nschemathesis REST: {cases} cases")
    assert cases >= 20 * MAX_EXAMPLES
    _no_masked_failures(live)


@pytest.mark.slow
def test_graphql_survives_fuzzing(live):
    output = _schemathesis(
        live,
        _config(live, GRAPHQL_BINDINGS),
        f"{live.base_url}/graphql",
        "no_internal_error,status_code_conformance,response_schema_conformance",
    )
    cases = _cases(output)
    print(f"\nschemathesis GraphQL: {cases} cases")
    assert cases >= 10 * MAX_EXAMPLES
    _no_masked_failures(live)
