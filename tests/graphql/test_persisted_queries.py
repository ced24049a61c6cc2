"""Automatic persisted queries (docs/graphql-clients.md): a hash alone runs a stored
document or answers PERSISTED_QUERY_NOT_FOUND; the hash with its query registers it (only when it
parses and validates); a hash that is not the query's is 400 BAD_REQUEST. The store is the
database: bounded (GRAPHQL_PERSISTED_MAX, the documents used longest ago go first) and shared by
every app on it (a second app, with its own memory, finds what the first registered)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from app.graphql.view import GRAPHQL_RESPONSE
from app.models import Assistant, PersistedDocument
from tests.helpers.event_clients import SUBSCRIPTION, AsgiWebSocket, until
from tests.helpers.graphql_answers import ANY
from tests.helpers.statements import statements

LIST = 'query List($n: Int) { assistants(orgId: "c", first: $n) { totalCount nodes { name } } }'
RENAME = (
    'mutation Rename($id: ID!, $name: String) { updateAssistant(orgId: "c", assistantId: $id, '
    "input: {name: $name}) { name version } }"
)
NOT_FOUND = {
    "errors": [
        {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    ],
    "extensions": {"cost": {"requested": 0, "pointsRemaining": ANY}},
}
TABLE = PersistedDocument.__table__  # type: ignore[attr-defined]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha(text)}}


async def stored_documents(db: Any) -> dict[str, str]:
    async with db.read() as tx:
        rows = await tx.all(select(TABLE.c.sha256, TABLE.c.document))
    return dict(rows)


async def count(db: Any, model: Any) -> int:
    async with db.read() as tx:
        return int(await tx.scalar(select(func.count()).select_from(model)) or 0)


async def post(client: Any, org: Any, **body: Any) -> Any:
    return await client.post("/graphql", json=body, headers=org.headers)


async def test_a_miss_then_a_registration_then_hash_only_hits(client, org, db, make_assistant):
    await make_assistant(org, name="Ada")
    variables = {"n": 5}
    expected = {"assistants": {"totalCount": 1, "nodes": [{"name": "Ada"}]}}

    miss = await post(client, org, extensions=persisted(LIST), variables=variables)
    assert miss.status_code == 200
    assert miss.json() == NOT_FOUND
    assert await stored_documents(db) == {}

    registered = await post(
        client, org, query=LIST, extensions=persisted(LIST), variables=variables
    )
    assert registered.status_code == 200
    assert registered.json()["data"] == expected
    assert await stored_documents(db) == {sha(LIST): LIST}

    for _ in range(3):
        hit = await post(client, org, extensions=persisted(LIST), variables=variables)
        assert hit.status_code == 200
        assert hit.json() == {
            "data": expected,
            "extensions": {"cost": {"requested": 5, "pointsRemaining": ANY}},
        }
    assert await stored_documents(db) == {sha(LIST): LIST}


async def test_the_miss_answers_200_in_both_media_types(client, org):
    for accept in ("application/json", GRAPHQL_RESPONSE):
        miss = await client.post(
            "/graphql",
            json={"extensions": persisted(LIST)},
            headers={**org.headers, "Accept": accept},
        )
        assert miss.status_code == 200
        assert miss.headers["content-type"] == accept
        assert miss.json() == NOT_FOUND


async def test_queries_by_hash_over_get_and_no_mutation(client, org, db, make_assistant):
    """As Apollo's link with `useGETForHashedQueries`: `?extensions=…&variables=…`."""
    made = await make_assistant(org, name="Ada")
    await post(client, org, query=LIST, extensions=persisted(LIST), variables={"n": 1})
    response = await client.get(
        "/graphql",
        params={
            "operationName": "List",
            "variables": json.dumps({"n": 1}),
            "extensions": json.dumps(persisted(LIST)),
        },
        headers={**org.headers, "Accept": "*/*"},  # what a browser's fetch sends
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"assistants": {"totalCount": 1, "nodes": [{"name": "Ada"}]}}

    variables = {"id": made["id"], "name": "Renamed"}
    registered = await post(
        client, org, query=RENAME, extensions=persisted(RENAME), variables=variables
    )
    assert registered.json()["data"] == {"updateAssistant": {"name": "Renamed", "version": 2}}
    over_get = await client.get(
        "/graphql",
        params={
            "variables": json.dumps({"id": made["id"], "name": "Over GET"}),
            "extensions": json.dumps(persisted(RENAME)),
        },
        headers=org.headers,
    )
    assert over_get.status_code == 400
    assert over_get.json()["errors"][0] == {
        "message": "mutations are not allowed when using GET",
        "extensions": {"code": "BAD_REQUEST"},
    }
    by_hash = await post(
        client, org, extensions=persisted(RENAME), variables={**variables, "name": "Again"}
    )
    assert by_hash.json()["data"] == {"updateAssistant": {"name": "Again", "version": 3}}


