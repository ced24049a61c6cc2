"""The bytes of one GraphQL answer are bounded (GRAPHQL_MAX_RESPONSE_BYTES, 8 MiB unless set):
the executor counts them as it writes the answer and stops the operation when the count passes
the bound. The answer is then the error RESPONSE_TOO_LARGE with `extensions.maxBytes` and no
`data`, over HTTP (plain, persisted, `nodes`, `_entities`) and the websocket alike; an answer
within the bound is untouched, and the next request counts from nothing."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from app.graphql.view import GRAPHQL_RESPONSE
from app.main import create_app
from tests.helpers.event_clients import AsgiWebSocket, until
from tests.helpers.factories import Org
from tests.helpers.graphql_answers import ANY

SMALL = 4096  # the bound of the fast tests
CONFIGS = """
query Configs($id: ID!) {
  assistant(orgId: "c", id: $id) { integrations { id config } }
}
"""


def aliased(count: int) -> str:
    """`count` aliases of an assistant's integrations and their configs."""
    fields = " ".join(
        f'a{n}: assistant(orgId: "c", id: $id) {{ integrations {{ config }} }}'
        for n in range(count)
    )
    return f"query Aliased($id: ID!) {{ {fields} }}"


def too_large(max_bytes: int) -> dict[str, Any]:
    """The whole answer of an operation stopped at the bound."""
    return {
        "errors": [
            {
                "message": (
                    f"the answer passed {max_bytes} bytes, the most one GraphQL answer may "
                    "hold; ask for less (fewer aliases or fields, smaller pages)"
                ),
                "extensions": {"code": "RESPONSE_TOO_LARGE", "maxBytes": max_bytes},
            }
        ],
        "extensions": {"cost": {"requested": ANY, "pointsRemaining": ANY}},
    }


async def assistant_with_configs(
    client: httpx.AsyncClient, org: Org, count: int, config_bytes: int, name: str = "Big"
) -> str:
    """An assistant with `count` integrations, each with a config of about `config_bytes`."""
    created = await client.post("/orgs/c/assistants", json={"name": name}, headers=org.headers)
    assert created.status_code == 201, created.text
    assistant_id: str = created.json()["id"]
    for n in range(count):
        config = {"n": n, "blob": "x" * config_bytes}
        made = await client.post(
            f"/orgs/c/assistants/{assistant_id}/integrations",
            json={"integration_id": "internal", "config": config},
            headers=org.headers,
        )
        assert made.status_code == 201, made.text
    return assistant_id


async def post(
    client: httpx.AsyncClient, org: Org, body: dict[str, Any], accept: str | None = None
) -> httpx.Response:
    headers = {**org.headers, **({"Accept": accept} if accept else {})}
    return await client.post("/graphql", json=body, headers=headers)


@pytest.fixture
async def small(make_client: Any) -> httpx.AsyncClient:
    """A client of an app whose answers may hold SMALL bytes."""
    http: httpx.AsyncClient = await make_client(graphql_max_response_bytes=SMALL)
    return http


async def test_an_answer_past_the_bound_is_stopped_without_data(small, org):
    assistant_id = await assistant_with_configs(small, org, 8, 1000)
    response = await post(small, org, {"query": CONFIGS, "variables": {"id": assistant_id}})
    assert response.status_code == 200
    assert response.json() == too_large(SMALL)
    assert response.json()["extensions"]["cost"]["requested"] == 100


