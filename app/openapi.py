"""`GET /openapi.json`: OpenAPI 3.1 for every REST route.

Request bodies are the JSON Schemas of the very pydantic models that validate them
(`AssistantCreate`, `AssistantPatch`, `IntegrationCreate`, …); responses are described by the
models below, which tests/test_openapi.py and the schemathesis run (tests/test_fuzz.py) check
against real answers, and a test fails when a route is added without an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from app.domain.access import Scope
from app.domain.actions import MAX_ACTIONS
from app.domain.assistant_input import AssistantCreate, AssistantPatch
from app.domain.bundle_format import Bundle
from app.domain.child_input import (
    ActionCreate,
    ActionPatch,
    ActionReorder,
    IntegrationCreate,
    IntegrationPatch,
)
from app.domain.duplicate import DuplicateBody
from app.domain.integrations import MAX_INTEGRATIONS
from app.domain.keys import MAX_KEYS, ApiKeyCreate
from app.domain.releases import EnvironmentPin, ReleaseCreate
from app.domain.shape import CONFIG, Group, groups_of
from app.domain.webhooks import MAX_WEBHOOKS, WebhookCreate, WebhookPatch
from app.http.content import PATCH_TYPES
from app.rest.assistant_find import QUERY as FIND_QUERY
from app.rest.assistant_find import SORT_VALUES
from app.rest.common import MAX_PAGE, json_response


class Document(BaseModel):
    """Responses may carry more keys than documented, never fewer."""

    model_config = ConfigDict(extra="allow")


def document_model(group: Group, models: dict[str, type[Document]]) -> type[Document]:
    """The response model of a group of the declaration (app/domain/shape.py): every member
    required, enums as their strings, in declaration order."""
    fields: dict[str, Any] = {}
    for member in group.members:
        if isinstance(member, Group):
            fields[member.name] = (models[member.openapi_model], ...)
        else:
            kind: Any = list[str] if member.type is list else member.type
            fields[member.name] = (kind | None if member.nullable else kind, ...)
    return create_model(group.openapi_model, __base__=Document, __module__=__name__, **fields)


CONFIG_MODELS: dict[str, type[Document]] = {}
for _group in groups_of(CONFIG):
    CONFIG_MODELS[_group.openapi_model] = document_model(_group, CONFIG_MODELS)

if TYPE_CHECKING:
    Config: TypeAlias = Document  # built from the declaration just above
else:
    Config = CONFIG_MODELS[CONFIG.openapi_model]  # (and Stt, Tts, Conversation)


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
    ref: str | None
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


class DuplicatedFrom(Document):
    """The assistant a duplicate was copied from, and its draft version that was copied."""

    assistant_id: str
    version: int


class Revision(Document):
    assistant_id: str
    version: int
    changed_at: str
    change_type: str
    actor_key_id: str | None
    source: str
    changes: list[Change]
    duplicated_from: DuplicatedFrom | None = Field(
        default=None, description="Only on the `created` revision of a duplicate: its source."
    )


class BundleStep(Document):
    """One assistant of a bundle's plan (docs/bundles.md)."""

    ref: str
    action: str = Field(description="create, update, unchanged or delete")
    id: str | None = Field(description="The assistant's id (null for a create in a dry run)")
    changes: list[Change]


class BundleSummary(Document):
    create: int
    update: int
    unchanged: int
    delete: int


class BundlePlan(Document):
    applied: bool = Field(description="false for a dry run: nothing was written")
    summary: BundleSummary
    assistants: list[BundleStep]


class RevisionWithSnapshot(Revision):
    snapshot: dict[str, Any]


class FrozenAssistant(Document):
    """The assistant as a release froze it: the REST GET's document without `secret_key`."""

    id: str
    name: str
    enabled: bool
    avatar_id: str | None
    avatar_url: str | None
    config: Config
    integrations: list[Integration]
    actions: list[Action]


class Release(Document):
    number: int
    assistant_id: str
    version: int
    note: str | None
    created_at: str
    created_by_key_id: str | None
    assistant: FrozenAssistant


class Environment(Release):
    """An environment (`name`, `release`, `updated_at`) with its release's document."""

    name: str
    release: int
    updated_at: str


class ReleaseDiff(Document):
    release: int
    against: str
    changes: list[Change]


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


