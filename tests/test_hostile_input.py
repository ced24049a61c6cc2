"""Hostile input on both transports. Every case answers a client error with a clear message
(REST: a 4xx problem with its `code`; GraphQL: a 4xx, or a 200 whose errors carry a client error
code, never INTERNAL_SERVER_ERROR), stores nothing, and the server keeps serving."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from app.models import Assistant

ID = "ASSISTANT_ID"  # replaced by the id of the assistant the test made
PATCH = f"/orgs/c/assistants/{ID}"
LONG = "a" * 10_000
SQL = "' OR 1=1 --"
TRAVERSAL = "../../etc/passwd"
HUGE_INT = str(10**400)


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes | None
    status: int
    code: str
    method: str = "PATCH"
    path: str = PATCH
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def nested(levels: int, leaf: str = "1") -> bytes:
    return ("[" * levels + leaf + "]" * levels).encode()


REST = [
    Case("invalid utf-8", b'{"name": "\xff\xfe"}', 400, "BAD_REQUEST"),
    Case("lone surrogate escape", b'{"name": "\\ud800"}', 400, "BAD_REQUEST"),
    Case("NUL in a string", js({"name": "a\u0000b"}), 400, "VALIDATION_FAILED"),
    Case("NUL in a key", js({"na\u0000me": "x"}), 400, "VALIDATION_FAILED"),
    Case(
        "NUL in an array item",
        js({"config": {"conversation": {"suggested_messages": ["ok", "\u0000"]}}}),
        400,
        "VALIDATION_FAILED",
    ),
    Case("NUL in a nested key", js({"config": {"t\u0000s": {}}}), 400, "VALIDATION_FAILED"),
    Case("10,000 nested arrays", nested(10_000), 400, "BAD_REQUEST"),
    Case(
        "10,000 nested objects in config",
        b'{"config": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_001,
        400,
        "BAD_REQUEST",
    ),
    Case(
        "100,000 suggested messages",
        js({"config": {"conversation": {"suggested_messages": ["hi"] * 100_000}}}),
        400,
        "VALIDATION_FAILED",
    ),
    Case(
        "100,000 integers as suggested messages",
        js({"config": {"conversation": {"suggested_messages": [1] * 100_000}}}),
        400,
        "VALIDATION_FAILED",
    ),
    Case("100,000-item array as the body", js([{}] * 100_000), 400, "BAD_REQUEST"),
    Case("huge integer as name", b'{"name": ' + HUGE_INT.encode() + b"}", 400, "BAD_REQUEST"),
    Case(
        "huge integer as enabled", b'{"enabled": -' + HUGE_INT.encode() + b"}", 400, "BAD_REQUEST"
    ),
    Case("1e400 as enabled", b'{"enabled": 1e400}', 400, "BAD_REQUEST"),
    Case("1e400 as name", b'{"name": 1e400}', 400, "BAD_REQUEST"),
    Case("NaN as a flag", b'{"enabled": NaN}', 400, "BAD_REQUEST"),
    Case("integer as boolean", js({"enabled": 1}), 400, "VALIDATION_FAILED"),
    Case("__proto__ key", js({"__proto__": {"admin": True}}), 400, "VALIDATION_FAILED"),
    Case(
        "constructor key",
        js({"config": {"constructor": {"prototype": {}}}}),
        400,
        "VALIDATION_FAILED",
    ),
    Case("__proto__ in tts", js({"config": {"tts": {"__proto__": "x"}}}), 400, "VALIDATION_FAILED"),
    Case("SQL in the id, GET", None, 404, "NOT_FOUND", "GET", f"/orgs/c/assistants/{SQL}"),
    Case(
        "SQL in the id, PATCH",
        js({"name": "n"}),
        404,
        "NOT_FOUND",
        path=f"/orgs/c/assistants/{SQL}",
    ),
    Case(
        "SQL in the org id",
        js({"name": "n"}),
        403,
        "FORBIDDEN",
        path=f"/orgs/{SQL}/assistants/{ID}",
    ),
    Case(
        "path traversal in the id",
        None,
        404,
        "NOT_FOUND",
        "GET",
        "/orgs/c/assistants/..%2F..%2Fetc%2Fpasswd",
    ),
    Case(
        "dot segments in the id", js({"name": "n"}), 404, "NOT_FOUND", path="/orgs/c/assistants/.."
    ),
    Case("SQL in avatar_id", js({"avatar_id": SQL}), 400, "VALIDATION_FAILED"),
    Case("path in avatar_id", js({"avatar_id": TRAVERSAL}), 400, "VALIDATION_FAILED"),
    Case(
        "SQL in a name with a bad flag",
        js({"name": SQL, "enabled": "yes"}),
        400,
        "VALIDATION_FAILED",
    ),
    Case(
        "path in instructions with a bad enum",
        js({"config": {"instructions": TRAVERSAL, "knowledge_scope": "everything"}}),
        400,
        "VALIDATION_FAILED",
    ),
    Case("10,000-character id", None, 404, "NOT_FOUND", "GET", f"/orgs/c/assistants/{LONG}"),
    Case("NUL in the id", None, 404, "NOT_FOUND", "GET", "/orgs/c/assistants/a%00b"),
    Case("NUL in the org id", None, 403, "FORBIDDEN", "GET", f"/orgs/a%00b/assistants/{ID}"),
    Case("invalid utf-8 in the id", None, 404, "NOT_FOUND", "GET", "/orgs/c/assistants/%FF%FE"),
    Case("10,000-character org id", None, 403, "FORBIDDEN", "GET", f"/orgs/{LONG}/assistants/{ID}"),
    Case("10,000-character avatar_id", js({"avatar_id": LONG}), 400, "VALIDATION_FAILED"),
    Case("duplicate keys", b'{"name": "a", "name": "b"}', 400, "BAD_REQUEST"),
    Case(
        "duplicate nested keys",
        b'{"config": {"tts": {"voice_id": "a", "voice_id": "b"}}}',
        400,
        "BAD_REQUEST",
    ),
    Case("text/plain", js({"name": "n"}), 415, "UNSUPPORTED_MEDIA_TYPE", content_type="text/plain"),
    Case("xml", b"<name>n</name>", 415, "UNSUPPORTED_MEDIA_TYPE", content_type="application/xml"),
    Case("no content type", js({"name": "n"}), 415, "UNSUPPORTED_MEDIA_TYPE", content_type=None),
    Case(
        "form-encoded",
        b"name=n",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        content_type="application/x-www-form-urlencoded",
    ),
    Case("empty body", b"", 400, "BAD_REQUEST"),
    Case("null body", b"null", 400, "BAD_REQUEST"),
    Case("string body", b'"name"', 400, "BAD_REQUEST"),
    Case("trailing garbage", b'{"name": "n"} {}', 400, "BAD_REQUEST"),
    Case("byte order mark", b'\xef\xbb\xbf{"name": "n"}', 400, "BAD_REQUEST"),
    Case(
        "create with NUL",
        js({"name": "\u0000"}),
        400,
        "VALIDATION_FAILED",
        "POST",
        "/orgs/c/assistants",
    ),
    Case(
        "create with duplicate keys",
        b'{"name": "a", "name": "b"}',
        400,
        "BAD_REQUEST",
        "POST",
        "/orgs/c/assistants",
    ),
    Case("SQL as page", None, 400, "VALIDATION_FAILED", "GET", f"/orgs/c/assistants?page={SQL}"),
    Case("huge take", None, 400, "VALIDATION_FAILED", "GET", f"/orgs/c/assistants?take={HUGE_INT}"),
    Case(
        "10,000-character API key",
        js({"name": "n"}),
        401,
        "UNAUTHENTICATED",
        headers=(("Authorization", f"Bearer {LONG}"),),
    ),
    Case(
        "huge If-Match",
        js({"name": "n"}),
        412,
        "PRECONDITION_FAILED",
        headers=(("If-Match", f'"{HUGE_INT}"'),),
    ),
]

UPDATE = (
    "mutation($id: ID!, $input: UpdateAssistantInput!) "
    '{ updateAssistant(orgId: "c", assistantId: $id, input: $input) { id } }'
)
READ = "query($org: ID!, $id: ID!) { assistant(orgId: $org, id: $id) { id } }"


def gql(query: str, variables: dict[str, Any] | None = None) -> bytes:
    return js({"query": query, "variables": variables or {}})


def update(input_: dict[str, Any]) -> bytes:
    return gql(UPDATE, {"id": ID, "input": input_})


def literal(input_: str) -> bytes:
    return gql(
        f'mutation {{ updateAssistant(orgId: "c", assistantId: "{ID}", input: {input_}) {{ id }} }}'
    )


def read(org: str = "c", id_: str = ID) -> bytes:
    return gql(READ, {"org": org, "id": id_})


def graphql(name: str, body: bytes | None, status: int, code: str, **kw: Any) -> Case:
    return Case(f"graphql: {name}", body, status, code, "POST", "/graphql", **kw)


GRAPHQL = [
    graphql("invalid utf-8", b'{"query": "{ __typename \xff }"}', 400, "BAD_REQUEST"),
    graphql(
        "lone surrogate escape",
        update({"name": "x"}).replace(b'"x"', b'"\\udc00"'),
        400,
        "BAD_REQUEST",
    ),
    graphql("NUL in a variable", update({"name": "a\u0000b"}), 200, "BAD_USER_INPUT"),
    graphql("NUL in a variable key", update({"na\u0000me": "x"}), 200, "BAD_USER_INPUT"),
    graphql("NUL in the query", gql("{ __typename \u0000 }"), 200, "GRAPHQL_PARSE_FAILED"),
    graphql(
        "10,000 nested arrays in variables",
        b'{"query": "{ __typename }", "variables": {"a": ' + nested(10_000) + b"}}",
        400,
        "BAD_REQUEST",
    ),
    graphql(
        "10,000 nested selections",
        gql("{ a " * 10_000 + "}" * 10_000),
        200,
        "GRAPHQL_VALIDATION_FAILED",
    ),
    graphql(
        "100,000 suggested messages",
        update({"config": {"conversation": {"suggestedMessages": ["hi"] * 100_000}}}),
        200,
        "BAD_USER_INPUT",
    ),
    graphql(
        "100,000 integers as suggested messages",
        update({"config": {"conversation": {"suggestedMessages": [1] * 100_000}}}),
        200,
        "BAD_USER_INPUT",
    ),
    graphql(
        "huge integer variable",
        update({"name": "x"}).replace(b'"x"', HUGE_INT.encode()),
        400,
        "BAD_REQUEST",
    ),
    graphql(
        "huge integer literal as enabled",
        literal(f"{{enabled: {HUGE_INT}}}"),
        200,
        "GRAPHQL_VALIDATION_FAILED",
    ),
    graphql(
        "1e400 literal as enabled", literal("{enabled: 1e400}"), 200, "GRAPHQL_VALIDATION_FAILED"
    ),
    graphql(
        "1e400 variable as name",
        update({"name": "x"}).replace(b'"x"', b"1e400"),
        400,
        "BAD_REQUEST",
    ),
    graphql("integer as boolean", update({"enabled": 1}), 200, "BAD_USER_INPUT"),
    graphql("__proto__ input key", update({"__proto__": {"admin": True}}), 200, "BAD_USER_INPUT"),
    graphql(
        "constructor input key", update({"config": {"constructor": {}}}), 200, "BAD_USER_INPUT"
    ),
    graphql("SQL in the id", read(id_=SQL), 200, "NOT_FOUND"),
    graphql("SQL in the org id", read(org=SQL), 200, "FORBIDDEN"),
    graphql("path traversal in the id", read(id_=TRAVERSAL), 200, "NOT_FOUND"),
    graphql("10,000-character id", read(id_=LONG), 200, "NOT_FOUND"),
    graphql("NUL in the id", read(id_="a\u0000b"), 200, "NOT_FOUND"),
    graphql("NUL in the org id", read(org="a\u0000b"), 200, "FORBIDDEN"),
    graphql("10,000-character org id", read(org=LONG), 200, "FORBIDDEN"),
    graphql("SQL in avatarId", update({"avatarId": SQL}), 200, "BAD_USER_INPUT"),
    graphql(
        "SQL in a name with a bad enum",
        update({"name": SQL, "config": {"knowledgeScope": "EVERYTHING"}}),
        200,
        "BAD_USER_INPUT",
    ),
    graphql(
        "duplicate variable keys",
        b'{"query": "'
        + UPDATE.replace('"', '\\"').encode()
        + b'", "variables": {"id": "'
        + ID.encode()
        + b'", "input": {"name": "a", "name": "b"}}}',
        400,
        "BAD_REQUEST",
    ),
    graphql(
        "duplicate query keys",
        b'{"query": "{ __typename }", "query": "{ __typename }"}',
        400,
        "BAD_REQUEST",
    ),
    graphql(
        "text/plain",
        update({"name": "n"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        content_type="text/plain",
    ),
    graphql(
        "form-encoded",
        b"query=x",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        content_type="application/x-www-form-urlencoded",
    ),
    graphql("empty body", b"", 400, "BAD_REQUEST"),
    graphql("null body", b"null", 400, "BAD_REQUEST"),
    graphql(
        "variables as a list", b'{"query": "{ __typename }", "variables": [1]}', 400, "BAD_REQUEST"
    ),
    graphql("query as a number", b'{"query": 1}', 400, "BAD_REQUEST"),
    graphql(
        "unknown operation name",
        js({"query": "query A { __typename }", "operationName": "B"}),
        400,
        "BAD_REQUEST",
    ),
    graphql(
        "10,000-character variable name",
        gql(f"query(${LONG}: ID!) {{ __typename }}"),
        200,
        "GRAPHQL_VALIDATION_FAILED",
    ),
]


async def count_assistants(db) -> int:
    async with db.read() as tx:
        return int(await tx.scalar(select(func.count()).select_from(Assistant)) or 0)


def assert_clear_error(case: Case, response) -> None:
    assert response.status_code == case.status, response.text[:500]
    body = response.json()
    if case.path == "/graphql":
        codes = [e["extensions"]["code"] for e in body["errors"]]
        assert case.code in codes, body
        assert "INTERNAL_SERVER_ERROR" not in codes
        assert all(e["message"] for e in body["errors"])
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert (body["status"], body["code"]) == (case.status, case.code), body
        assert body["detail"]
    assert len(response.content) < 100_000, "the error repeats the input"


@pytest.mark.parametrize("case", REST + GRAPHQL, ids=lambda case: case.name)
async def test_hostile_input(client, org, make_assistant, stored, db, case):
    assistant_id = (await make_assistant(org, name="Steady"))["id"]
    before, count = await stored(assistant_id), await count_assistants(db)
    headers = {**org.headers, **dict(case.headers)}
    if case.content_type:
        headers["content-type"] = case.content_type
    body = None if case.body is None else case.body.replace(ID.encode(), assistant_id.encode())
    response = await client.request(
        case.method, case.path.replace(ID, assistant_id), content=body, headers=headers
    )
    assert_clear_error(case, response)
    assert await stored(assistant_id) == before
    assert await count_assistants(db) == count
    follow_up = await client.get(f"/orgs/c/assistants/{assistant_id}", headers=org.headers)
    assert (follow_up.status_code, follow_up.json()["name"]) == (200, "Steady")


def test_the_table_is_big_enough():
    assert len(REST) >= 40
    assert len(GRAPHQL) >= 30


# Free-form JSON: at most 32 levels of nesting, counted from the value
# itself (`{}` is one level); deeper is refused by name before anything recurses over it, on
# both transports, and nothing is stored. A 900-level value is a valid 5 KB body.

MAX_JSON_DEPTH = 32
LOG_LINE_LIMIT = 64 * 1024


def deep(levels: int) -> dict[str, Any]:
    """An object `levels` deep: {"a": {"a": … {} …}} (built without recursion)."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def deep_literal(levels: int) -> str:
    return "{a: " * (levels - 1) + "{}" + "}" * (levels - 1)


