"""The matrix of operations and keys: every REST route and method, every
GraphQL root field, the event stream and the subscription, called with a key holding each scope
alone, all three, and all three but bound to another assistant. Each answer is exactly the one the
contract gives, and after each refusal nothing stored has changed."""

from __future__ import annotations

import asyncio
import json
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.graphql.schema import schema
from app.openapi import openapi_document
from app.settings import Settings
from app.store import Store
from tests.helpers.event_clients import AsgiHttpStream, AsgiWebSocket, until
from tests.helpers.factories import Org
from tests.helpers.keys import (
    ALL,
    HOOKS,
    MANAGE,
    PNG,
    READ,
    WRITE,
    everything,
    make_key,
    make_target,
)
from tests.helpers.schema_fields import root_fields
from tests.helpers.webhook_rows import insert_delivery, insert_webhook

OK, NOT_FOUND = "ok", "404"


def refused(scope: str | None) -> tuple[str, str | None]:
    return ("403", scope)


KEYS = ["read", "write", "manage", "all", "bound", "hooks"]
R, W, M = refused(READ), refused(WRITE), refused(MANAGE)
H = refused(HOOKS)
AU = refused("audit:read")
# what each kind of operation answers to each key (bound: every scope, another assistant)
EXPECTED: dict[str, dict[str, Any]] = {
    "read_one": dict(zip(KEYS, [OK, R, R, OK, NOT_FOUND, R], strict=True)),
    "read_all": dict(zip(KEYS, [OK, R, R, OK, OK, R], strict=True)),
    "write_one": dict(zip(KEYS, [W, OK, W, OK, NOT_FOUND, W], strict=True)),
    "create": dict(zip(KEYS, [W, OK, W, OK, refused(None), W], strict=True)),
    "write_org": dict(zip(KEYS, [W, OK, W, OK, OK, W], strict=True)),
    "manage": dict(zip(KEYS, [M, M, OK, OK, OK, M], strict=True)),
    "make_key": dict(zip(KEYS, [M, M, OK, OK, refused(None), M], strict=True)),
    "any": dict.fromkeys(KEYS, OK),
    # webhooks:manage alone opens them; the keys holding the first three scopes do not
    "webhooks": dict(zip(KEYS, [H, H, H, H, H, OK], strict=True)),
    # audit:read: none of these keys holds it
    "audit": dict.fromkeys(KEYS, AU),
}

A = "/orgs/c/assistants/{a}"
BUNDLE = "assistants-api/bundle"


@dataclass(frozen=True)
class Rest:
    method: str
    path: str
    kind: str
    body: Any = None
    stream: bool = False

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


