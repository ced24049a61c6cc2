"""`GET /openapi.json`: OpenAPI 3.1 for every REST route.

Request bodies are the JSON Schemas of the very pydantic models that validate them
(`AssistantCreate`, `AssistantPatch`, `IntegrationCreate`, …); responses are described by the
models below, which tests/test_openapi.py and the schemathesis run (tests/test_fuzz.py) check
against real answers, and a test fails when a route is added without an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from app.domain.access import Scope
from app.domain.actions import MAX_ACTIONS
from app.domain.assistant_input import AssistantCreate, AssistantPatch
from app.domain.child_input import (
    ActionCreate,
    ActionPatch,
    ActionReorder,
    IntegrationCreate,
    IntegrationPatch,
)
from app.domain.integrations import MAX_INTEGRATIONS
from app.domain.keys import MAX_KEYS, ApiKeyCreate
from app.rest.common import MAX_PAGE, json_response


class Document(BaseModel):
    """Responses may carry more keys than documented, never fewer."""

    model_config = ConfigDict(extra="allow")


class Stt(Document):
    model: str | None


class Tts(Document):
    model: str | None
    voice_id: str | None


class Conversation(Document):
    thread_mode: str
    enable_memories: bool
    enable_transfer_to_human_tool: bool
    welcome_banner: str | None
    suggested_messages: list[str]
    auto_intro_message: str | None
    enable_end_conversation_tool: bool
    enable_block_contact_tool: bool
    enable_private_chats: bool
    enable_auto_resolve: bool
    enable_auto_follow_ups: bool
    enable_auto_csat: bool
    enable_update_contact_tool: bool


class Config(Document):
    language: str
    model: str
    instructions: str
    knowledge_scope: str
    timezone: str
    stt: Stt
    tts: Tts
    conversation: Conversation


class Integration(Document):
    id: str
    enabled: bool
    integration_id: str
    assistant_id: str
    connection_id: str | None
    config: dict[str, Any]
    error: str | None
    created_at: str
    updated_at: str


class ActionDefinition(Document):
    path: str
    definition: dict[str, Any]


class ActionConfig(Document):
    input: dict[str, Any]
    definitions: list[ActionDefinition]


class Action(Document):
    id: str
    enabled: bool
    name: str
    instructions: str
    action_id: str
    assistant_id: str
    connection_id: str | None
    config: ActionConfig
    position: int
    created_at: str
    updated_at: str


class Assistant(Document):
    id: str
    name: str
    enabled: bool
    deleted: bool
    version: int
    secret_key: str | None
    avatar_id: str | None
    avatar_url: str | None
    config: Config
    integrations: list[Integration] = Field(
        max_length=MAX_INTEGRATIONS,
        description=f"Oldest first; an assistant holds at most {MAX_INTEGRATIONS}.",
    )
    actions: list[Action] = Field(
        max_length=MAX_ACTIONS,
        description=f"In `position` order; an assistant holds at most {MAX_ACTIONS}.",
    )
    created_at: str
    updated_at: str


class Change(Document):
    path: str
    # `from` and `to` are any JSON value (a Python keyword: described in the schema by hand)


class Revision(Document):
    assistant_id: str
    version: int
    changed_at: str
    change_type: str
    actor_key_id: str | None
    source: str
    changes: list[Change]


class RevisionWithSnapshot(Revision):
    snapshot: dict[str, Any]


class ApiKey(Document):
    id: str
    org_id: str
    name: str
    prefix: str | None
    scopes: list[str]
    assistant_ids: list[str] | None
    expires_at: str | None
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class CreatedApiKey(ApiKey):
    api_key: str  # the secret, shown this once


class AvatarCreated(Document):
    id: str
    url: str


class Health(Document):
    status: str


class FieldProblem(Document):
    path: str
    message: str


class Problem(Document):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldProblem]


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    summary: str
    status: int = 200
    response: type[BaseModel] | None = None
    many: bool = False
    body: type[BaseModel] | None = None
    body_types: tuple[str, ...] = ("application/json",)
    query: tuple[str, ...] = ()
    errors: tuple[int, ...] = (401, 403, 404, 429)
    public: bool = False
    operation_id: str | None = None
    description: str | None = None


ASSISTANTS = "/orgs/{org_id}/assistants"
ASSISTANT = ASSISTANTS + "/{assistant_id}"
INTEGRATIONS = ASSISTANT + "/integrations"
ACTIONS = ASSISTANT + "/actions"
REVISIONS = ASSISTANT + "/revisions"
API_KEYS = "/orgs/{org_id}/api-keys"
PATCH_TYPES = ("application/json", "application/merge-patch+json")
BODY_ERRORS = (400, 401, 403, 404, 413, 415, 429)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
CAPPED = (
    "An assistant holds at most {n} {kind}: a create beyond is 400 `VALIDATION_FAILED` "
    "naming the limit, and nothing is stored."
)

OPERATIONS = [
    Op("GET", "/healthz", "Liveness", response=Health, errors=(), public=True),
    Op("GET", "/readyz", "Readiness: 503 while the database does not answer", response=Health,
       errors=(503,), public=True),
    Op("POST", ASSISTANTS, "Create an assistant", 201, Assistant, body=AssistantCreate,
       errors=BODY_ERRORS),
    Op("GET", ASSISTANTS, "List assistants, oldest first", response=Assistant, many=True,
       query=("page", "take"), errors=(400, 401, 403, 429)),
    Op("GET", ASSISTANT, "Read an assistant", response=Assistant),
    Op("PATCH", ASSISTANT, "Update an assistant (deep merge; RFC 7396 accepted)",
       response=Assistant, body=AssistantPatch, body_types=PATCH_TYPES, query=("dry_run",),
       errors=(*BODY_ERRORS, 412)),
    Op("DELETE", ASSISTANT, "Delete an assistant (`If-Match` honoured)", 204,
       errors=(401, 403, 404, 412, 429)),
    Op("POST", ASSISTANT + "/rotate-secret-key", "Rotate the secret key (`If-Match` honoured)",
       response=Assistant, errors=(401, 403, 404, 412, 429)),
    Op("POST", INTEGRATIONS, "Add an integration", 201, Integration, body=IntegrationCreate,
       errors=BODY_ERRORS, description=CAPPED.format(n=MAX_INTEGRATIONS, kind="integrations")),
    Op("GET", INTEGRATIONS, "List integrations", response=Integration, many=True),
    Op("GET", INTEGRATIONS + "/{integration_id}", "Read an integration", response=Integration),
    Op("PATCH", INTEGRATIONS + "/{integration_id}", "Update an integration",
       response=Integration, body=IntegrationPatch, body_types=PATCH_TYPES, errors=BODY_ERRORS),
    Op("DELETE", INTEGRATIONS + "/{integration_id}", "Delete an integration", 204),
    Op("POST", ACTIONS, "Add an action (it goes last)", 201, Action, body=ActionCreate,
       errors=BODY_ERRORS, description=CAPPED.format(n=MAX_ACTIONS, kind="actions")),
    Op("GET", ACTIONS, "List actions by position", response=Action, many=True),
    Op("PATCH", ACTIONS + "/reorder", "Reorder actions", response=Action, many=True,
       body=ActionReorder, body_types=PATCH_TYPES, errors=BODY_ERRORS),
    Op("GET", ACTIONS + "/{action_id}", "Read an action", response=Action),
    Op("PATCH", ACTIONS + "/{action_id}", "Update an action", response=Action,
       body=ActionPatch, body_types=PATCH_TYPES, errors=BODY_ERRORS),
    Op("DELETE", ACTIONS + "/{action_id}", "Delete an action", 204),
    Op("POST", "/orgs/{org_id}/avatars", "Upload an avatar (PNG, JPEG, WebP or GIF, 2 MiB)",
       201, AvatarCreated, body_types=(*IMAGE_TYPES, "multipart/form-data"),
       errors=(400, 401, 403, 404, 413, 429)),
    Op("GET", "/avatars/{avatar_id}", "An avatar image (public)", errors=(404,), public=True),
    Op("GET", REVISIONS, "History, newest first", response=Revision, many=True,
       query=("page", "take"), errors=(400, 401, 403, 404, 429)),
    Op("GET", REVISIONS + "/{version}", "One revision with its snapshot",
       response=RevisionWithSnapshot),
    Op("POST", REVISIONS + "/{version}/restore", "Restore a revision", response=Assistant,
       errors=(401, 403, 404, 412, 429)),
    Op("GET", "/orgs/{org_id}/events", "Changes as server-sent events (`Last-Event-ID` resumes)",
       query=("assistant_id", "last_event_id"), errors=(400, 401, 403, 429)),
    Op("GET", API_KEYS, "List the organisation's API keys, oldest first (revoked ones too)",
       response=ApiKey, many=True, query=("page", "take"), errors=(400, 401, 403, 429),
       operation_id="listApiKeys"),
    Op("POST", API_KEYS, "Make an API key; the answer holds its secret (`api_key`), this once",
       201, CreatedApiKey, body=ApiKeyCreate, errors=(400, 401, 403, 413, 415, 429),
       operation_id="createApiKey",
       description="Never more than the calling key holds: scopes within its own, "
       "`assistant_ids` within its own, `expires_at` no later than its own (403 "
       f"`INSUFFICIENT_SCOPE` otherwise). An organisation holds at most {MAX_KEYS} unrevoked "
       "keys: beyond, 400 `VALIDATION_FAILED` naming `api_keys`."),
    Op("GET", API_KEYS + "/current", "The API key of the request (any scope)", response=ApiKey,
       errors=(401, 403, 429), operation_id="getCurrentApiKey"),
    Op("GET", API_KEYS + "/{key_id}", "Read an API key", response=ApiKey,
       operation_id="getApiKey"),
    Op("DELETE", API_KEYS + "/{key_id}", "Revoke an API key: it stops working at once", 204,
       operation_id="revokeApiKey"),
]  # fmt: skip


def documented_scope(op: Op) -> str | None:
    """The scope an operation needs, as documented (tests/test_scopes.py checks it against the
    scope the use cases it calls declare): reading assistants and what hangs on them needs
    `assistants:read`, every other method `assistants:write`; keys need `api_keys:manage`, the
    caller's own key any scope."""
    if op.public or op.path == API_KEYS + "/current":
        return None
    if op.path.startswith(API_KEYS):
        return Scope.MANAGE
    return Scope.READ if op.method == "GET" else Scope.WRITE