class AuditActor(Document):
    type: str  # api_key | cli
    key_id: str | None
    key_name: str | None
    key_prefix: str | None


class AuditResource(Document):
    type: str
    id: str | None


class AuditEntry(Document):
    """One entry of the audit log (docs/audit-log.md)."""

    id: int
    at: str
    org_id: str
    actor: AuditActor
    action: str
    resource: AuditResource
    outcome: str  # ok | denied
    transport: str  # rest | graphql | websocket | cli
    request_id: str | None
    client_ip: str | None
    user_agent: str | None
    version: int | None
    hash: str


class Webhook(Document):
    id: str
    url: str
    description: str
    event_types: list[str] | None
    assistant_ids: list[str] | None
    enabled: bool
    disabled_reason: str | None = Field(description="null, `failing` or `gone`")
    created_at: str
    updated_at: str


class WebhookWithSecret(Webhook):
    secret: str = Field(description="`whsec_…`: shown only when made and when rotated")


class WebhookAttempt(Document):
    at: str
    duration_ms: int
    status_code: int | None
    error: str | None = Field(description="`timeout`, `blocked_address`, `connection_failed: …`")
    response_body: str | None = Field(description="The first 1 KiB of the answer")


class WebhookDelivery(Document):
    id: str = Field(description="The `webhook-id` header of every attempt")
    webhook_id: str
    event_id: str | None
    type: str
    status: str = Field(description="`pending`, `delivered` or `failed`")
    attempts: list[WebhookAttempt]
    next_attempt_at: str | None
    created_at: str
    payload: dict[str, Any]


class WebhookTestAnswer(WebhookDelivery):
    attempt: WebhookAttempt


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
    quota_bytes: int | None = Field(
        default=None, description="`QUOTA_EXCEEDED`: the organisation's ORG_STORAGE_QUOTA"
    )


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
    not_modified: bool = False  # 304 to an `If-None-Match` naming the current ETag
    operation_id: str = ""  # a name a generated client reads: `updateAssistant`
    description: str | None = None
    body_required: bool = True


ASSISTANTS = "/orgs/{org_id}/assistants"
ASSISTANT = ASSISTANTS + "/{assistant_id}"
INTEGRATIONS = ASSISTANT + "/integrations"
ACTIONS = ASSISTANT + "/actions"
REVISIONS = ASSISTANT + "/revisions"
RELEASES = ASSISTANT + "/releases"
ENVIRONMENTS = ASSISTANT + "/environments"
API_KEYS = "/orgs/{org_id}/api-keys"
WEBHOOKS = "/orgs/{org_id}/webhooks"
WEBHOOK = WEBHOOKS + "/{webhook_id}"
DELIVERIES = WEBHOOK + "/deliveries"
AUDIT_LOG = "/orgs/{org_id}/audit-log"
BODY_ERRORS = (400, 401, 403, 404, 413, 415, 429)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
CAPPED = (
    "An assistant holds at most {n} {kind}: a create beyond is 400 `VALIDATION_FAILED` "
    "naming the limit, and nothing is stored."
)