@dataclass(frozen=True)
class DeepCase:
    name: str
    method: str
    path: str  # INTEGRATION / ACTION / ASSISTANT placeholders
    body: Any  # with DEEP where the deep value goes
    field: str  # the snake_case path the error names


DEEP = "__DEEP__"
INTEGRATIONS = f"/orgs/c/assistants/{ID}/integrations"
ACTIONS = f"/orgs/c/assistants/{ID}/actions"
ACTION_BODY = {"action_id": "TOOLS:HTTP_REQUEST", "name": "Fetch"}

DEEP_REST = [
    DeepCase(
        "create integration config",
        "POST",
        INTEGRATIONS,
        {"integration_id": "internal", "config": DEEP},
        "config",
    ),
    DeepCase(
        "update integration config",
        "PATCH",
        INTEGRATIONS + "/INTEGRATION",
        {"config": DEEP},
        "config",
    ),
    DeepCase(
        "create action input",
        "POST",
        ACTIONS,
        {**ACTION_BODY, "config": {"input": DEEP}},
        "config.input",
    ),
    DeepCase(
        "create action definition",
        "POST",
        ACTIONS,
        {**ACTION_BODY, "config": {"definitions": [{"path": "p", "definition": DEEP}]}},
        "config.definitions.0.definition",
    ),
    DeepCase(
        "update action input",
        "PATCH",
        ACTIONS + "/ACTION",
        {"config": {"input": DEEP}},
        "config.input",
    ),
]


