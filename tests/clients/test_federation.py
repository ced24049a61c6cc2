"""The server as an Apollo Federation 2 subgraph, as a supergraph build sees it: the SDL a live
server (real uvicorn) answers at `_service { sdl }` composes with another company's subgraph
through `@apollo/composition`'s `composeServices` (a node script), with no error, and the
supergraph's `Assistant` carries both subgraphs' fields. Needs node and tests/js/node_modules
(`make install`): skipped without them, failed instead when REQUIRE_NODE_CLIENTS=1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.node_clients import JS, run_node
from tests.helpers.server_process import Server

COMPOSE = JS / "compose.cjs"
TICKETS = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])

type Assistant @key(fields: "id") {
  id: ID!
  ticketsOpen: Int
}

type Ticket {
  id: ID!
  subject: String!
  assistant: Assistant!
}

type Query {
  tickets: [Ticket!]!
}
"""
# A subgraph that defines the assistant's `name` again with another type: must not compose.
CLASHING = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])

type Assistant @key(fields: "id") {
  id: ID!
  name: Int
}

type Query {
  favourite: Assistant
}
"""


def compose(tmp_path: Path, subgraphs: dict[str, str]) -> dict[str, Any]:
    args = []
    for name, sdl in subgraphs.items():
        path = tmp_path / f"{name}.graphql"
        path.write_text(sdl)
        args.append(f"{name}={path}")
    done = run_node(COMPOSE, *args)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture
def live(settings, tmp_path: Path, node_clients):
    with Server(settings, tmp_path, workers=1) as server:
        yield server


async def test_the_live_subgraph_sdl_composes_with_another_subgraph(live, org, tmp_path):
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as http:
        response = await http.post(
            "/graphql", json={"query": "{ _service { sdl } }"}, headers=org.headers
        )
    assert response.status_code == 200, response.text
    sdl = response.json()["data"]["_service"]["sdl"]
    assert '@key(fields: "id")' in sdl

    result = compose(tmp_path, {"assistants": sdl, "tickets": TICKETS})
    assert result["errors"] == []
    types = result["types"]
    assert {"name", "version", "config", "integrations", "ticketsOpen"} <= set(types["Assistant"])
    assert types["Ticket"] == ["id", "subject", "assistant"]
    assert {"assistant", "assistants", "node", "nodes", "tickets"} <= set(types["Query"])
    assert not {"_service", "_entities"} & set(types["Query"])  # the router's, not the API's

    clash = compose(tmp_path, {"assistants": sdl, "clashing": CLASHING})
    assert clash["errors"], "a clashing subgraph must not compose"
    assert any("Assistant.name" in error for error in clash["errors"])
