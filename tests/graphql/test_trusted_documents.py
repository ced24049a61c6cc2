"""Trusted documents: with GRAPHQL_TRUSTED_DOCUMENTS naming an Apollo
persisted-query manifest, only its operations run, by hash or by identical text, over HTTP and
over the websocket; anything else is 400 TRUSTED_DOCUMENT_REQUIRED and changes nothing. A bad
manifest stops the start-up with a message that says what is wrong."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from app.graphql.persisted import ManifestError
from app.graphql.view import GRAPHQL_RESPONSE
from app.main import create_app
from app.models import Assistant, PersistedDocument
from app.settings import Settings
from tests.helpers.event_clients import SUBSCRIPTION, AsgiWebSocket, until
from tests.helpers.server_process import ROOT

LIST = 'query List { assistants(orgId: "c") { totalCount nodes { name } } }'
CREATE = (
    'mutation Create($name: String!) { createAssistant(orgId: "c", input: {name: $name}) { name } }'
)
OTHER_CREATE = 'mutation { createAssistant(orgId: "c", input: {name: "not trusted"}) { id } }'


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha(text)}}


def manifest(*operations: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            {"id": sha(body), "name": name, "type": kind, "body": body}
            for name, kind, body in operations
        ],
    }


TRUSTED = manifest(
    ("List", "query", LIST),
    ("Create", "mutation", CREATE),
    ("Changes", "subscription", SUBSCRIPTION),
)


@pytest.fixture
async def trusted_app(settings: Settings, tmp_path: Path) -> AsyncIterator[Starlette]:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(TRUSTED))
    application = create_app(settings.model_copy(update={"graphql_trusted_documents": path}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def trusted(trusted_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=trusted_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def count(db: Any, model: Any) -> int:
    async with db.read() as tx:
        return int(await tx.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_manifests_operations_run_by_hash_and_by_text(trusted, org, db):
    by_hash = await trusted.post(
        "/graphql",
        json={"extensions": persisted(CREATE), "variables": {"name": "By hash"}},
        headers=org.headers,
    )
    assert by_hash.status_code == 200, by_hash.text
    assert by_hash.json()["data"] == {"createAssistant": {"name": "By hash"}}
    by_text = await trusted.post(
        "/graphql", json={"query": CREATE, "variables": {"name": "By text"}}, headers=org.headers
    )
    assert by_text.json()["data"] == {"createAssistant": {"name": "By text"}}
    over_get = await trusted.get(
        "/graphql", params={"extensions": json.dumps(persisted(LIST))}, headers=org.headers
    )
    assert over_get.status_code == 200
    assert over_get.json()["data"]["assistants"]["totalCount"] == 2
    assert await count(db, Assistant) == 2
    assert await count(db, PersistedDocument) == 0  # the manifest is not the APQ store


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
@pytest.mark.parametrize(
    "body",
    [
        {"query": OTHER_CREATE},  # another text
        {"query": CREATE + " ", "variables": {"name": "x"}},  # not identical
        {"query": OTHER_CREATE, "extensions": persisted(OTHER_CREATE)},  # a registration
        {"extensions": persisted(OTHER_CREATE)},  # a hash the manifest does not hold
        {"query": "{ __schema { types { name } } }"},  # introspection too
    ],
    ids=["other text", "not identical", "registration", "unknown hash", "introspection"],
)
async def test_anything_else_is_refused_and_changes_nothing(trusted, org, db, accept, body):
    response = await trusted.post("/graphql", json=body, headers={**org.headers, "Accept": accept})
    assert response.status_code == 400
    assert response.headers["content-type"] == accept
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "TRUSTED_DOCUMENT_REQUIRED"}
    assert "data" not in response.json()
    assert await count(db, Assistant) == 0
    assert await count(db, PersistedDocument) == 0


async def test_a_hash_that_is_not_the_querys_is_still_400_bad_request(trusted, org):
    response = await trusted.post(
        "/graphql", json={"query": OTHER_CREATE, "extensions": persisted(LIST)}, headers=org.headers
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}


async def test_the_websocket_follows_the_same_rule(trusted_app, org):
    broker = trusted_app.state.broker
    async with AsgiWebSocket(trusted_app) as socket:
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        await socket.send(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": 'subscription { assistantChanged(orgId: "c") { id } }'},
            }
        )
        refused = await socket.receive()
        assert refused == {
            "id": "1",
            "type": "error",
            "payload": [
                {
                    "message": refused["payload"][0]["message"],
                    "extensions": {"code": "TRUSTED_DOCUMENT_REQUIRED"},
                }
            ],
        }
        assert broker.open_streams == 0
        by_hash = {"extensions": persisted(SUBSCRIPTION), "variables": {"orgId": "c"}}
        await socket.send({"id": "2", "type": "subscribe", "payload": by_hash})
        await until(lambda: broker.open_streams == 1)
        await socket.subscribe("3", "c")  # by identical text
        await until(lambda: broker.open_streams == 2)


BAD_MANIFESTS: list[tuple[str, Any, str]] = [
    ("not json", "{ nope", "the manifest is not JSON"),
    ("another format", {**TRUSTED, "format": "relay"}, '"format" must be'),
    ("another version", {**TRUSTED, "version": 2}, '"version" must be 1'),
    ("no operations", {**TRUSTED, "operations": None}, '"operations" must be a list'),
    (
        "a wrong id",
        {**TRUSTED, "operations": [{**TRUSTED["operations"][0], "id": sha("other")}]},
        'operations[0]: "id" must be the SHA-256',
    ),
    (
        "a wrong type",
        {**TRUSTED, "operations": [{**TRUSTED["operations"][0], "type": "fragment"}]},
        '"type" must be query, mutation or subscription',
    ),
    (
        "an operation that does not validate",
        manifest(("Nope", "query", "query Nope { nope }")),
        "does not parse or validate against this schema",
    ),
]


@pytest.mark.parametrize(
    ("case", "content", "message"), BAD_MANIFESTS, ids=[b[0] for b in BAD_MANIFESTS]
)
def test_a_bad_manifest_stops_the_app_from_being_built(tmp_path, case, content, message):
    path = tmp_path / "manifest.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        graphql_trusted_documents=path,
        _env_file=None,
    )  # type: ignore[call-arg]
    with pytest.raises(ManifestError) as raised:
        create_app(settings)
    assert message in str(raised.value)
    assert f"GRAPHQL_TRUSTED_DOCUMENTS={path}" in str(raised.value)


def test_serve_refuses_to_start_with_a_bad_manifest(tmp_path):
    missing = tmp_path / "missing.json"
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--port", "1"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
            "GRAPHQL_TRUSTED_DOCUMENTS": str(missing),
        },
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        f"error: TRUSTED_DOCUMENTS: GRAPHQL_TRUSTED_DOCUMENTS={missing}: cannot read the manifest "
        "(No such file or directory)"
    )