def with_deep(body: Any, value: Any) -> Any:
    """`body` with DEEP replaced by `value` (the body itself is shallow)."""
    if body == DEEP:
        return value
    if isinstance(body, dict):
        return {k: with_deep(v, value) for k, v in body.items()}
    if isinstance(body, list):
        return [with_deep(v, value) for v in body]
    return body


async def children(db) -> tuple[Any, ...]:
    from app.models import Action, Integration

    async with db.read() as tx:
        found = []
        for model in (Integration, Action):
            table = model.__table__
            found.append(sorted(map(tuple, await tx.all(select(table)))))
        return tuple(found)


@pytest.fixture
async def family(client, org, make_assistant):
    """An assistant with one integration and one action; the placeholders of the paths."""
    assistant_id = (await make_assistant(org, name="Steady"))["id"]
    base = f"/orgs/c/assistants/{assistant_id}"
    integration = await client.post(
        f"{base}/integrations", json={"integration_id": "internal"}, headers=org.headers
    )
    action = await client.post(f"{base}/actions", json=ACTION_BODY, headers=org.headers)
    assert (integration.status_code, action.status_code) == (201, 201)
    return {
        ID: assistant_id,
        "INTEGRATION": integration.json()["id"],
        "ACTION": action.json()["id"],
    }