OPERATIONS = [
    Op("GET", "/healthz", "Liveness", response=Health, errors=(), public=True,
       operation_id="getHealth"),
    Op("GET", "/readyz", "Readiness: 503 while the database does not answer", response=Health,
       errors=(503,), public=True, operation_id="getReadiness"),
    Op("POST", ASSISTANTS, "Create an assistant", 201, Assistant, body=AssistantCreate,
       errors=(*BODY_ERRORS, 409), operation_id="createAssistant"),
    Op("GET", ASSISTANTS, "List assistants, oldest first, or found by a filter and a sort",
       response=Assistant, many=True,
       query=("page", "take", *FIND_QUERY), errors=(400, 401, 403, 429),
       operation_id="listAssistants"),
    Op("GET", ASSISTANT, "Read an assistant", response=Assistant, operation_id="getAssistant"),
    Op("PATCH", ASSISTANT, "Update an assistant (deep merge; RFC 7396 accepted)",
       response=Assistant, body=AssistantPatch, body_types=PATCH_TYPES, query=("dry_run",),
       errors=(*BODY_ERRORS, 409, 412), operation_id="updateAssistant"),
    Op("DELETE", ASSISTANT, "Delete an assistant (`If-Match` honoured)", 204,
       errors=(401, 403, 404, 412, 429), operation_id="deleteAssistant"),
    Op("POST", ASSISTANT + "/rotate-secret-key", "Rotate the secret key (`If-Match` honoured)",
       response=Assistant, errors=(401, 403, 404, 412, 429),
       operation_id="rotateAssistantSecretKey"),
    Op("POST", ASSISTANT + "/duplicate", "Duplicate an assistant (a create)", 201, Assistant,
       body=DuplicateBody, body_required=False, errors=BODY_ERRORS,
       operation_id="duplicateAssistant",
       description="A new assistant (new ids, a new `secret_key`, version 1) copied from the "
       "draft, or from release `from_release`: name (by default \"<name> (copy)\"), enabled, "
       "avatar, config, and its integrations and actions in their order unless excluded. Its "
       "`created` revision names `duplicated_from`. A key restricted to some assistants "
       "cannot duplicate (403), and it counts against CREATE_ASSISTANT_LIMIT (429). The body "
       "may be absent. See docs/duplicate.md."),
    Op("POST", INTEGRATIONS, "Add an integration", 201, Integration, body=IntegrationCreate,
       errors=BODY_ERRORS, description=CAPPED.format(n=MAX_INTEGRATIONS, kind="integrations"),
       operation_id="createIntegration"),
    Op("GET", INTEGRATIONS, "List integrations", response=Integration, many=True,
       operation_id="listIntegrations"),
    Op("GET", INTEGRATIONS + "/{integration_id}", "Read an integration", response=Integration,
       operation_id="getIntegration"),
    Op("PATCH", INTEGRATIONS + "/{integration_id}", "Update an integration",
       response=Integration, body=IntegrationPatch, body_types=PATCH_TYPES, errors=BODY_ERRORS,
       operation_id="updateIntegration"),
    Op("DELETE", INTEGRATIONS + "/{integration_id}", "Delete an integration", 204,
       operation_id="deleteIntegration"),
    Op("POST", ACTIONS, "Add an action (it goes last)", 201, Action, body=ActionCreate,
       errors=BODY_ERRORS, description=CAPPED.format(n=MAX_ACTIONS, kind="actions"),
       operation_id="createAction"),
    Op("GET", ACTIONS, "List actions by position", response=Action, many=True,
       operation_id="listActions"),
    Op("PATCH", ACTIONS + "/reorder", "Reorder actions", response=Action, many=True,
       body=ActionReorder, body_types=PATCH_TYPES, errors=BODY_ERRORS,
       operation_id="reorderActions"),
    Op("GET", ACTIONS + "/{action_id}", "Read an action", response=Action,
       operation_id="getAction"),
    Op("PATCH", ACTIONS + "/{action_id}", "Update an action", response=Action,
       body=ActionPatch, body_types=PATCH_TYPES, errors=BODY_ERRORS, operation_id="updateAction"),
    Op("DELETE", ACTIONS + "/{action_id}", "Delete an action", 204,
       operation_id="deleteAction"),
    Op("POST", "/orgs/{org_id}/avatars", "Upload an avatar (PNG, JPEG, WebP or GIF, 2 MiB)",
       201, AvatarCreated, errors=(400, 401, 403, 404, 413, 429), operation_id="uploadAvatar",
       description="The image is the multipart field `file`, or the whole body (any "
       "`Content-Type`: `image/png`, `application/octet-stream`, …); its type is read from "
       "its bytes, never from what the request claims."),
    Op("GET", "/avatars/{avatar_id}", "An avatar image (public)", errors=(404,), public=True,
       operation_id="getAvatarImage"),
    Op("GET", REVISIONS, "History, newest first", response=Revision, many=True,
       query=("page", "take"), errors=(400, 401, 403, 404, 429), operation_id="listRevisions"),
    Op("GET", REVISIONS + "/{version}", "One revision with its snapshot",
       response=RevisionWithSnapshot, operation_id="getRevision"),
    Op("POST", REVISIONS + "/{version}/restore", "Restore a revision", response=Assistant,
       errors=(401, 403, 404, 412, 413, 429), operation_id="restoreRevision"),
    Op("POST", RELEASES, "Publish the draft as the next release (`If-Match` honoured)", 201,
       Release, body=ReleaseCreate, errors=(*BODY_ERRORS, 412), operation_id="publishAssistant",
       description="The whole assistant, integrations and actions included, frozen as release "
       "`n`; with `environment`, that environment points at it. The draft's version does not "
       "change. See docs/releases.md."),
    Op("GET", RELEASES, "Releases, newest first", response=Release, many=True,
       query=("page", "take"), errors=(400, 401, 403, 404, 429), operation_id="listReleases"),
    Op("GET", RELEASES + "/{number}", "One release (`ETag`: its number)", response=Release,
       not_modified=True, operation_id="getRelease"),
    Op("GET", RELEASES + "/{number}/diff", "Leaf changes from `against` to the release",
       response=ReleaseDiff, query=("against",), operation_id="diffRelease"),
    Op("GET", ENVIRONMENTS, "Environments by name, each with its release", response=Environment,
       many=True, operation_id="listEnvironments"),
    Op("GET", ENVIRONMENTS + "/{name}", "The pinned release's document (`ETag`: its number)",
       response=Release, not_modified=True, operation_id="getEnvironment",
       description="Answers `ETag: \"<release number>\"`; an `If-None-Match` naming it is 304 "
       "with no body, so a runtime may poll cheaply."),
    Op("PUT", ENVIRONMENTS + "/{name}", "Point an environment at a release (`If-Match` on its "
       "current release honoured)", response=Environment, body=EnvironmentPin,
       errors=(*BODY_ERRORS, 412), operation_id="pinEnvironment"),
    Op("DELETE", ENVIRONMENTS + "/{name}", "Remove an environment (its releases stay)", 204,
       errors=(401, 403, 404, 412, 429), operation_id="removeEnvironment"),
    Op("GET", "/orgs/{org_id}/events", "Changes as server-sent events (`Last-Event-ID` resumes)",
       query=("assistant_id", "last_event_id"), errors=(400, 401, 403, 429),
       operation_id="streamEvents"),
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
    Op("GET", WEBHOOKS, "List the organisation's webhooks, oldest first", response=Webhook,
       many=True, query=("page", "take"), errors=(400, 401, 403, 429),
       operation_id="listWebhooks"),
    Op("POST", WEBHOOKS, "Make a webhook; the answer holds its secret, this once", 201,
       WebhookWithSecret, body=WebhookCreate, errors=(400, 401, 403, 413, 415, 429),
       operation_id="createWebhook",
       description=f"An organisation holds at most {MAX_WEBHOOKS} webhooks (beyond: 400 "
       "`VALIDATION_FAILED` naming `webhooks`). `url` must be https:// with no user or "
       "password, and its host may not resolve to a loopback, private, link-local, shared or "
       "reserved address (400 naming `url`)."),
    Op("GET", WEBHOOK, "Read a webhook", response=Webhook, operation_id="getWebhook"),
    Op("PATCH", WEBHOOK, "Update a webhook (`enabled: true` re-enables it)", response=Webhook,
       body=WebhookPatch, body_types=PATCH_TYPES, errors=BODY_ERRORS,
       operation_id="updateWebhook"),
    Op("DELETE", WEBHOOK, "Delete a webhook and its delivery log", 204,
       operation_id="deleteWebhook"),
    Op("POST", WEBHOOK + "/rotate-secret", "A new secret (the old one signs too for a while)",
       response=WebhookWithSecret, operation_id="rotateWebhookSecret"),
    Op("POST", WEBHOOK + "/test", "Send a `ping` now; answers its attempt",
       response=WebhookTestAnswer, operation_id="testWebhook"),
    Op("GET", DELIVERIES, "The webhook's deliveries, newest first", response=WebhookDelivery,
       many=True, query=("page", "take", "status"), errors=(400, 401, 403, 404, 429),
       operation_id="listWebhookDeliveries"),
    Op("POST", "/orgs/{org_id}/bundles/apply", "Apply a bundle: its plan, carried out unless "
       "`dry_run`", response=BundlePlan, body=Bundle, query=("dry_run", "prune"),
       errors=(*BODY_ERRORS, 409), operation_id="applyBundle",
       description="All or nothing, in one transaction (docs/bundles.md); a bundle is at most "
       "5 MiB and 1,000 assistants; `${env:NAME}` is refused over HTTP. Needs "
       "`assistants:write` on a key that is not restricted to some assistants."),
    Op("GET", "/schemas/bundle.json", "The JSON Schema of bundles", public=True, errors=(),
       operation_id="getBundleSchema"),
    Op("GET", DELIVERIES + "/{delivery_id}", "One delivery with its attempts",
       response=WebhookDelivery, operation_id="getWebhookDelivery"),
    Op("POST", DELIVERIES + "/{delivery_id}/redeliver", "Send a delivery again, soon", 202,
       WebhookDelivery, operation_id="redeliverWebhookDelivery"),
    Op("GET", AUDIT_LOG, "The organisation's audit log, newest first (nothing changes it)",
       response=AuditEntry, many=True,
       query=("page", "take", "actor_key_id", "action", "resource_id", "since", "until"),
       errors=(400, 401, 403, 429), operation_id="listAuditLog",
       description="Needs `audit:read`. `since` (inclusive) and `until` (exclusive) are RFC "
       "3339 instants. Each entry's `hash` is the SHA-256 of the previous entry's hash and its "
       "canonical JSON (docs/audit-log.md)."),
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
    if op.path.startswith(WEBHOOKS):
        return Scope.WEBHOOKS
    if op.path == AUDIT_LOG:
        return Scope.AUDIT
    return Scope.READ if op.method == "GET" else Scope.WRITE


QUERY = {
    "page": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
    "take": {"type": "integer", "minimum": 1, "maximum": 100, "default": 100},
    "dry_run": {"type": "boolean", "default": False},
    "prune": {"type": "boolean", "default": False},
    "assistant_id": {"type": "string"},
    "last_event_id": {"type": "string"},
    "against": {"type": "string", "default": "draft"},
    "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
    # finding assistants (docs/finding-assistants.md)
    "search": {"type": "string", "maxLength": 1024},
    "enabled": {"type": "boolean"},
    "language": {"type": "string", "minLength": 1, "maxLength": 64},
    "model": {"type": "string", "minLength": 1, "maxLength": 200},
    "ref": {"type": "string", "minLength": 1, "maxLength": 64},
    "updated_since": {"type": "string", "format": "date-time"},
    "sort": {"type": "string", "enum": list(SORT_VALUES)},
    "actor_key_id": {"type": "string"},
    "action": {"type": "string"},
    "resource_id": {"type": "string"},
    "since": {"type": "string", "format": "date-time"},
    "until": {"type": "string", "format": "date-time"},
}
REASONS = {
    400: "Bad request or invalid input (or a limit reached)",
    401: "No, unknown, revoked or expired API key",
    403: "The key does not open this organisation (`FORBIDDEN`), or lacks the scope the "
    "operation needs (`INSUFFICIENT_SCOPE`, `WWW-Authenticate: Bearer "
    'error="insufficient_scope", scope="…"`)',
    404: "Not found",
    409: "The `ref` is already taken by another assistant of the organisation (`REF_TAKEN`), "
    "or a request with this `Idempotency-Key` is still running (`IDEMPOTENCY_KEY_IN_USE`, "
    "`Retry-After: 1`)",
    412: "`If-Match` is stale",
    413: "Body too large (`PAYLOAD_TOO_LARGE`), or the write would take the organisation's "
    "stored data past its quota, ORG_STORAGE_QUOTA (`QUOTA_EXCEEDED`, nothing is stored)",
    415: "Unsupported content type",
    422: "This `Idempotency-Key` was sent with another request (`IDEMPOTENCY_KEY_REUSED`)",
    429: "Too many requests (see `Retry-After`)",
    503: "The database does not answer",
}
# every write may carry it (docs/idempotency.md)
IDEMPOTENT_METHODS = ("POST", "PATCH", "DELETE")
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
    "description": "1-255 printable ASCII characters. The first request with a key runs and "
    "its answer is stored (per API key, IDEMPOTENCY_TTL, 24 h by default); a repeat with the "
    "same key and request gets that answer again with `Idempotent-Replayed: true` and changes "
    "nothing. Another request with the key is 422, a repeat while the first runs 409. "
    "Answers of 500 or more are not stored. See docs/idempotency.md.",
}
ERROR_MEDIA = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