QUERY = {
    "page": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
    "take": {"type": "integer", "minimum": 1, "maximum": 100, "default": 100},
    "dry_run": {"type": "boolean", "default": False},
    "assistant_id": {"type": "string"},
    "last_event_id": {"type": "string"},
}
REASONS = {
    400: "Bad request or invalid input (or a limit reached)",
    401: "No, unknown, revoked or expired API key",
    403: "The key does not open this organisation (`FORBIDDEN`), or lacks the scope the "
    "operation needs (`INSUFFICIENT_SCOPE`, `WWW-Authenticate: Bearer "
    'error="insufficient_scope", scope="…"`)',
    404: "Not found",
    412: "`If-Match` is stale",
    413: "Body too large",
    415: "Unsupported content type",
    429: "Too many requests (see `Retry-After`)",
    503: "The database does not answer",
}
ERROR_MEDIA = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _drop_unset_defaults(node: Any) -> Any:
    """Input models use a sentinel for "absent", shown by pydantic as `default: null`."""
    if isinstance(node, dict):
        return {
            k: _drop_unset_defaults(v)
            for k, v in node.items()
            if not (k == "default" and v is None)
        }
    if isinstance(node, list):
        return [_drop_unset_defaults(v) for v in node]
    return node


def _components() -> dict[str, Any]:
    models: list[type[BaseModel]] = [Problem]
    for op in OPERATIONS:
        models += [m for m in (op.body, op.response) if m is not None]
    unique = list(dict.fromkeys(models))
    _, top = models_json_schema(
        [(m, "validation") for m in unique], ref_template="#/components/schemas/{model}"
    )
    schemas = _drop_unset_defaults(top["$defs"])
    schemas["Change"]["properties"].update({"from": {}, "to": {}})
    return schemas