async def test_a_hash_that_is_not_the_querys_is_400(client, org, db):
    for accept in ("application/json", GRAPHQL_RESPONSE):
        response = await client.post(
            "/graphql",
            json={"query": LIST, "extensions": persisted(LIST + " ")},
            headers={**org.headers, "Accept": accept},
        )
        assert response.status_code == 400
        assert response.json()["errors"] == [
            {"message": "provided sha does not match query", "extensions": {"code": "BAD_REQUEST"}}
        ]
    assert await stored_documents(db) == {}


@pytest.mark.parametrize(
    "extension",
    [
        {"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}},
        {"persistedQuery": {"version": 1, "sha256Hash": "not hex"}},
        {"persistedQuery": {"version": 1}},
        {"persistedQuery": "abc"},
    ],
)
async def test_a_malformed_persisted_query_is_400(client, org, db, extension):
    response = await post(client, org, query=LIST, extensions=extension)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}
    assert await stored_documents(db) == {}


@pytest.mark.parametrize(
    "document",
    [
        "{ assistants(orgId: ",  # does not parse
        "{ nope }",  # does not validate
        "{ " + " ".join(f"a{i}: __typename" for i in range(20)) + " }",  # too many aliases
        '{ assistants(orgId: "c", first: 100) { nodes { revisions(first: 100) { nodes { version } }'
        " integrations { id } actions { id } } } }",  # above GRAPHQL_MAX_COST
    ],
)
async def test_only_documents_that_pass_are_stored(client, org, db, document):
    response = await post(client, org, query=document, extensions=persisted(document))
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] in {
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
    }
    assert await stored_documents(db) == {}
    again = await post(client, org, extensions=persisted(document))
    assert again.json() == NOT_FOUND


async def test_a_document_registered_by_one_app_is_found_by_another(
    client, org, db, make_client, make_assistant
):
    """Two apps on one database (two server processes): the second has never seen the text."""
    await make_assistant(org, name="Ada")
    await post(client, org, query=LIST, extensions=persisted(LIST), variables={"n": 2})
    other = await make_client()
    response = await post(other, org, extensions=persisted(LIST), variables={"n": 2})
    assert response.status_code == 200
    assert response.json()["data"] == {"assistants": {"totalCount": 1, "nodes": [{"name": "Ada"}]}}


async def test_the_store_is_bounded_and_evicts_the_least_recently_used(
    client, org, db, make_client
):
    documents = [f"query Q{i} {{ __typename }}" for i in range(3)]
    first, second, third = documents
    bounded = await make_client(graphql_persisted_max=2)
    for document in (first, second):
        registered = await post(bounded, org, query=document, extensions=persisted(document))
        assert registered.json()["data"] == {"__typename": "Query"}
    assert set(await stored_documents(db)) == {sha(first), sha(second)}
    # another process loads the first one: it is now the most recently used
    reader = await make_client(graphql_persisted_max=2)
    assert (await post(reader, org, extensions=persisted(first))).json()["data"]
    await post(bounded, org, query=third, extensions=persisted(third))
    assert set(await stored_documents(db)) == {sha(first), sha(third)}
    fresh = await make_client(graphql_persisted_max=2)
    assert (await post(fresh, org, extensions=persisted(second))).json() == NOT_FOUND
    assert (await post(fresh, org, extensions=persisted(first))).json()["data"]


async def test_a_hash_alone_still_needs_a_key(client, org, db, make_assistant):
    await make_assistant(org, name="Ada")
    await post(client, org, query=LIST, extensions=persisted(LIST))
    response = await client.post("/graphql", json={"extensions": persisted(LIST)})
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await count(db, Assistant) == 1


async def test_persisted_queries_can_be_turned_off(org, make_client, db):
    off = await make_client(graphql_persisted_max=0)
    response = await post(off, org, query=LIST, extensions=persisted(LIST))
    assert response.status_code == 200
    assert response.json()["errors"] == [
        {
            "message": "PersistedQueryNotSupported",
            "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"},
        }
    ]
    assert await stored_documents(db) == {}
    plain = await post(off, org, query=LIST, extensions={"other": "extension"})
    assert plain.json()["data"]["assistants"]["totalCount"] == 0