def place(path: str, family: dict[str, str]) -> str:
    for placeholder, value in family.items():
        path = path.replace(placeholder, value)
    return path


def log_lines(caplog) -> list[str]:
    from app.logs import JsonFormatter

    formatter = JsonFormatter()
    return [formatter.format(r) for r in caplog.records]


@pytest.mark.parametrize("levels", [900, MAX_JSON_DEPTH + 1])
@pytest.mark.parametrize("case", DEEP_REST, ids=lambda case: case.name)
async def test_deep_json_is_refused_over_rest(client, org, family, db, caplog, case, levels):
    before = await children(db)
    body = js(with_deep(case.body, deep(levels)))
    assert len(body) < 1024 * 1024
    response = await client.request(
        case.method,
        place(case.path, family),
        content=body,
        headers={**org.headers, "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text[:500]
    problem = response.json()
    assert problem["code"] == "VALIDATION_FAILED"
    assert [e["path"] for e in problem["errors"]] == [case.field]
    assert f"at most {MAX_JSON_DEPTH} levels" in problem["errors"][0]["message"]
    assert len(response.content) < 2_000
    assert await children(db) == before
    assert all(len(line) <= LOG_LINE_LIMIT for line in log_lines(caplog))


@pytest.mark.parametrize("case", DEEP_REST, ids=lambda case: case.name)
async def test_json_of_32_levels_is_stored(client, org, family, case):
    value = deep(MAX_JSON_DEPTH)
    response = await client.request(
        case.method,
        place(case.path, family),
        json=with_deep(case.body, value),
        headers=org.headers,
    )
    assert response.status_code in (200, 201), response.text[:500]
    config = response.json()["config"]
    stored_value = {
        "config": config,
        "config.input": config.get("input"),
        "config.definitions.0.definition": (config.get("definitions") or [{}])[0].get("definition"),
    }[case.field]
    assert stored_value == value


CREATE_INTEGRATION = (
    'mutation($a: ID!, $config: JSON) { createIntegration(orgId: "c", assistantId: $a, '
    'input: {integrationId: "internal", config: $config}) { id } }'
)
UPDATE_INTEGRATION = (
    'mutation($i: ID!, $config: JSON) { updateIntegration(orgId: "c", integrationId: $i, '
    "input: {config: $config}) { id } }"
)
CREATE_ACTION = (
    'mutation($a: ID!, $input: JSON) { createAction(orgId: "c", assistantId: $a, '
    'input: {actionId: "TOOLS:HTTP_REQUEST", name: "Fetch", config: {input: $input}}) { id } }'
)
UPDATE_ACTION_DEFINITION = (
    'mutation($x: ID!, $d: JSON!) { updateAction(orgId: "c", actionId: $x, '
    'input: {config: {definitions: [{path: "p", definition: $d}]}}) { id } }'
)
DEEP_GRAPHQL = [
    ("createIntegration config", CREATE_INTEGRATION, "a", ID, "config"),
    ("updateIntegration config", UPDATE_INTEGRATION, "i", "INTEGRATION", "config"),
    ("createAction input", CREATE_ACTION, "a", ID, "input"),
    ("updateAction definition", UPDATE_ACTION_DEFINITION, "x", "ACTION", "d"),
]


def assert_deep_refused_over_graphql(response, name: str) -> None:
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert f"at most {MAX_JSON_DEPTH} levels" in error["message"]
    assert name in error["message"]
    assert len(response.content) < 2_000


@pytest.mark.parametrize("levels", [900, MAX_JSON_DEPTH + 1])
@pytest.mark.parametrize("case", DEEP_GRAPHQL, ids=lambda case: case[0])
async def test_deep_json_variables_are_refused(client, org, family, db, caplog, case, levels):
    _name, query, variable, target, _field = case
    before = await children(db)
    variables: dict[str, Any] = {variable: family[target], _field: deep(levels)}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=org.headers
    )
    assert_deep_refused_over_graphql(response, f"${_field}")
    assert await children(db) == before
    assert all(len(line) <= LOG_LINE_LIMIT for line in log_lines(caplog))


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 300])
async def test_deep_json_literals_are_refused(client, org, family, db, caplog, levels):
    before = await children(db)
    query = (
        f'mutation {{ createIntegration(orgId: "c", assistantId: "{family[ID]}", input: '
        f'{{integrationId: "internal", config: {deep_literal(levels)}}}) {{ id }} }}'
    )
    response = await client.post("/graphql", json={"query": query}, headers=org.headers)
    assert response.status_code == 200, response.text[:500]
    errors = response.json()["errors"]
    codes = {e["extensions"]["code"] for e in errors}
    # within the token limit the value is refused by its depth; beyond it, the document
    assert codes <= {"BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"}, errors
    if levels == MAX_JSON_DEPTH + 1:
        assert any(f"at most {MAX_JSON_DEPTH} levels" in e["message"] for e in errors), errors
    assert await children(db) == before
    assert all(len(line) <= LOG_LINE_LIMIT for line in log_lines(caplog))