def _parameters(op: Op) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in op.path.split("/") if part.startswith("{")]
    path = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0}
            if name == "version"
            else {"type": "string", "minLength": 1},
            **({"description": "`c` means the API key's own"} if name == "org_id" else {}),
        }
        for name in names
    ]
    query = [{"name": n, "in": "query", "required": False, "schema": QUERY[n]} for n in op.query]
    return path + query


def _success(op: Op) -> dict[str, Any]:
    if op.status == 204:
        return {"description": "Done"}
    if op.path == "/avatars/{avatar_id}":
        binary = {"schema": {"type": "string", "format": "binary"}}
        return {"description": "The image", "content": dict.fromkeys(IMAGE_TYPES, binary)}
    if op.path.endswith("/events"):
        stream = {"schema": {"type": "string"}}
        return {"description": "An event stream", "content": {"text/event-stream": stream}}
    assert op.response is not None
    schema = {"type": "array", "items": _ref(op.response)} if op.many else _ref(op.response)
    return {"description": op.summary, "content": {"application/json": {"schema": schema}}}


def _request_body(op: Op) -> dict[str, Any] | None:
    if op.body is not None:
        content = {t: {"schema": _ref(op.body)} for t in op.body_types}
        return {"required": True, "content": content}
    if op.path.endswith("/avatars"):
        binary = {"schema": {"type": "string", "format": "binary"}}
        form = {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        }
        return {"required": True, "content": {**dict.fromkeys(IMAGE_TYPES, binary),
                                              "multipart/form-data": form}}  # fmt: skip
    return None


def _operation(op: Op) -> dict[str, Any]:
    responses: dict[str, Any] = {str(op.status): _success(op)}
    for status in op.errors:
        responses[str(status)] = {"description": REASONS[status], "content": ERROR_MEDIA}
    operation: dict[str, Any] = {
        "operationId": op.operation_id or f"{op.method.lower()}{op.path}",
        "summary": op.summary,
        "parameters": _parameters(op),
        "responses": responses,
    }
    scope = documented_scope(op)
    needs = f"Needs the scope `{scope}`." if scope else "Any scope will do."
    operation["description"] = " ".join(filter(None, (op.description, needs)))
    if body := _request_body(op):
        operation["requestBody"] = body
    if op.public:
        operation["security"] = []
        del operation["description"]
    elif scope is not None:
        operation["security"] = [{"bearer": [str(scope)]}]
    return operation


@cache
def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "assistants-api",
            "version": "1.0.0",
            "description": "REST API to manage AI assistants (GraphQL is served at /graphql).",
        },
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


async def openapi_json(_request: Request) -> Response:
    return json_response(openapi_document())
