"""Apollo Client 4 with automatic persisted queries (`createPersistedQueryLink`, sha256 from
node's crypto, `useGETForHashedQueries`) against a live two-worker server, from
tests/js/apollo_persisted_queries.mjs: the first request of a query is its hash alone over GET
(a miss), the link then registers it with a POST, and every later request is the hash alone
(queries over GET, mutations over POST); the server stores exactly the two documents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.graphql.view import GRAPHQL_RESPONSE
from app.models import Assistant, PersistedDocument
from app.settings import Settings
from app.store import Store
from tests.helpers.factories import Org
from tests.helpers.node_clients import JS, run_node
from tests.helpers.server_process import Server

pytestmark = pytest.mark.slow
DOCUMENTS: Any = PersistedDocument.__table__  # type: ignore[attr-defined]
ASSISTANTS: Any = Assistant.__table__  # type: ignore[attr-defined]


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    with Server(settings, tmp_path, workers=2) as running:
        yield running


def sent(request: dict[str, Any]) -> dict[str, Any]:
    """What one request carried: its method, and the GraphQL parameters of its URL or body."""
    if request["method"] == "GET":
        params = {k: v[0] for k, v in parse_qs(urlsplit(request["url"]).query).items()}
        return {
            "method": "GET",
            **{k: json.loads(v) if k != "operationName" else v for k, v in params.items()},
        }
    return {"method": request["method"], **json.loads(request["body"])}


async def test_apollo_client_persisted_queries(
    node_clients: Path, server: Server, org: Org, db: Store
) -> None:
    done = run_node(JS / "apollo_persisted_queries.mjs", f"{server.base_url}/graphql", org.api_key)
    assert done.returncode == 0, done.stderr + server.log()
    report = json.loads(done.stdout)
    results, requests = report["results"], report["requests"]

    assert results["firstList"]["assistants"]["totalCount"] == 0
    assert results["secondList"] == results["firstList"]
    assert results["created"]["createAssistant"]["name"] == "First"
    assert results["createdAgain"]["createAssistant"]["name"] == "Second"
    names = [node["name"] for node in results["lastList"]["assistants"]["nodes"]]
    assert names == ["First", "Second"]

    async with db.read() as tx:
        stored: dict[str, str] = dict(
            await tx.all(select(DOCUMENTS.c.sha256, DOCUMENTS.c.document))
        )
        assert len(await tx.all(select(ASSISTANTS.c.id))) == 2
    assert len(stored) == 2
    [list_text] = [text for text in stored.values() if text.startswith("query List")]
    [create_text] = [text for text in stored.values() if text.startswith("mutation Create")]
    hashes = {text: sha for sha, text in stored.items()}
    list_hash = {"version": 1, "sha256Hash": hashes[list_text]}
    create_hash = {"version": 1, "sha256Hash": hashes[create_text]}

    seen = [sent(request) for request in requests]
    assert [(s["method"], "query" in s, s["extensions"]["persistedQuery"]) for s in seen] == [
        ("GET", False, list_hash),  # the hash alone: PERSISTED_QUERY_NOT_FOUND
        ("POST", True, list_hash),  # registered
        ("GET", False, list_hash),  # a hit, from whichever worker
        ("POST", False, create_hash),  # mutations never go over GET
        ("POST", True, create_hash),
        ("POST", False, create_hash),
        ("GET", False, list_hash),
    ]
    assert seen[1]["query"] == list_text
    assert seen[4]["query"] == create_text
    assert all(request["status"] == 200 for request in requests)
    assert all(request["contentType"] == GRAPHQL_RESPONSE for request in requests)