async def test_json_literal_of_32_levels_is_stored(client, org, family):
    query = (
        f'mutation {{ createIntegration(orgId: "c", assistantId: "{family[ID]}", input: '
        f'{{integrationId: "internal", config: {deep_literal(MAX_JSON_DEPTH)}}}) '
        "{ config } }"
    )
    response = await client.post("/graphql", json={"query": query}, headers=org.headers)
    body = response.json()
    assert body.get("errors") is None, body
    assert body["data"]["createIntegration"]["config"] == deep(MAX_JSON_DEPTH)


def test_a_log_line_never_passes_64_kib():
    """A huge message and a deep traceback: one valid JSON line of at most 64 KiB that keeps
    its keys, the start of the message and the end of the traceback (the exception)."""
    import logging

    from app.logs import JsonFormatter

    def recurse(n: int) -> None:
        if n == 0:
            raise RecursionError("the last frame")
        recurse(n - 1)

    try:
        recurse(900)
    except RecursionError:
        import sys

        exc_info = sys.exc_info()
    record = logging.makeLogRecord(
        {"name": "app.errors", "levelname": "ERROR", "msg": "start " + "x" * 500_000}
    )
    record.exc_info = exc_info
    record.request_id = "r" * 200_000
    line = JsonFormatter().format(record)
    assert len(line.encode()) <= LOG_LINE_LIMIT
    parsed = json.loads(line)
    assert parsed["truncated"] is True
    assert parsed["message"].startswith("start x")
    assert parsed["exc_info"].endswith("RecursionError: the last frame")
    assert {"time", "level", "logger", "request_id"} <= parsed.keys()
    short = logging.makeLogRecord({"name": "app", "levelname": "INFO", "msg": "fine"})
    assert "truncated" not in json.loads(JsonFormatter().format(short))


@pytest.mark.parametrize("levels", [900, MAX_JSON_DEPTH + 1])
async def test_deep_json_inside_an_input_variable_is_refused(
    client, org, family, db, caplog, levels
):
    """The JSON value inside a whole input object sent as one variable: refused by the scalar,
    naming the variable and the field within it."""
    before = await children(db)
    query = (
        "mutation($a: ID!, $input: CreateIntegrationInput!) "
        '{ createIntegration(orgId: "c", assistantId: $a, input: $input) { id } }'
    )
    variables = {"a": family[ID], "input": {"integrationId": "internal", "config": deep(levels)}}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=org.headers
    )
    assert_deep_refused_over_graphql(response, "$input")
    (error,) = response.json()["errors"]
    assert [f["path"] for f in error["extensions"]["fields"]] == [["config"]]
    assert await children(db) == before
    assert all(len(line) <= LOG_LINE_LIMIT for line in log_lines(caplog))
