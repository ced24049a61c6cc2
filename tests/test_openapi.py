"""GET /openapi.json: a valid OpenAPI 3.1 document for every REST route, whose bodies are the
schemas of the validating models and whose response schemas fit real answers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.routing import Route

from app.domain.assistant_input import AssistantCreate, AssistantPatch
from app.domain.child_input import (
    ActionCreate,
    ActionPatch,
    ActionReorder,
    IntegrationCreate,
    IntegrationPatch,
)
from app.openapi import OPERATIONS, _drop_unset_defaults, named_objects

NOT_REST = {"/graphql", "/graphiql-assets/{path:path}", "/openapi.json", "/metrics"}


@pytest.fixture
async def document(client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def check(document: dict[str, Any], schema_name: str, instance: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(instance)]
    assert errors == [], (schema_name, errors)


async def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


async def test_every_rest_route_is_documented_and_nothing_else(app, document):
    served = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path not in NOT_REST:
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            served |= {(m.lower(), path) for m in route.methods or () if m != "HEAD"}
    documented = {(m, p) for p, item in document["paths"].items() for m in item}
    assert documented == served


@pytest.mark.parametrize(
    "model",
    [
        AssistantCreate,
        AssistantPatch,
        IntegrationCreate,
        IntegrationPatch,
        ActionCreate,
        ActionPatch,
        ActionReorder,
    ],
)
async def test_bodies_are_the_schemas_of_the_validating_models(document, model):
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = _drop_unset_defaults(schema.pop("$defs", {}))
    components = document["components"]["schemas"]
    # the same, with each free-form object (`dict[str, Any]`) named `JsonObject`
    assert components[model.__name__] == named_objects(_drop_unset_defaults(schema))
    for name, definition in definitions.items():
        assert components[name] == named_objects(definition)
    assert components[model.__name__]["additionalProperties"] is False


async def test_name_limits_come_from_the_model(document):
    name = document["components"]["schemas"]["AssistantPatch"]["properties"]["name"]
    assert (name["minLength"], name["maxLength"]) == (1, 1024)


async def test_real_answers_fit_the_response_schemas(client, org, make_assistant, document):
    created = await make_assistant(org, generate_secret_key=True)
    base = f"/orgs/c/assistants/{created['id']}"
    integration = await client.post(
        f"{base}/integrations", json={"integration_id": "whatsapp"}, headers=org.headers
    )
    action = await client.post(
        f"{base}/actions",
        json={"action_id": "TOOLS:HTTP_REQUEST", "name": "call", "config": {"definitions": [
            {"path": "url", "definition": {"type": "string"}}]}},
        headers=org.headers,
    )  # fmt: skip
    patched = await client.patch(base, json={"name": "renamed"}, headers=org.headers)
    assert (integration.status_code, action.status_code, patched.status_code) == (201, 201, 200)
    check(document, "Integration", integration.json())
    check(document, "Action", action.json())
    assistant = (await client.get(base, headers=org.headers)).json()
    assert assistant["integrations"]
    assert assistant["actions"]
    check(document, "Assistant", assistant)
    revisions = (await client.get(f"{base}/revisions", headers=org.headers)).json()
    for revision in revisions:
        check(document, "Revision", revision)
    one = await client.get(f"{base}/revisions/1", headers=org.headers)
    check(document, "RevisionWithSnapshot", one.json())
    missing = await client.get("/orgs/c/assistants/nope", headers=org.headers)
    check(document, "Problem", missing.json())


async def test_the_schemas_catch_a_wrong_answer(document):
    with pytest.raises(AssertionError):
        check(document, "Integration", {"id": "x", "enabled": "yes"})


async def test_api_keys_fit_their_schemas_and_each_operation_names_its_scope(client, org, document):
    made = await client.post(
        "/orgs/c/api-keys", json={"name": "doc", "scopes": ["assistants:read"]}, headers=org.headers
    )
    assert made.status_code == 201
    check(document, "CreatedApiKey", made.json())
    for key in (await client.get("/orgs/c/api-keys", headers=org.headers)).json():
        check(document, "ApiKey", key)
    current = await client.get("/orgs/c/api-keys/current", headers=org.headers)
    check(document, "ApiKey", current.json())
    body = document["components"]["schemas"]["ApiKeyCreate"]
    assert set(body["required"]) == {"name", "scopes"}
    assert body["additionalProperties"] is False
    paths = document["paths"]
    assert paths["/orgs/{org_id}/api-keys"]["post"]["operationId"] == "createApiKey"
    assert paths["/orgs/{org_id}/api-keys"]["post"]["security"] == [{"bearer": ["api_keys:manage"]}]
    patch = paths["/orgs/{org_id}/assistants/{assistant_id}"]["patch"]
    assert patch["security"] == [{"bearer": ["assistants:write"]}]
    assert "security" not in paths["/orgs/{org_id}/api-keys/current"]["get"]
    assert paths["/healthz"]["get"]["security"] == []


OPERATION_ID = re.compile(
    r"^(get|list|create|update|delete|rotate|reorder|upload|restore|revoke|stream|publish|pin"
    r"|remove|diff|test|redeliver|duplicate|apply)"
    r"[A-Z][A-Za-z]+$"
)


async def test_operation_ids_read_as_names(document):
    """camelCase verb + noun, one per operation, so a generated client has `update_assistant`
    (Python) or `updateAssistant` (TypeScript), never a name made from the path."""
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(OPERATIONS) == len(set(ids))
    assert [i for i in ids if not OPERATION_ID.match(i)] == []
    paths = document["paths"]
    assistant = paths["/orgs/{org_id}/assistants/{assistant_id}"]
    assert paths["/orgs/{org_id}/assistants"]["post"]["operationId"] == "createAssistant"
    assert paths["/orgs/{org_id}/assistants"]["get"]["operationId"] == "listAssistants"
    assert assistant["get"]["operationId"] == "getAssistant"
    assert assistant["patch"]["operationId"] == "updateAssistant"
    assert assistant["delete"]["operationId"] == "deleteAssistant"


def inline_objects(node: Any, where: str = "") -> list[str]:
    """Where an object schema with properties of its own, or a free-form one, sits inline (not
    as a component): a generator would have to make up its name."""
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object" and where.count("/") > 1:
            found.append(where)
        for key, value in node.items():
            found += inline_objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += inline_objects(value, f"{where}/{index}")
    return found


async def test_every_object_has_a_name_of_its_own(document):
    schemas = document["components"]["schemas"]
    assert [w for name, s in schemas.items() for w in inline_objects(s, name)] == []
    media = [
        content["schema"]
        for item in document["paths"].values()
        for op in item.values()
        for part in (op.get("requestBody", {}), *op["responses"].values())
        for content in part.get("content", {}).values()
    ]
    assert [m for m in media if m.get("type") == "object"] == []


async def test_the_avatar_upload_reads_as_a_file(document):
    """A form with a `format: binary` field, or the raw bytes: the forms generators read."""
    upload = document["paths"]["/orgs/{org_id}/avatars"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data", "application/octet-stream"}
    assert upload["application/octet-stream"]["schema"] == {"type": "string", "format": "binary"}
    form = document["components"]["schemas"]["AvatarUpload"]
    assert form["properties"]["file"] == {"type": "string", "format": "binary"}
    assert form["required"] == ["file"]
