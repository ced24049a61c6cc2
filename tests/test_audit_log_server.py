"""The audit chain under concurrency: threads writing to one organisation through a real
`python -m app serve --workers 2` (SQLite and PostgreSQL) leave one unbroken chain, one entry
per change and per refusal, in id order."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.helpers.factories import Org
from tests.helpers.server_process import ROOT, Server, server_env

pytestmark = pytest.mark.slow

THREADS = 8
ROUNDS = 12


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    with Server(settings, tmp_path, workers=2) as running:
        yield running


def writer(base_url: str, org: Org, reader: Org, n: int) -> tuple[int, int]:
    """ROUNDS changes (PATCHes of its own assistant, every third a new assistant) and a refusal
    every fourth round; (changes, refusals) answered."""
    changes = refusals = 0
    with httpx.Client(base_url=base_url, timeout=60) as http:
        made = http.post("/orgs/c/assistants", json={"name": f"w{n}"}, headers=org.headers)
        assert made.status_code == 201, made.text
        changes += 1
        path = f"/orgs/c/assistants/{made.json()['id']}"
        for round_ in range(ROUNDS):
            if round_ % 3 == 2:
                answer = http.post("/orgs/c/assistants", json={"name": "x"}, headers=org.headers)
                assert answer.status_code == 201, answer.text
            else:
                answer = http.patch(path, json={"name": f"w{n}-{round_}"}, headers=org.headers)
                assert answer.status_code == 200, answer.text
            changes += 1
            if round_ % 4 == 3:
                refused = http.patch(path, json={"name": "no"}, headers=reader.headers)
                assert refused.status_code == 403
                refusals += 1
    return changes, refusals


def all_entries(base_url: str, org: Org) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with httpx.Client(base_url=base_url, timeout=60) as http:
        page = 1
        while True:
            answer = http.get(f"/orgs/c/audit-log?page={page}&take=100", headers=org.headers)
            assert answer.status_code == 200, answer.text
            found += answer.json()
            if len(answer.json()) < 100:
                return found
            page += 1


def test_concurrent_writers_leave_one_unbroken_chain(
    server: Server, org: Org, settings: Settings
) -> None:
    base_url = server.base_url
    with httpx.Client(base_url=base_url, timeout=60) as http:
        made = http.post(
            "/orgs/c/api-keys",
            json={"name": "reader", "scopes": ["assistants:read"]},
            headers=org.headers,
        )
        assert made.status_code == 201, made.text
        reader = Org(org.org_id, made.json()["id"], made.json()["api_key"])
    before = len(all_entries(base_url, org))
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda n: writer(base_url, org, reader, n), range(THREADS)))
    changes = sum(c for c, _ in results)
    refusals = sum(r for _, r in results)

    found = all_entries(base_url, org)
    assert len(found) == before + changes + refusals
    new = found[: changes + refusals]
    assert sum(e["outcome"] == "denied" for e in new) == refusals
    ids = [e["id"] for e in found]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == len(ids)
    verified = subprocess.run(
        [sys.executable, "-m", "app", "audit", "verify", org.org_id],
        cwd=ROOT,
        env=server_env(settings, 0),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout) == {"entries": len(found), "ok": True}