REST = [
    Rest("POST", "/orgs/c/assistants", "create", {"name": "New"}),
    Rest("GET", "/orgs/c/assistants", "read_all"),
    Rest("GET", A, "read_one"),
    Rest("PATCH", A, "write_one", {"name": "Renamed"}),
    Rest("PATCH", A + "?dry_run=true", "write_one", {"name": "Dry"}),
    Rest("DELETE", A, "write_one"),
    Rest("POST", A + "/rotate-secret-key", "write_one"),
    Rest("POST", A + "/duplicate", "create", {"from_release": 1}),
    Rest("GET", A + "/revisions", "read_one"),
    Rest("GET", A + "/revisions/1", "read_one"),
    Rest("POST", A + "/revisions/1/restore", "write_one"),
    Rest("POST", A + "/integrations", "write_one", {"integration_id": "slack"}),
    Rest("GET", A + "/integrations", "read_one"),
    Rest("GET", A + "/integrations/{i}", "read_one"),
    Rest("PATCH", A + "/integrations/{i}", "write_one", {"enabled": False}),
    Rest("DELETE", A + "/integrations/{i}", "write_one"),
    Rest("POST", A + "/actions", "write_one", {"action_id": "TOOLS:X", "name": "x"}),
    Rest("GET", A + "/actions", "read_one"),
    Rest(
        "PATCH", A + "/actions/reorder", "write_one", {"positions": [{"id": "{x}", "position": 5}]}
    ),
    Rest("GET", A + "/actions/{x}", "read_one"),
    Rest("PATCH", A + "/actions/{x}", "write_one", {"name": "renamed"}),
    Rest("DELETE", A + "/actions/{x}", "write_one"),
    # releases and environments (each fresh target has release 1 in `production`)
    Rest("POST", A + "/releases", "write_one", {"note": "n"}),
    Rest("GET", A + "/releases", "read_one"),
    Rest("GET", A + "/releases/{n}", "read_one"),
    Rest("GET", A + "/releases/{n}/diff?against=draft", "read_one"),
    Rest("GET", A + "/environments", "read_one"),
    Rest("GET", A + "/environments/{e}", "read_one"),
    Rest("PUT", A + "/environments/{e}", "write_one", {"release": 1}),
    Rest("DELETE", A + "/environments/{e}", "write_one"),
    Rest("POST", "/orgs/c/avatars", "write_org", PNG),
    Rest("GET", "/orgs/c/events", "read_all", stream=True),
    Rest("GET", "/orgs/c/events?assistant_id={a}", "read_one", stream=True),
    Rest("GET", "/orgs/c/api-keys", "manage"),
    Rest("POST", "/orgs/c/api-keys", "make_key", {"name": "made", "scopes": [MANAGE]}),
    Rest("GET", "/orgs/c/api-keys/current", "any"),
    Rest("GET", "/orgs/c/api-keys/{victim}", "manage"),
    Rest("DELETE", "/orgs/c/api-keys/{victim}", "manage"),
    Rest("GET", "/orgs/c/audit-log", "audit"),
    Rest(
        "POST", "/orgs/c/bundles/apply", "create", {"kind": BUNDLE, "version": 1, "assistants": []}
    ),
    Rest("GET", "/orgs/c/webhooks", "webhooks"),
    Rest("POST", "/orgs/c/webhooks", "webhooks", {"url": "https://93.184.215.14/hook"}),
    Rest("GET", "/orgs/c/webhooks/{w}", "webhooks"),
    Rest("PATCH", "/orgs/c/webhooks/{w}", "webhooks", {"description": "changed"}),
    Rest("DELETE", "/orgs/c/webhooks/{w}", "webhooks"),
    Rest("POST", "/orgs/c/webhooks/{w}/rotate-secret", "webhooks"),
    Rest("POST", "/orgs/c/webhooks/{w}/test", "webhooks"),
    Rest("GET", "/orgs/c/webhooks/{w}/deliveries", "webhooks"),
    Rest("GET", "/orgs/c/webhooks/{w}/deliveries/{d}", "webhooks"),
    Rest("POST", "/orgs/c/webhooks/{w}/deliveries/{d}/redeliver", "webhooks"),
]


@dataclass(frozen=True)
class Gql:
    field: str
    kind: str
    query: str
    variables: dict[str, Any] = field(default_factory=dict)
    subscription: bool = False

    @property
    def id(self) -> str:
        return self.field + ("" if "dryRun" not in self.query else " (dry run)")


