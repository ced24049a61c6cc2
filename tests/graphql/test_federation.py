"""The served schema is an Apollo Federation 2 subgraph: `_service { sdl }` answers the committed
subgraph.graphql (`Assistant @key(fields: "id")`), `_entities` resolves only what the key may
read (null for the rest), and schema.graphql stays free of federation for the other tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from app.models import new_id
from tests.helpers.event_clients import AsgiWebSocket
from tests.helpers.keys import MANAGE, READ, WRITE, make_key, make_target
from tests.helpers.statements import statements

ROOT = Path(__file__).resolve().parents[2]
SUBGRAPH = ROOT / "subgraph.graphql"
ENTITIES = """
query Entities($representations: [_Any!]!) {
  _entities(representations: $representations) {
    __typename
    ... on Assistant { id name version integrations { id } }
  }
}
"""


def representation(assistant_id: str, typename: str = "Assistant") -> dict[str, str]:
    return {"__typename": typename, "id": assistant_id}


async def entities(client, org, representations: list[Any]) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": ENTITIES, "variables": {"representations": representations}},
        headers=org.headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_committed_subgraph_sdl_matches_the_code():
    exported = subprocess.run(
        [sys.executable, "-m", "app", "export-schema", "--federation"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert exported == SUBGRAPH.read_text(), "subgraph.graphql is stale: run `make schema`"


def test_schema_graphql_carries_no_federation():
    """ariadne-codegen and the other SDL tools read schema.graphql as plain GraphQL."""
    plain = (ROOT / "schema.graphql").read_text()
    for federation in ("@key", "@link", "_service", "_entities", "_Any", "_Entity", "_Service"):
        assert federation not in plain
    subgraph = SUBGRAPH.read_text()
    assert subgraph.startswith(
        'schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])'
    )
    assert 'type Assistant implements Node @key(fields: "id") {' in subgraph


async def test_service_sdl_is_the_subgraph_sdl(client, org):
    response = await client.post(
        "/graphql", json={"query": "{ _service { sdl } }"}, headers=org.headers
    )
    body = response.json()
    assert "errors" not in body, body
    assert body["data"]["_service"]["sdl"] + "\n" == SUBGRAPH.read_text()


async def test_service_sdl_is_refused_when_introspection_is_off(make_client, org):
    """The SDL is the whole schema: with introspection off it is not served (a supergraph
    composes from the committed subgraph.graphql), with a key or without one."""
    closed = await make_client(graphql_introspection=False)
    for headers in (org.headers, {}):
        response = await closed.post(
            "/graphql", json={"query": "{ _service { sdl } }"}, headers=headers
        )
        body = response.json()
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]
        assert "'_service'" in body["errors"][0]["message"]
        assert "schema @link" not in response.text


async def test_entities_resolve_the_keys_own_assistants_in_order(client, org):
    first, second = await make_target(client, org, "One"), await make_target(client, org, "Two")
    body = await entities(
        client, org, [representation(second.assistant_id), representation(first.assistant_id)]
    )
    assert "errors" not in body, body
    assert body["data"]["_entities"] == [
        {"__typename": "Assistant", "id": second.assistant_id, "name": "Two 2", "version": 2,
         "integrations": [{"id": second.integration_id}]},
        {"__typename": "Assistant", "id": first.assistant_id, "name": "One 2", "version": 2,
         "integrations": [{"id": first.integration_id}]},
    ]  # fmt: skip


async def test_entities_are_null_for_what_the_key_may_not_read(client, org, other_org):
    mine = await make_target(client, org, "Mine")
    theirs = await make_target(client, other_org, "Theirs")
    body = await entities(
        client,
        org,
        [
            representation(theirs.assistant_id),  # another organisation's
            representation(new_id()),  # nobody's
            representation(mine.integration_id),  # not an assistant's id
            representation(mine.assistant_id, "Integration"),  # not an entity type
            representation(mine.assistant_id),
        ],
    )
    assert "errors" not in body, body
    assert [e and e["id"] for e in body["data"]["_entities"]] == [
        None,
        None,
        None,
        None,
        mine.assistant_id,
    ]
    for scopes in ([WRITE], [MANAGE]):  # a key without assistants:read
        key = await make_key(client, org, scopes)
        refused = await entities(client, key, [representation(mine.assistant_id)])
        assert refused["data"] == {"_entities": [None]}
        assert "errors" not in refused
    bound = await make_key(client, org, [READ], assistant_ids=[mine.assistant_id])
    other = await make_target(client, org, "Other")
    seen = await entities(
        client, bound, [representation(other.assistant_id), representation(mine.assistant_id)]
    )
    assert [e and e["id"] for e in seen["data"]["_entities"]] == [None, mine.assistant_id]


async def test_entities_read_once_for_many_and_cost_per_representation(client, db, org):
    targets = [await make_target(client, org, f"t{n}") for n in range(6)]
    counts = []
    for chosen in (targets[:1], targets):
        with statements(db) as seen:
            body = await entities(client, org, [representation(t.assistant_id) for t in chosen])
        assert all(e is not None for e in body["data"]["_entities"])
        assert body["extensions"]["cost"]["requested"] == len(chosen) * (1 + 100)
        counts.append(len(seen))
    assert counts[0] == counts[1]


async def test_more_than_100_representations_are_refused_before_anything_is_read(client, db, org):
    """240 copies of one id passed the cost check (240 items): beyond 100 the list is refused,
    naming it, and nothing is read; 100 run, each an item of the cost."""
    target = await make_target(client, org)
    copies = [representation(target.assistant_id)] * 240
    with statements(db) as seen:
        body = await entities(client, org, copies)
    assert body["data"] is None
    [error] = body["errors"]
    assert (
        error["message"] == "'representations' may hold at most 100 representations (it holds 240)"
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["fields"] == [
        {"path": ["representations"], "message": "at most 100 representations"}
    ]
    assert body["extensions"]["cost"]["requested"] == 240 * (1 + 100)
    assert not [s for s in seen if "assistants" in s or "integrations" in s]
    hundred = await entities(client, org, copies[:100])
    assert "errors" not in hundred
    assert [e["id"] for e in hundred["data"]["_entities"]] == [target.assistant_id] * 100
    assert hundred["extensions"]["cost"]["requested"] == 100 * (1 + 100)


async def test_entities_need_a_key(client, org):
    target = await make_target(client, org)
    response = await client.post(
        "/graphql",
        json={
            "query": ENTITIES,
            "variables": {"representations": [representation(target.assistant_id)]},
        },
    )
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_entities_and_service_run_over_the_websocket_too(app, client, org, other_org):
    mine = await make_target(client, org, "Mine")
    theirs = await make_target(client, other_org, "Theirs")
    representations = [representation(theirs.assistant_id), representation(mine.assistant_id)]
    async with AsgiWebSocket(app) as socket:
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        payload = {"query": ENTITIES, "variables": {"representations": representations}}
        await socket.send({"id": "1", "type": "subscribe", "payload": payload})
        found = await socket.receive()
        await socket.send(
            {"id": "2", "type": "subscribe", "payload": {"query": "{ _service { sdl } }"}}
        )
        service = await socket.receive()
        while service["type"] != "next":  # the first operation's `complete`
            service = await socket.receive()
    assert found["type"] == "next", found
    assert [e and e["name"] for e in found["payload"]["data"]["_entities"]] == [None, "Mine 2"]
    assert service["payload"]["data"]["_service"]["sdl"] + "\n" == SUBGRAPH.read_text()