BINARY = {"schema": {"type": "string", "format": "binary"}}
# Every object of the document has a name of its own (a component), so that no generator has
# to make one up: openapi-python-client names an inline object after its parent and property
# (`ActionConfig.input` → `ActionConfigInput`), which may well be the name of a component.
JSON_OBJECT = "JsonObject"
AVATAR_UPLOAD = "AvatarUpload"
NAMED_OBJECTS: dict[str, dict[str, Any]] = {
    JSON_OBJECT: {
        "type": "object",
        "additionalProperties": True,
        "description": "Any JSON object.",
    },
    AVATAR_UPLOAD: {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary"}},
        "required": ["file"],
        "description": "An avatar image as the multipart field `file`.",
    },
}


def _ref_name(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return _ref_name(model.__name__)


def _is_any_object(node: dict[str, Any]) -> bool:
    """A free-form object (`dict[str, Any]`): no properties, any others."""
    return (
        node.get("type") == "object"
        and "properties" not in node
        and node.get("additionalProperties", True) is True
    )


def named_objects(node: Any, top: bool = True) -> Any:
    """The schema with each free-form object inside it a reference to `JsonObject`."""
    if isinstance(node, dict):
        if not top and _is_any_object(node):
            return _ref_name(JSON_OBJECT)
        return {k: named_objects(v, top=False) for k, v in node.items()}
    if isinstance(node, list):
        return [named_objects(v, top=False) for v in node]
    return node


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
    schemas = {name: named_objects(schema) for name, schema in schemas.items()}
    assert NAMED_OBJECTS.keys().isdisjoint(schemas)
    return {**schemas, **NAMED_OBJECTS}


def _parameters(op: Op) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in op.path.split("/") if part.startswith("{")]
    path = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0}
            if name in ("version", "number")
            else {"type": "string", "minLength": 1},
            **({"description": "`c` means the API key's own"} if name == "org_id" else {}),
        }
        for name in names
    ]
    query = [{"name": n, "in": "query", "required": False, "schema": QUERY[n]} for n in op.query]
    header = [IDEMPOTENCY_KEY] if op.method in IDEMPOTENT_METHODS else []
    return path + query + header