GQL = [
    Gql("assistant", "read_one", "query($a: ID!) { assistant(orgId: \"c\", id: $a) { id } }"),
    Gql("assistants", "read_all", "{ assistants(orgId: \"c\") { totalCount nodes { id } } }"),
    Gql("apiKeys", "manage", "{ apiKeys(orgId: \"c\") { totalCount nodes { id } } }"),
    Gql("viewer", "any", "{ viewer { orgId apiKey { id scopes } } }"),
    # null, never an error, for what the key may not read (tests/graphql/test_node.py)
    Gql("node", "any", "query($a: ID!) { node(id: $a) { id } }"),
    Gql("nodes", "any", "query($a: ID!, $i: ID!, $x: ID!) { nodes(ids: [$a, $i, $x]) { id } }"),
    Gql("createAssistant", "create",
        "mutation { createAssistant(orgId: \"c\", input: {name: \"New\"}) { id } }"),
    Gql("updateAssistant", "write_one", "mutation($a: ID!) { updateAssistant(orgId: \"c\", "
        "assistantId: $a, input: {name: \"Renamed\"}) { id name } }"),
    Gql("updateAssistant", "write_one", "mutation($a: ID!) { updateAssistant(orgId: \"c\", "
        "assistantId: $a, input: {name: \"Dry\"}, dryRun: true) { id name } }"),
    Gql("deleteAssistant", "write_one",
        "mutation($a: ID!) { deleteAssistant(orgId: \"c\", assistantId: $a) }"),
    Gql("rotateAssistantSecretKey", "write_one",
        "mutation($a: ID!) { rotateAssistantSecretKey(orgId: \"c\", assistantId: $a) { id } }"),
    Gql("duplicateAssistant", "create", "mutation($a: ID!) { duplicateAssistant(orgId: \"c\", "
        "assistantId: $a, input: {fromRelease: 1}) { id } }"),
    Gql("restoreAssistantRevision", "write_one", "mutation($a: ID!) { "
        "restoreAssistantRevision(orgId: \"c\", assistantId: $a, version: 1) { id } }"),
    Gql("createIntegration", "write_one", "mutation($a: ID!) { createIntegration(orgId: \"c\", "
        "assistantId: $a, input: {integrationId: \"slack\"}) { id } }"),
    Gql("updateIntegration", "write_one", "mutation($i: ID!) { updateIntegration(orgId: \"c\", "
        "integrationId: $i, input: {enabled: false}) { id } }"),
    Gql("deleteIntegration", "write_one",
        "mutation($i: ID!) { deleteIntegration(orgId: \"c\", integrationId: $i) }"),
    Gql("createAction", "write_one", "mutation($a: ID!) { createAction(orgId: \"c\", "
        "assistantId: $a, input: {actionId: \"TOOLS:X\", name: \"x\"}) { id } }"),
    Gql("updateAction", "write_one", "mutation($x: ID!) { updateAction(orgId: \"c\", "
        "actionId: $x, input: {name: \"renamed\"}) { id } }"),
    Gql("deleteAction", "write_one",
        "mutation($x: ID!) { deleteAction(orgId: \"c\", actionId: $x) }"),
    Gql("reorderActions", "write_one", "mutation($a: ID!, $x: ID!) { reorderActions(orgId: \"c\", "
        "assistantId: $a, positions: [{id: $x, position: 5}]) { id } }"),
    Gql("publishAssistant", "write_one", "mutation($a: ID!) { publishAssistant(orgId: \"c\", "
        "assistantId: $a, note: \"n\") { number } }"),
    Gql("pinEnvironment", "write_one", "mutation($a: ID!) { pinEnvironment(orgId: \"c\", "
        "assistantId: $a, environment: \"staging\", release: 1) { name } }"),
    Gql("removeEnvironment", "write_one", "mutation($a: ID!) { removeEnvironment(orgId: \"c\", "
        "assistantId: $a, environment: \"production\") }"),
    Gql("createApiKey", "make_key", "mutation { createApiKey(orgId: \"c\", input: {name: "
        "\"made\", scopes: [\"api_keys:manage\"]}) { apiKey { id } secret } }"),
    Gql("revokeApiKey", "manage",
        "mutation($victim: ID!) { revokeApiKey(orgId: \"c\", keyId: $victim) { id revokedAt } }"),
    Gql("auditLog", "audit", "{ auditLog(orgId: \"c\") { totalCount } }"),
    Gql("webhooks", "webhooks", "{ webhooks(orgId: \"c\") { totalCount nodes { id } } }"),
    Gql("webhook", "webhooks", "query($w: ID!) { webhook(orgId: \"c\", id: $w) { id "
        "deliveries { totalCount } } }"),
    Gql("createWebhook", "webhooks", "mutation { createWebhook(orgId: \"c\", input: {url: "
        "\"https://93.184.215.14/hook\"}) { webhook { id } secret } }"),
    Gql("updateWebhook", "webhooks", "mutation($w: ID!) { updateWebhook(orgId: \"c\", id: $w, "
        "input: {description: \"x\"}) { id } }"),
    Gql("deleteWebhook", "webhooks", "mutation($w: ID!) { deleteWebhook(orgId: \"c\", id: $w) }"),
    Gql("rotateWebhookSecret", "webhooks", "mutation($w: ID!) { rotateWebhookSecret("
        "orgId: \"c\", id: $w) { secret } }"),
    Gql("testWebhook", "webhooks", "mutation($w: ID!) { testWebhook(orgId: \"c\", id: $w) { id "
        "} }"),
    Gql("redeliverWebhookDelivery", "webhooks", "mutation($w: ID!, $d: ID!) { "
        "redeliverWebhookDelivery(orgId: \"c\", webhookId: $w, deliveryId: $d) { id } }"),
    Gql("applyBundle", "create", "mutation { applyBundle(orgId: \"c\", bundle: {kind: "
        f"\"{BUNDLE}\", version: 1, assistants: []}}) }}"),
    Gql("assistantChanged", "read_all", "", subscription=True),
    Gql("assistantChanged", "read_one", "{a}", subscription=True),
]  # fmt: skip


