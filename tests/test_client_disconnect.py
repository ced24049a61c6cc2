"""A client that goes away while its body is read is no server error: a quiet 499 (no error log,
no traceback), nothing stored, on both transports."""

from __future__ import annotations

import logging
from typing import Any

import pytest


async def call_then_vanish(app: Any, path: str, method: str, headers: dict[str, str]) -> int:
    """Drives the ASGI app by hand: headers, then a disconnect instead of the body."""
    sent: list[dict[str, Any]] = []
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw += [(b"content-type", b"application/json"), (b"content-length", b"20")]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    [start] = [m for m in sent if m["type"] == "http.response.start"]
    return int(start["status"])


@pytest.mark.parametrize(("method", "path"), [("PATCH", "rest"), ("POST", "/graphql")])
async def test_a_vanished_client_is_a_quiet_499(
    app, org, make_assistant, stored, caplog, method, path
):
    created = await make_assistant(org)
    before = await stored(created["id"])
    target = f"/orgs/c/assistants/{created['id']}" if path == "rest" else path
    caplog.clear()
    with caplog.at_level(logging.INFO):
        status = await call_then_vanish(app, target, method, org.headers)
    assert status == 499
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    [access] = [r for r in caplog.records if r.name == "app.access"]
    assert access.status == 499
    assert await stored(created["id"]) == before
