"""Relay object identification: `node(id:)` and `nodes(ids:)` find assistants, integrations and
actions by the id they already have, answer only what the calling key may read (null for the
rest, never an error that tells "elsewhere" from "nowhere"), read in a constant number of
statements, and cost one item per id."""

from __future__ import annotations

from typing import Any

from app.models import new_id
from tests.helpers.event_clients import AsgiWebSocket
from tests.helpers.keys import MANAGE, READ, WRITE, Target, make_key, make_target
from tests.helpers.statements import statements

NODES = """
query Nodes($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename id
    ... on Assistant { name integrations { id } actions { id } }
    ... on Integration { integrationId assistantId }
    ... on Action { name assistantId }
  }
}
"""
NODE = """
query Node($id: ID!) {
  node(id: $id) { __typename id ... on Assistant { name version } ... on Action { actionId } }
}
"""


async def run(client, org, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=org.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_node_finds_each_type_by_its_plain_id(client, org):
    target = await make_target(client, org)
    for node_id, expected in (
        (target.assistant_id, {"__typename": "Assistant", "name": "Target 2", "version": 2}),
        (target.integration_id, {"__typename": "Integration"}),
        (target.action_id, {"__typename": "Action", "actionId": "TOOLS:HTTP_REQUEST"}),
    ):
        body = await run(client, org, NODE, {"id": node_id})
        assert body["data"] == {"node": {"id": node_id, **expected}}, body
        assert "errors" not in body
    # the same id REST uses
    rest = await client.get(f"/orgs/c/assistants/{target.assistant_id}", headers=org.headers)
    assert rest.json()["id"] == target.assistant_id


async def test_nodes_answer_in_order_with_null_for_what_the_key_may_not_read(
    client, org, other_org
):
    mine = await make_target(client, org, "Mine")
    theirs = await make_target(client, other_org, "Theirs")
    gone = await make_target(client, org, "Gone")
    deleted = await client.delete(f"/orgs/c/assistants/{gone.assistant_id}", headers=org.headers)
    assert deleted.status_code == 204
    ids = [
        mine.action_id,
        theirs.assistant_id,  # another organisation's
        mine.assistant_id,
        new_id(),  # nobody's
        theirs.integration_id,
        gone.assistant_id,  # deleted, and its children with it
        gone.integration_id,
        mine.integration_id,
        "not even an id",
    ]
    body = await run(client, org, NODES, {"ids": ids})
    assert "errors" not in body, body
    assert body["data"]["nodes"] == [
        {"__typename": "Action", "id": mine.action_id, "name": "call",
         "assistantId": mine.assistant_id},
        None,
        {"__typename": "Assistant", "id": mine.assistant_id, "name": "Mine 2",
         "integrations": [{"id": mine.integration_id}], "actions": [{"id": mine.action_id}]},
        None,
        None,
        None,
        None,
        {"__typename": "Integration", "id": mine.integration_id, "integrationId": "whatsapp",
         "assistantId": mine.assistant_id},
        None,
    ]  # fmt: skip
    # the other organisation reads its own through the same field
    theirs_body = await run(client, other_org, NODE, {"id": theirs.assistant_id})
    assert theirs_body["data"]["node"]["name"] == "Theirs 2"


async def test_a_key_without_the_read_scope_gets_null_not_an_error(client, org):
    target = await make_target(client, org)
    ids = [target.assistant_id, target.integration_id, target.action_id]
    for scopes in ([WRITE], [MANAGE], [WRITE, MANAGE]):
        key = await make_key(client, org, scopes)
        body = await run(client, key, NODES, {"ids": ids})
        assert body == {"data": {"nodes": [None, None, None]}, "extensions": body["extensions"]}
        single = await run(client, key, NODE, {"id": target.assistant_id})
        assert single["data"] == {"node": None}
        assert "errors" not in single
    reader = await make_key(client, org, [READ])
    body = await run(client, reader, NODES, {"ids": ids})
    assert [n["__typename"] for n in body["data"]["nodes"]] == [
        "Assistant",
        "Integration",
        "Action",
    ]


async def test_a_restricted_key_sees_only_its_assistants_and_their_children(client, org):
    seen, hidden = await make_target(client, org, "Seen"), await make_target(client, org, "Hidden")
    key = await make_key(client, org, [READ], assistant_ids=[seen.assistant_id])
    ids = [hidden.assistant_id, hidden.integration_id, hidden.action_id, seen.assistant_id,
           seen.integration_id, seen.action_id]  # fmt: skip
    body = await run(client, key, NODES, {"ids": ids})
    found = [None if n is None else n["id"] for n in body["data"]["nodes"]]
    assert found == [None, None, None, seen.assistant_id, seen.integration_id, seen.action_id]


async def test_without_a_key_it_is_unauthenticated(client, org):
    target = await make_target(client, org)
    response = await client.post(
        "/graphql", json={"query": NODE, "variables": {"id": target.assistant_id}}
    )
    body = response.json()
    assert body["data"] == {"node": None}
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_more_than_100_ids_is_refused_naming_ids_before_anything_is_read(client, db, org):
    target = await make_target(client, org)
    ids = [target.assistant_id] + [new_id() for _ in range(100)]
    with statements(db) as seen:
        body = await run(client, org, NODES, {"ids": ids})
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "ids" in error["message"]
    assert error["extensions"]["fields"] == [{"path": ["ids"], "message": "at most 100 ids"}]
    assert not [s for s in seen if "assistants" in s or "integrations" in s or "actions" in s]
    ok = await run(client, org, NODES, {"ids": ids[:100]})
    assert "errors" not in ok
    assert ok["data"]["nodes"][0]["id"] == target.assistant_id


async def read_statements(client, db, org, ids: list[str]) -> int:
    with statements(db) as seen:
        body = await run(client, org, NODES, {"ids": ids})
    assert "errors" not in body, body
    assert all(n is not None for n in body["data"]["nodes"])
    return len(seen)


async def test_the_statements_do_not_grow_with_the_ids(client, db, org):
    targets: list[Target] = [await make_target(client, org, f"t{n}") for n in range(12)]
    few = [targets[0].assistant_id, targets[0].integration_id, targets[0].action_id]
    many = [i for t in targets for i in (t.assistant_id, t.integration_id, t.action_id)]
    assert len(many) == 36
    cost = (
        await read_statements(client, db, org, few),
        await read_statements(client, db, org, many),
    )
    assert cost[0] == cost[1]
    assert cost[1] <= 8  # auth aside: assistants, integrations, actions, their children


async def test_nodes_cost_one_item_per_id(client, org):
    target = await make_target(client, org)
    literal = f'{{ nodes(ids: ["{target.assistant_id}", "x", "y"]) {{ id }} }}'
    body = await run(client, org, literal, {})
    assert body["extensions"]["cost"]["requested"] == 3
    body = await run(client, org, NODES, {"ids": [target.assistant_id] * 5})
    assert body["extensions"]["cost"]["requested"] == 5 * (1 + 100 + 100)  # with their children
    body = await run(client, org, NODE, {"id": target.assistant_id})
    assert body["extensions"]["cost"]["requested"] == 0


async def test_node_runs_over_the_websocket_too(app, client, org):
    target = await make_target(client, org)
    async with AsgiWebSocket(app) as socket:
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        payload = {"query": NODE, "variables": {"id": target.action_id}}
        await socket.send({"id": "1", "type": "subscribe", "payload": payload})
        message = await socket.receive()
    assert message["type"] == "next", message
    node = message["payload"]["data"]["node"]
    assert node == {
        "__typename": "Action",
        "id": target.action_id,
        "actionId": "TOOLS:HTTP_REQUEST",
    }


def test_implementing_node_keeps_the_compiled_fast_path():
    """Strawberry gives a type implementing an interface an `is_type_of`, which graphql-core
    calls on every such object and which makes the compiled plans step aside: the served and
    the exported schema drop it, so `updateAssistant { … integrations { … } }` plans as before."""
    from app.graphql.execution import OBJECT, OBJECT_LIST, PRELOADED, steps_for
    from app.graphql.schema import build_schema, schema

    for built in (build_schema(), schema):
        types = built._schema.type_map
        for name in ("Assistant", "Integration", "Action"):
            assert types[name].is_type_of is None, name
        assistant = types["Assistant"]
        shape = (("config", "config", False), ("integrations", "integrations", False),
                 ("actions", "actions", False))  # fmt: skip
        assert [s.kind for s in steps_for(assistant, shape)] == [OBJECT, PRELOADED, PRELOADED]
        action = types["Action"]
        definitions = steps_for(types["ActionConfig"], (("d", "definitions", False),))
        assert [s.kind for s in definitions] == [OBJECT_LIST]
        assert steps_for(action, (("config", "config", False),))[0].kind == OBJECT
