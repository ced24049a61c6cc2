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
