"""OpenTelemetry traces: a real server started with
OTEL_EXPORTER_OTLP_ENDPOINT exports a span per request, per GraphQL operation and per SQL
statement to an OTLP/HTTP receiver run by the test, and its log lines carry the trace id;
without the variable nothing from opentelemetry is even imported."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from app.settings import Settings
from tests.helpers.factories import Org
from tests.helpers.server_process import ROOT, Server

ASSISTANT_ROUTE = "PATCH /orgs/{org_id}/assistants/{assistant_id}"
UPDATE = (
    "mutation updateAssistant($id: ID!, $name: String!) "
    '{ updateAssistant(orgId: "c", assistantId: $id, input: {name: $name}) { version } }'
)


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    service: str


class Receiver:
    """An OTLP/HTTP trace receiver on a free port: `POST /v1/traces` (protobuf)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.paths.append(self.path)
                receiver.take(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    self.spans.append(
                        Span(
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            attributes,
                            resource.get("service.name", ""),
                        )
                    )

    async def wait_for(self, name: str, seconds: float = 20.0) -> Span:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = [span for span in list(self.spans) if span.name == name]
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no span {name!r}; got {sorted({s.name for s in self.spans})}")


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()


def descendants(spans: list[Span], root: Span) -> list[Span]:
    children = {span.span_id: span for span in spans if span.trace_id == root.trace_id}
    found = []
    for span in children.values():
        parent = span.parent_id
        while parent and parent in children and parent != root.span_id:
            parent = children[parent].parent_id
        if parent == root.span_id:
            found.append(span)
    return found


async def test_spans_of_a_request_its_operation_and_its_sql_reach_the_collector(
    settings: Settings,
    tmp_path: Path,
    org: Org,
    make_assistant: Any,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assistant = await make_assistant(org)
    # only the server's environment: the test process itself never turns tracing on
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    server = Server(settings, tmp_path, workers=1).start()
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers=org.headers) as http:
            url = f"/orgs/c/assistants/{assistant['id']}"
            assert (await http.patch(url, json={"name": "over REST"})).status_code == 200
            variables = {"id": assistant["id"], "name": "over GraphQL"}
            answer = await http.post("/graphql", json={"query": UPDATE, "variables": variables})
            assert answer.json()["data"]["updateAssistant"]["version"] == 3

        rest = await receiver.wait_for(ASSISTANT_ROUTE)
        assert rest.attributes["http.route"] == "/orgs/{org_id}/assistants/{assistant_id}"
        assert rest.service == "assistants-api"
        operation = await receiver.wait_for("mutation updateAssistant")
        assert operation.attributes == {
            "graphql.operation.type": "mutation",
            "graphql.operation.name": "updateAssistant",
        }
        request = await receiver.wait_for("POST /graphql")
        assert operation.trace_id == request.trace_id
        assert operation.parent_id == request.span_id
        database = "sqlite" if settings.is_sqlite else "postgresql"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            sql = [
                s for s in descendants(receiver.spans, operation) if "db.statement" in s.attributes
            ]
            if any(s.name == "UPDATE" for s in sql):
                break
            await asyncio.sleep(0.05)
        assert {s.attributes["db.system"] for s in sql} == {database}
        assert {"SELECT", "UPDATE"} <= {s.name for s in sql}, [s.name for s in sql]
        # the revision's INSERT (on PostgreSQL its trigger sends the notification)
        assert any("INSERT INTO assistant_revisions" in s.attributes["db.statement"] for s in sql)
        rest_sql = [s for s in descendants(receiver.spans, rest) if "db.statement" in s.attributes]
        assert {"SELECT", "UPDATE"} <= {s.name for s in rest_sql}
        assert set(receiver.paths) == {"/v1/traces"}
    finally:
        server.stop()

    access = [json.loads(line) for line in server.log().splitlines() if '"app.access"' in line]
    patched = [line for line in access if line["method"] == "PATCH"]
    assert [line["trace_id"] for line in patched] == [rest.trace_id]
    assert all(len(line["span_id"]) == 16 for line in patched)
    graphql = [line for line in access if line["route"] == "/graphql"]
    assert [line["trace_id"] for line in graphql] == [request.trace_id]


UNTRACED = """
import asyncio, sys, httpx
from app.main import create_app
from app.settings import Settings

async def main() -> None:
    app = create_app(Settings(database_url=sys.argv[1], _env_file=None))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/orgs/c/assistants")).status_code == 401
            answer = await http.post("/graphql", json={"query": "{ __typename }"})
            assert answer.status_code == 200
            assert (await http.get("/metrics")).status_code == 200

asyncio.run(main())
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""


def test_without_an_endpoint_nothing_from_opentelemetry_is_imported(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", UNTRACED, settings.database_url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "trace_id" not in done.stderr
