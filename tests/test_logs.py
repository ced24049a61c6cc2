"""One structured JSON line per request on `app.access`; never a key, a secret or a body."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from app.logs import JsonFormatter

SENTINEL = "body-sentinel-7f3a"


@pytest.fixture
def access(caplog):
    caplog.set_level(logging.INFO)

    def lines() -> list[dict[str, object]]:
        formatter = JsonFormatter()
        return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "app.access"]

    return lines


def everything_logged(caplog) -> str:
    """What the server logged (the test's own HTTP client logs its requests: not the server)."""
    formatter = JsonFormatter()
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    return "\n".join(formatter.format(r) + r.getMessage() for r in records)


async def test_one_line_per_rest_request_without_secrets(
    client, org, make_assistant, access, caplog
):
    created = await make_assistant(org, generate_secret_key=True)
    secret = created["secret_key"]
    caplog.clear()
    response = await client.patch(
        f"/orgs/c/assistants/{created['id']}",
        json={"name": SENTINEL},
        headers={**org.headers, "X-Request-ID": "req-logs-1"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-logs-1"
    [line] = access()
    duration = line.pop("duration_ms")
    assert isinstance(duration, float)
    assert duration >= 0
    assert {k: line[k] for k in ("time", "level", "logger", "message")} == {
        "time": line["time"],
        "level": "INFO",
        "logger": "app.access",
        "message": f"PATCH /orgs/c/assistants/{created['id']} 200",
    }
    assert {k: v for k, v in line.items() if k not in ("time", "level", "logger", "message")} == {
        "request_id": "req-logs-1",
        "org_id": org.org_id,
        "key_id": org.key_id,
        "client": "127.0.0.1",
        "method": "PATCH",
        "route": "/orgs/{org_id}/assistants/{assistant_id}",
        "path": f"/orgs/c/assistants/{created['id']}",
        "status": 200,
    }
    logged = everything_logged(caplog)
    for leaked in (org.api_key, secret, SENTINEL):
        assert leaked not in logged


async def test_graphql_requests_name_their_organisation(client, org, access):
    query = f'mutation {{ createAssistant(orgId: "c", input: {{name: "{SENTINEL}"}}) {{ id }} }}'
    response = await client.post("/graphql", json={"query": query}, headers=org.headers)
    assert "errors" not in response.json()
    [line] = access()
    assert (line["org_id"], line["route"], line["status"]) == (org.org_id, "/graphql", 200)
    assert line["request_id"] == response.headers["x-request-id"]
    assert len(line["request_id"]) == 32


async def test_unauthenticated_and_unrouted_requests_are_logged_too(client, access, caplog):
    await client.get("/orgs/c/assistants", headers={"Authorization": "Bearer ak_wrong_key"})
    await client.get("/no/such/route?token=abc")
    first, second = access()
    assert (first["status"], first["org_id"], first["route"]) == (
        401,
        None,
        "/orgs/{org_id}/assistants",
    )
    assert (second["status"], second["route"], second["path"]) == (404, None, "/no/such/route")
    logged = everything_logged(caplog)
    assert "ak_wrong_key" not in logged
    assert "token=abc" not in logged


async def test_a_masked_failure_is_logged_with_status_500(client, org, access, monkeypatch):
    import app.rest.assistants

    async def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.rest.assistants, "get_assistant", explode)
    response = await client.get("/orgs/c/assistants/x", headers=org.headers)
    assert response.status_code == 500
    [line] = access()
    assert (line["status"], line["request_id"]) == (500, response.headers["x-request-id"])


def test_formatter_writes_one_json_object_per_record_with_the_traceback():
    try:
        raise ValueError("inner")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    text = JsonFormatter().format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert line["message"] == "failed here"
    assert "ValueError: inner" in line["exc_info"]