@dataclass
class World:
    app: Starlette
    client: httpx.AsyncClient
    db: Store
    admin: Org
    keys: dict[str, Org]
    other_assistant: str
    avatars: Path


@pytest.fixture
async def world(
    app: Starlette, client: httpx.AsyncClient, db: Store, org: Org, settings: Settings
) -> World:
    other = await make_target(client, org, "Other")
    keys = {
        "read": await make_key(client, org, [READ]),
        "write": await make_key(client, org, [WRITE]),
        "manage": await make_key(client, org, [MANAGE]),
        "all": await make_key(client, org, ALL),
        "bound": await make_key(client, org, ALL, assistant_ids=[other.assistant_id]),
        "hooks": await make_key(client, org, [HOOKS]),
    }
    return World(app, client, db, org, keys, other.assistant_id, settings.avatars_dir)


async def fresh_ids(world: World) -> dict[str, str]:
    """A fresh target for one call (so every key meets an unchanged one) and a key to revoke."""
    target = await make_target(world.client, world.admin)
    victim = await make_key(world.client, world.admin, [READ], name="victim")
    released = await world.client.post(
        f"/orgs/c/assistants/{target.assistant_id}/releases",
        json={"environment": "production"},
        headers=world.admin.headers,
    )
    assert released.status_code == 201, released.text
    webhook_id = await insert_webhook(world.db, world.admin.org_id)
    delivery_id = await insert_delivery(world.db, world.admin.org_id, webhook_id)
    return {
        "w": webhook_id,
        "d": delivery_id,
        "a": target.assistant_id,
        "i": target.integration_id,
        "x": target.action_id,
        "victim": victim.key_id,
        "n": "1",
        "e": "production",
    }


