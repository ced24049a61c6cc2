"""An assistant holds at most 100 integrations and 100 actions: the 101st
create is 400 VALIDATION_FAILED / BAD_USER_INPUT naming the limit, on both transports, and
nothing is stored, even when creates race each other."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.graphql.schema import schema
from app.store import Store
from tests.helpers.factories import Org
from tests.helpers.rows import count_children, insert_children

INTEGRATION = {"integration_id": "whatsapp"}
ACTION = {"action_id": "TOOLS:HTTP_REQUEST", "name": "Call"}
CREATE_INTEGRATION = (
    'mutation($a: ID!) { createIntegration(orgId: "c", assistantId: $a, '
    'input: {integrationId: "whatsapp"}) { id } }'
)
CREATE_ACTION = (
    'mutation($a: ID!) { createAction(orgId: "c", assistantId: $a, '
    'input: {actionId: "TOOLS:HTTP_REQUEST", name: "Call"}) { id } }'
)
KINDS = {
    "integrations": ("integrations", INTEGRATION, CREATE_INTEGRATION, 0),
    "actions": ("actions", ACTION, CREATE_ACTION, 1),
}


async def full_assistant(
    make_assistant: Any, db: Store, org: Org, kind: str, have: int = 99
) -> str:
    """An assistant with `have` children of this kind (straight into the database)."""
    assistant = await make_assistant(org)
    counts = {"integrations": have if kind == "integrations" else 0}
    counts["actions"] = have if kind == "actions" else 0
    await insert_children(db, org.org_id, assistant["id"], **counts)
    return str(assistant["id"])


async def rest_create(
    client: httpx.AsyncClient, org: Org, assistant_id: str, kind: str
) -> httpx.Response:
    path, body, _, _ = KINDS[kind]
    url = f"/orgs/c/assistants/{assistant_id}/{path}"
    return await client.post(url, json=body, headers=org.headers)


@pytest.mark.parametrize("kind", list(KINDS))
async def test_the_101st_is_refused_over_rest(
    client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store, kind: str
) -> None:
    assistant_id = await full_assistant(make_assistant, db, org, kind)
    assert (await rest_create(client, org, assistant_id, kind)).status_code == 201
    refused = await rest_create(client, org, assistant_id, kind)
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json() == {
        "type": "https://errors.assistants-api.dev/validation-failed",
        "title": "Validation Failed",
        "status": 400,
        "detail": f"an assistant holds at most 100 {kind}: delete one before adding another",
        "code": "VALIDATION_FAILED",
        "errors": [],
    }
    counts = await count_children(db, assistant_id)
    assert counts[KINDS[kind][3]] == 100
    # deleting one makes room again
    path = KINDS[kind][0]
    listed = await client.get(f"/orgs/c/assistants/{assistant_id}/{path}", headers=org.headers)
    first = listed.json()[0]["id"]
    url = f"/orgs/c/assistants/{assistant_id}/{path}/{first}"
    assert (await client.delete(url, headers=org.headers)).status_code == 204
    assert (await rest_create(client, org, assistant_id, kind)).status_code == 201


@pytest.mark.parametrize("kind", list(KINDS))
async def test_the_101st_is_refused_over_graphql(
    client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store, kind: str
) -> None:
    assistant_id = await full_assistant(make_assistant, db, org, kind)
    mutation = KINDS[kind][2]
    payload = {"query": mutation, "variables": {"a": assistant_id}}
    made = await client.post("/graphql", json=payload, headers=org.headers)
    assert "errors" not in made.json()
    refused = await client.post("/graphql", json=payload, headers=org.headers)
    assert refused.status_code == 200
    body = refused.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == (
        f"an assistant holds at most 100 {kind}: delete one before adding another"
    )
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    counts = await count_children(db, assistant_id)
    assert counts[KINDS[kind][3]] == 100


@pytest.mark.parametrize("kind", list(KINDS))
async def test_racing_creates_never_pass_the_cap(
    client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store, kind: str
) -> None:
    """Six creates at once for the last two places: the assistant's row is locked while the
    children are counted, so two are made and four refused, whatever the interleaving."""
    assistant_id = await full_assistant(make_assistant, db, org, kind, have=98)
    mutation = KINDS[kind][2]
    payload = {"query": mutation, "variables": {"a": assistant_id}}
    answers = await asyncio.gather(
        *[rest_create(client, org, assistant_id, kind) for _ in range(3)],
        *[client.post("/graphql", json=payload, headers=org.headers) for _ in range(3)],
    )
    made = sum(
        a.status_code == 201 or (a.status_code == 200 and "errors" not in a.json()) for a in answers
    )
    refused = sum(
        a.status_code == 400 or (a.status_code == 200 and "errors" in a.json()) for a in answers
    )
    assert (made, refused) == (2, 4)
    counts = await count_children(db, assistant_id)
    assert counts[KINDS[kind][3]] == 100


async def test_the_caps_are_per_assistant_and_per_kind(
    client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store
) -> None:
    full = await full_assistant(make_assistant, db, org, "integrations", have=100)
    assert (await rest_create(client, org, full, "integrations")).status_code == 400
    assert (await rest_create(client, org, full, "actions")).status_code == 201
    other = await make_assistant(org)
    assert (await rest_create(client, org, other["id"], "integrations")).status_code == 201


async def test_openapi_and_the_schema_say_so(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assistant = document["components"]["schemas"]["Assistant"]["properties"]
    for kind in KINDS:
        create = document["paths"][f"/orgs/{{org_id}}/assistants/{{assistant_id}}/{kind}"]["post"]
        assert f"at most 100 {kind}" in create["description"]
        assert assistant[kind]["maxItems"] == 100
    sdl = schema.as_str()
    for text in (
        "holds at most 100 integrations: beyond, BAD_USER_INPUT",
        "holds at most 100 actions: beyond, BAD_USER_INPUT",
        "Integrations of the assistant, oldest first (at most 100).",
        "Actions of the assistant, in `position` order (at most 100).",
    ):
        assert text in sdl
