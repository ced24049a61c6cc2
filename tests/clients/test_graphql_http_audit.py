"""The `graphql-http` package's server audit (GraphQL over HTTP, docs/graphql-clients.md) against a
live uvicorn server, from tests/js/graphql_http_audit.mjs: every audit, MUST, SHOULD and MAY
alike, is `ok`."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from tests.helpers.factories import Org
from tests.helpers.node_clients import JS, run_node
from tests.helpers.server_process import Server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    with Server(settings, tmp_path, workers=1) as running:
        yield running


def test_every_audit_is_ok(node_clients: Path, server: Server, org: Org) -> None:
    done = run_node(JS / "graphql_http_audit.mjs", f"{server.base_url}/graphql", org.api_key)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    summary = Counter(result["status"] for result in results)
    print(f"graphql-http server audit: {dict(summary)} of {len(results)}")
    assert len(results) >= 40
    assert [r for r in results if r["status"] != "ok"] == []
