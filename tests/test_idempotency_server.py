"""`Idempotency-Key` across processes: a real `python -m app serve --workers 2` on the test's
database (SQLite and PostgreSQL), threads sending the same key at once. Exactly one effect;
every other answer is the stored one (replayed) or 409 IDEMPOTENCY_KEY_IN_USE."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.models import Assistant, AssistantRevision
from app.settings import Settings
from app.store import Store
from tests.helpers.factories import MakeAssistant, Org
from tests.helpers.idempotency import count_rows, stored_keys
from tests.helpers.server_process import Server

pytestmark = pytest.mark.slow

THREADS = 8
ASSISTANTS = Assistant.__table__  # type: ignore[attr-defined]
REVISIONS = AssistantRevision.__table__  # type: ignore[attr-defined]


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    with Server(settings, tmp_path, workers=2) as running:
        yield running


def all_at_once(
    server: Server, method: str, path: str, headers: dict[str, str], body: dict[str, str]
) -> list[httpx.Response]:
    """The same request from THREADS threads (a connection each), released together."""
    barrier = threading.Barrier(THREADS)

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            http.get("/healthz")  # connected before the barrier
            barrier.wait()
            return http.request(method, path, json=body, headers=headers)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(send, range(THREADS)))


def check_one_effect(answers: list[httpx.Response], status: int) -> httpx.Response:
    """Every answer is the one stored (some replayed) or 409; the first of them is returned."""
    assert {a.status_code for a in answers} <= {status, 409}, [a.text for a in answers]
    done = [a for a in answers if a.status_code == status]
    assert done
    assert len({a.content for a in done}) == 1
    assert sum(a.headers.get("idempotent-replayed") != "true" for a in done) == 1
    for refused in (a for a in answers if a.status_code == 409):
        body = refused.json()
        code = body["code"] if "code" in body else body["errors"][0]["extensions"]["code"]
        assert code == "IDEMPOTENCY_KEY_IN_USE"
        assert refused.headers["retry-after"] == "1"
    return done[0]


async def test_threads_creating_with_one_key_make_one_assistant(
    server: Server, org: Org, db: Store
) -> None:
    headers = {**org.headers, "Idempotency-Key": "create-once"}
    answers = all_at_once(server, "POST", "/orgs/c/assistants", headers, {"name": "Once"})
    created = check_one_effect(answers, 201)
    assert await count_rows(db, ASSISTANTS) == 1
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        again = await http.post("/orgs/c/assistants", json={"name": "Once"}, headers=headers)
    assert (again.status_code, again.content) == (201, created.content)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == created.headers["location"]


async def test_threads_updating_with_one_key_make_one_revision(
    server: Server, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    assistant = await make_assistant(org)
    headers = {**org.headers, "Idempotency-Key": "update-once"}
    path = f"/orgs/c/assistants/{assistant['id']}"
    updated = check_one_effect(all_at_once(server, "PATCH", path, headers, {"name": "New"}), 200)
    assert updated.json()["version"] == 2
    assert await count_rows(db, REVISIONS) == 2
    assert await stored_keys(db) == ["update-once"]


async def test_threads_sending_one_graphql_mutation_make_one_assistant(
    server: Server, org: Org, db: Store
) -> None:
    document = 'mutation { createAssistant(orgId: "c", input: {name: "G"}) { id } }'
    headers = {**org.headers, "Idempotency-Key": "gql-once"}
    answers = all_at_once(server, "POST", "/graphql", headers, {"query": document})
    check_one_effect(answers, 200)
    assert await count_rows(db, ASSISTANTS) == 1