def _success(op: Op) -> dict[str, Any]:
    if op.status == 204:
        return {"description": "Done"}
    if op.path == "/avatars/{avatar_id}":
        # served with the image's own type; `application/octet-stream` is how generated
        # clients (openapi-python-client) read an answer of bytes
        content = dict.fromkeys((*IMAGE_TYPES, "application/octet-stream"), BINARY)
        return {"description": "The image", "content": content}
    if op.path == "/schemas/bundle.json":
        media = {"application/schema+json": {"schema": _ref_name(JSON_OBJECT)}}
        return {"description": op.summary, "content": media}
    if op.path.endswith("/events"):
        stream = {"schema": {"type": "string"}}
        return {"description": "An event stream", "content": {"text/event-stream": stream}}
    assert op.response is not None
    schema = {"type": "array", "items": _ref(op.response)} if op.many else _ref(op.response)
    return {"description": op.summary, "content": {"application/json": {"schema": schema}}}


def _request_body(op: Op) -> dict[str, Any] | None:
    if op.body is not None:
        content = {t: {"schema": _ref(op.body)} for t in op.body_types}
        return {"required": op.body_required, "content": content}
    if op.path.endswith("/avatars"):
        # the two forms generators read: a form with a file (`format: binary`), raw bytes
        form = {"schema": _ref_name(AVATAR_UPLOAD)}
        content = {"multipart/form-data": form, "application/octet-stream": BINARY}
        return {"required": True, "content": content}
    return None


def _operation(op: Op) -> dict[str, Any]:
    responses: dict[str, Any] = {str(op.status): _success(op)}
    if op.not_modified:
        responses["304"] = {"description": "Not modified: `If-None-Match` names the ETag"}
    errors = [*op.errors, *((400, 409, 422) if op.method in IDEMPOTENT_METHODS else ())]
    for status in sorted(set(errors)):
        responses[str(status)] = {"description": REASONS[status], "content": ERROR_MEDIA}
    operation: dict[str, Any] = {
        "operationId": op.operation_id,
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