async def test_the_graphql_response_media_type_answers_400(small, org):
    assistant_id = await assistant_with_configs(small, org, 8, 1000)
    body = {"query": CONFIGS, "variables": {"id": assistant_id}}
    response = await post(small, org, body, accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert response.json() == too_large(SMALL)


async def test_an_answer_within_the_bound_is_whole_and_the_next_counts_anew(small, org):
    assistant_id = await assistant_with_configs(small, org, 3, 1000)
    for _ in range(3):  # each request counts its own answer (and the plans are compiled)
        response = await post(small, org, {"query": CONFIGS, "variables": {"id": assistant_id}})
        assert response.status_code == 200
        body = response.json()
        assert "errors" not in body, body
        configs = [i["config"] for i in body["data"]["assistant"]["integrations"]]
        assert sorted(c["n"] for c in configs) == [0, 1, 2]
        assert len(response.content) < SMALL
    refused = await post(small, org, {"query": aliased(2), "variables": {"id": assistant_id}})
    assert refused.json() == too_large(SMALL)
    again = await post(small, org, {"query": CONFIGS, "variables": {"id": assistant_id}})
    assert "errors" not in again.json()


async def names(client: httpx.AsyncClient, org: Org, first: int) -> dict[str, Any]:
    query = f'{{ assistants(orgId: "c", first: {first}) {{ nodes {{ name }} }} }}'
    body: dict[str, Any] = (await post(client, org, {"query": query})).json()
    return body


async def test_strings_count_too_and_the_bound_holds_to_the_byte(small, org, other_org):
    """Many short leaves (names) pass the bound as surely as one big one; characters that take
    several bytes are counted to the byte once the answer is serialized."""
    for n in range(22):  # about 200 bytes each
        made = await small.post(
            "/orgs/c/assistants", json={"name": f"{n:02} " + "a" * 190}, headers=org.headers
        )
        assert made.status_code == 201
    assert len((await names(small, org, 16))["data"]["assistants"]["nodes"]) == 16
    assert await names(small, org, 22) == too_large(SMALL)
    for _ in range(16):  # 190 characters, 380 bytes in UTF-8 each
        made = await small.post(
            "/orgs/c/assistants", json={"name": "é" * 190}, headers=other_org.headers
        )
        assert made.status_code == 201
    assert len((await names(small, other_org, 8))["data"]["assistants"]["nodes"]) == 8
    assert await names(small, other_org, 16) == too_large(SMALL)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
async def test_the_fields_still_pending_when_the_bound_passes_end_with_the_request(small, org):
    """Each assistant's `revisions` is a resolver of its own, pending while the names are
    written: once the names pass the bound they end before the answer is sent (none is left
    unawaited), and the next request is whole."""
    for n in range(25):
        made = await small.post(
            "/orgs/c/assistants", json={"name": f"{n:02} " + "a" * 190}, headers=org.headers
        )
        assert made.status_code == 201
    query = (
        '{ assistants(orgId: "c", first: 30) '
        "{ nodes { name revisions(first: 1) { totalCount } } } }"
    )
    response = await post(small, org, {"query": query})
    assert response.json() == too_large(SMALL)
    fits = '{ assistants(orgId: "c", first: 2) { nodes { revisions(first: 1) { totalCount } } } }'
    assert (await post(small, org, {"query": fits})).json()["data"]["assistants"]["nodes"] == [
        {"revisions": {"totalCount": 1}}
    ] * 2


async def test_persisted_documents_are_bounded_too(small, org):
    assistant_id = await assistant_with_configs(small, org, 8, 1000)
    sha = hashlib.sha256(CONFIGS.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha}}
    variables = {"id": assistant_id}
    registered = await post(
        small, org, {"query": CONFIGS, "extensions": extensions, "variables": variables}
    )
    assert registered.json() == too_large(SMALL)
    by_hash = await post(small, org, {"extensions": extensions, "variables": variables})
    assert by_hash.json() == too_large(SMALL)
    over_get = await small.get(
        "/graphql",
        params={
            "extensions": f'{{"persistedQuery":{{"version":1,"sha256Hash":"{sha}"}}}}',
            "variables": f'{{"id":"{assistant_id}"}}',
        },
        headers=org.headers,
    )
    assert over_get.status_code == 200
    assert over_get.json() == too_large(SMALL)


async def test_nodes_and_entities_are_bounded_too(small, org):
    assistant_id = await assistant_with_configs(small, org, 8, 1000)
    listed = await small.get(f"/orgs/c/assistants/{assistant_id}/integrations", headers=org.headers)
    ids = [i["id"] for i in listed.json()]
    nodes = "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Integration { config } } }"
    response = await post(small, org, {"query": nodes, "variables": {"ids": ids}})
    assert response.json() == too_large(SMALL)
    entities = (
        "query($r: [_Any!]!) { _entities(representations: $r) "
        "{ ... on Assistant { integrations { config } } } }"
    )
    representation = {"__typename": "Assistant", "id": assistant_id}
    response = await post(small, org, {"query": entities, "variables": {"r": [representation]}})
    assert response.json() == too_large(SMALL)


EVENTS = """
subscription Events($orgId: ID!) {
  assistantChanged(orgId: $orgId) { version assistant { integrations { config } } }
}
"""


async def test_the_websocket_stops_operations_and_events_too(settings, org):
    """A query over the websocket is refused by an `error` message; a subscription whose event
    passes the bound ends with the same `error` message (no `data`)."""

    application = create_app(settings.model_copy(update={"graphql_max_response_bytes": SMALL}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://test") as http,
            AsgiWebSocket(application) as socket,
        ):
            assistant_id = await assistant_with_configs(http, org, 8, 1000)
            assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
            payload = {"query": CONFIGS, "variables": {"id": assistant_id}}
            await socket.send({"id": "1", "type": "subscribe", "payload": payload})
            refused = await socket.receive()
            events = {"query": EVENTS, "variables": {"orgId": org.org_id}}
            await socket.send({"id": "2", "type": "subscribe", "payload": events})
            await until(lambda: application.state.broker.open_streams == 1)
            renamed = await http.patch(
                f"/orgs/c/assistants/{assistant_id}", json={"name": "x"}, headers=org.headers
            )
            assert renamed.status_code == 200
            event = await socket.receive()
    error = {
        "message": too_large(SMALL)["errors"][0]["message"],
        "extensions": {"code": "RESPONSE_TOO_LARGE", "maxBytes": SMALL},
    }
    assert refused == {"id": "1", "type": "error", "payload": [error]}
    assert event == {"id": "2", "type": "error", "payload": [error]}


async def test_the_attack_with_real_sizes_is_refused_at_8_mib(client, org):
    """100 integrations with 60 KiB configs: one copy of them (about 6 MB) is answered, two
    aliases (12 MB) are refused, and so are ten."""
    assistant_id = await assistant_with_configs(client, org, 100, 60 * 1024)
    one = await post(client, org, {"query": aliased(1), "variables": {"id": assistant_id}})
    assert one.status_code == 200
    assert "errors" not in one.json()
    assert 6_000_000 < len(one.content) < 8 * 1024 * 1024
    for count in (2, 10):
        refused = await post(
            client, org, {"query": aliased(count), "variables": {"id": assistant_id}}
        )
        assert refused.status_code == 200
        assert refused.json() == too_large(8 * 1024 * 1024)
        assert len(refused.content) < 1024