async def test_a_known_hash_costs_no_statement_more_than_its_text(client, org, db, make_assistant):
    """A hash this process knows is looked up in memory: the same SQL as the text itself."""
    made = await make_assistant(org, name="Ada")
    # names of one length throughout: neither request changes the organisation's stored bytes
    body = {"variables": {"id": made["id"], "name": "C"}}
    await post(client, org, query=RENAME, extensions=persisted(RENAME), **body)
    with statements(db) as seen:
        by_text = await post(client, org, query=RENAME, variables={"id": made["id"], "name": "T"})
        text_statements, seen[:] = list(seen), []
        by_hash = await post(
            client, org, extensions=persisted(RENAME), variables={"id": made["id"], "name": "H"}
        )
        hash_statements = list(seen)
    assert by_text.json()["data"]["updateAssistant"] == {"name": "T", "version": 3}
    assert by_hash.json()["data"]["updateAssistant"] == {"name": "H", "version": 4}
    assert hash_statements == text_statements
    assert not any("persisted_documents" in statement for statement in hash_statements)


async def test_the_websocket_takes_a_persisted_subscription(app, client, org):
    """A subscription registered over HTTP starts over the websocket by its hash alone; an
    unknown hash is the same PERSISTED_QUERY_NOT_FOUND, as an `error` message."""
    variables = {"orgId": "c"}
    registered = await post(client, org, query=SUBSCRIPTION, extensions=persisted(SUBSCRIPTION))
    assert registered.status_code == 400  # subscriptions run over the websocket only
    broker = app.state.broker
    async with AsgiWebSocket(app) as socket:
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        unknown = {"extensions": persisted(SUBSCRIPTION + " "), "variables": variables}
        await socket.send({"id": "1", "type": "subscribe", "payload": unknown})
        assert await socket.receive() == {
            "id": "1",
            "type": "error",
            "payload": [
                {
                    "message": "PersistedQueryNotFound",
                    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
                }
            ],
        }
        by_hash = {"extensions": persisted(SUBSCRIPTION), "variables": variables}
        await socket.send({"id": "2", "type": "subscribe", "payload": by_hash})
        await until(lambda: broker.open_streams == 1)


NEEDS_KEY = {
    "errors": [
        {
            "message": "PersistedQueryNotFound: registering a document needs a valid API key "
            "(send the query with `Authorization: Bearer <key>`)",
            "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
        }
    ],
    "extensions": {"cost": {"requested": 0, "pointsRemaining": ANY}},
}
TYPENAME = "query Q { __typename }"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer ak_not_a_key"}, {"Authorization": "Basic x"}],
    ids=["no key", "unknown key", "not a bearer"],
)
async def test_only_a_request_with_a_valid_key_registers(client, org, db, headers):
    """Without a valid key nothing is stored: the registration and the hash alone answer
    PERSISTED_QUERY_NOT_FOUND with the hint; with the key it registers, and from then on the
    hash alone runs for anyone (the stored document is the server's, not the key's)."""
    for _ in range(2):
        refused = await client.post(
            "/graphql", json={"query": TYPENAME, "extensions": persisted(TYPENAME)}, headers=headers
        )
        assert refused.status_code == 200
        assert refused.json() == NEEDS_KEY
        miss = await client.post(
            "/graphql", json={"extensions": persisted(TYPENAME)}, headers=headers
        )
        assert miss.json() == NEEDS_KEY
    over_get = await client.get(
        "/graphql",
        params={"query": TYPENAME, "extensions": json.dumps(persisted(TYPENAME))},
        headers=headers,
    )
    assert over_get.json() == NEEDS_KEY
    assert await stored_documents(db) == {}

    registered = await post(client, org, query=TYPENAME, extensions=persisted(TYPENAME))
    assert registered.json()["data"] == {"__typename": "Query"}
    assert await stored_documents(db) == {sha(TYPENAME): TYPENAME}
    for body in (
        {"extensions": persisted(TYPENAME)},
        {"query": TYPENAME, "extensions": persisted(TYPENAME)},
    ):
        hit = await client.post("/graphql", json=body, headers=headers)
        assert hit.json()["data"] == {"__typename": "Query"}


async def test_a_document_another_process_stored_runs_without_a_key(client, org, db, make_client):
    await post(client, org, query=TYPENAME, extensions=persisted(TYPENAME))
    other = await make_client()  # has never seen it: finds it in the shared store
    body = {"query": TYPENAME, "extensions": persisted(TYPENAME)}
    response = await other.post("/graphql", json=body)
    assert response.json()["data"] == {"__typename": "Query"}
    assert await stored_documents(db) == {sha(TYPENAME): TYPENAME}


async def test_a_document_over_32_kib_is_never_stored(client, org, db):
    """Comments and strings count in the document's bytes though they are not tokens."""
    padded = TYPENAME + "\n# " + "x" * (32 * 1024)
    response = await post(client, org, query=padded, extensions=persisted(padded))
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error == {
        "message": f"the document is {len(padded)} bytes (comments and strings included); "
        "at most 32768 are allowed",
        "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
    }
    assert await stored_documents(db) == {}