def filled(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: filled(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [filled(v, ids) for v in value]
    return value


def rest_outcome(status: int, body: Any, headers: httpx.Headers | dict[str, str]) -> Any:
    if 200 <= status < 300:
        return OK
    if status == 404:
        assert body["code"] == "NOT_FOUND"
        return NOT_FOUND
    assert status == 403, (status, body)
    assert body["code"] == "INSUFFICIENT_SCOPE", body
    scope = body.get("required_scope")
    challenge = 'Bearer error="insufficient_scope"' + (f', scope="{scope}"' if scope else "")
    assert headers["www-authenticate"] == challenge
    return refused(scope)


async def call_rest(world: World, op: Rest, key: Org, ids: dict[str, str]) -> Any:
    path = op.path.format(**ids)
    if op.stream:
        async with AsgiHttpStream(world.app, path, key.headers) as stream:
            status, headers = stream.status, stream.headers
            body = None if status == 200 else json.loads(await stream.body())
        assert status is not None
        return rest_outcome(status, body, headers)
    if isinstance(op.body, bytes):
        headers = {**key.headers, "content-type": "image/png"}
        response = await world.client.request(op.method, path, content=op.body, headers=headers)
    else:
        body = filled(op.body, ids)
        response = await world.client.request(op.method, path, json=body, headers=key.headers)
    outcome = rest_outcome(response.status_code, response.json() if response.content else None,
                           response.headers)  # fmt: skip
    if outcome == OK and op.method == "GET" and op.path == "/orgs/c/assistants":
        listed = {a["id"] for a in response.json()}
        assert ids["a"] in listed or key is world.keys["bound"]
        if key is world.keys["bound"]:  # only its own assistant, counted alone
            assert listed == {world.other_assistant}
            assert response.headers["pagination-count"] == "1"
    return outcome


def graphql_outcome(errors: list[dict[str, Any]] | None) -> Any:
    if not errors:
        return OK
    extensions = errors[0]["extensions"]
    if extensions["code"] == "NOT_FOUND":
        return NOT_FOUND
    assert extensions["code"] == "FORBIDDEN", errors
    return refused(extensions.get("requiredScope"))


async def call_graphql(world: World, op: Gql, key: Org, ids: dict[str, str]) -> Any:
    if op.subscription:
        return await subscribe(world, key, filled(op.query, ids) or None)
    variables = {name: ids[name] for name in ids if f"${name}" in op.query}
    response = await world.client.post(
        "/graphql", json={"query": op.query, "variables": variables}, headers=key.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    outcome = graphql_outcome(body.get("errors"))
    if outcome == OK and op.field == "assistants" and key is world.keys["bound"]:
        connection = body["data"]["assistants"]
        assert [n["id"] for n in connection["nodes"]] == [world.other_assistant]
        assert connection["totalCount"] == 1
    return outcome


async def subscribe(world: World, key: Org, assistant_id: str | None) -> Any:
    broker = world.app.state.broker
    async with AsgiWebSocket(world.app) as socket:
        assert await socket.init(f"Bearer {key.api_key}") == {"type": "connection_ack"}
        before = broker.open_streams
        await socket.subscribe("1", "c", assistant_id)
        # either the stream opens, or an error comes back (whichever happens first)
        opened = asyncio.ensure_future(until(lambda: broker.open_streams == before + 1))
        answered = asyncio.ensure_future(socket.receive())
        done, pending = await asyncio.wait({opened, answered}, return_when=FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if answered not in done:
            return OK
        message = answered.result()
        assert message["type"] == "next", message
        return graphql_outcome(message["payload"]["errors"])


async def check_matrix(world: World, call: Callable[..., Any], op: Any) -> None:
    expected = EXPECTED[op.kind]
    for name in KEYS:
        ids = await fresh_ids(world)
        before = await everything(world.db, world.avatars)
        outcome = await call(world, op, world.keys[name], ids)
        assert outcome == expected[name], (op.id, name)
        if outcome != OK:
            assert await everything(world.db, world.avatars) == before, (op.id, name)


@pytest.mark.parametrize("op", REST, ids=[op.id for op in REST])
async def test_rest(world: World, op: Rest) -> None:
    await check_matrix(world, call_rest, op)


@pytest.mark.parametrize("op", GQL, ids=[f"{op.id}-{op.kind}" for op in GQL])
async def test_graphql(world: World, op: Gql) -> None:
    await check_matrix(world, call_graphql, op)


def test_the_matrix_covers_every_operation() -> None:
    documented = {
        (method.upper(), path)
        for path, item in openapi_document()["paths"].items()
        for method, operation in item.items()
        if operation.get("security") != []
    }
    names = {"c": "org_id", "a": "assistant_id", "i": "integration_id", "x": "action_id",
             "victim": "key_id", "n": "number", "e": "name", "w": "webhook_id",
             "d": "delivery_id"}  # fmt: skip
    covered = set()
    for op in REST:
        path = op.path.split("?")[0].replace("/orgs/c/", "/orgs/{c}/").replace("/1", "/{version}")
        for short, name in names.items():
            path = path.replace("{" + short + "}", "{" + name + "}")
        covered.add((op.method, path))
    assert documented == covered
    convert = schema.config.name_converter.apply_naming_config
    assert {op.field for op in GQL} == {convert(name) for _kind, name, _ in root_fields()}
