"""GET /metrics: every series moves by exactly what the test did, labels
stay bounded, the token guards it, and with two real uvicorn workers the figures are the sum
over both; the Grafana dashboard asks only for series the server exports."""

from __future__ import annotations

import asyncio
import glob
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from app.main import create_app
from app.observability import metrics
from app.settings import Settings
from tests.helpers.event_clients import AsgiHttpStream, AsgiWebSocket, SseStream, until
from tests.helpers.factories import Org
from tests.helpers.server_process import Server

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "ops" / "grafana" / "assistants-api.json"
ASSISTANT = "/orgs/{org_id}/assistants/{assistant_id}"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The series that changed (buckets and sums of histograms left out: timing varies; the
    scrapes themselves left out too)."""
    changes = {}
    for key in before.keys() | after.keys():
        if key[0].endswith(("_bucket", "_sum")) or key[0].startswith(("process_", "python_")):
            continue
        if dict(key[1]).get("route") == "/metrics":
            continue
        delta = after.get(key, 0.0) - before.get(key, 0.0)
        if delta:
            changes[key] = delta
    return changes


def series(metric: str, /, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (metric, frozenset(labels.items()))


@pytest.fixture(autouse=True)
def fresh_operation_names() -> None:
    """Each test meets the bound of 200 operation names as a fresh process does (the names of
    the suite's other tests would otherwise have filled it): the counters stay as they are."""
    observed = metrics.configure(True)
    assert observed is not None
    observed._names.clear()
    observed._operations.clear()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings.model_copy(update={"events_poll_interval": 0.05}))
    async with application.router.lifespan_context(application):
        yield application


async def test_rest_requests_count_by_route_template_and_revisions_by_change_type(
    client: httpx.AsyncClient, org: Org
) -> None:
    before = await scrape(client)
    created = await client.post("/orgs/c/assistants", json={"name": "A"}, headers=org.headers)
    assert created.status_code == 201
    url = f"/orgs/{org.org_id}/assistants/{created.json()['id']}"
    for name in ("B", "C"):
        assert (
            await client.patch(url, json={"name": name}, headers=org.headers)
        ).status_code == 200
    bad = await client.patch(url, json={"name": 5}, headers=org.headers)
    assert bad.status_code == 400
    assert (await client.get(url, headers=org.headers)).status_code == 200
    assert (await client.delete(url, headers=org.headers)).status_code == 204
    after = await scrape(client)

    http = "http_requests_total"
    count = "http_request_duration_seconds_count"
    assert moved(before, after) == {
        series(http, method="POST", route="/orgs/{org_id}/assistants", status="201"): 1,
        series(http, method="PATCH", route=ASSISTANT, status="200"): 2,
        series(http, method="PATCH", route=ASSISTANT, status="400"): 1,
        series(http, method="GET", route=ASSISTANT, status="200"): 1,
        series(http, method="DELETE", route=ASSISTANT, status="204"): 1,
        series(count, method="POST", route="/orgs/{org_id}/assistants"): 1,
        series(count, method="PATCH", route=ASSISTANT): 3,
        series(count, method="GET", route=ASSISTANT): 1,
        series(count, method="DELETE", route=ASSISTANT): 1,
        series("revisions_written_total", change_type="created"): 1,
        series("revisions_written_total", change_type="updated"): 2,
        series("revisions_written_total", change_type="deleted"): 1,
    }
    # the histogram's buckets hold those 3 PATCH requests
    buckets = [
        after[key] - before.get(key, 0.0)
        for key in after
        if key[0] == "http_request_duration_seconds_bucket"
        and dict(key[1]) == {"method": "PATCH", "route": ASSISTANT, "le": "+Inf"}
    ]
    assert buckets == [3]


async def test_unknown_paths_and_methods_are_other(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    for _ in range(20):
        response = await client.get(f"/{uuid.uuid4().hex}/{uuid.uuid4().hex}")
        assert response.status_code == 404
    assert (await client.request("BREW", "/healthz")).status_code == 405
    after = await scrape(client)
    assert moved(before, after) == {
        series("http_requests_total", method="GET", route="other", status="404"): 20,
        series("http_request_duration_seconds_count", method="GET", route="other"): 20,
        series("http_requests_total", method="other", route="/healthz", status="405"): 1,
        series("http_request_duration_seconds_count", method="other", route="/healthz"): 1,
    }
    routes = {dict(labels).get("route") for name, labels in after if name.startswith("http_")}
    assert all(re.search(r"[0-9a-f]{32}", route or "") is None for route in routes)


GET = 'query getAssistant($id: ID!) { assistant(orgId: "c", id: $id) { id name } }'
UPDATE = (
    "mutation updateAssistant($id: ID!, $name: String!) "
    '{ updateAssistant(orgId: "c", assistantId: $id, input: {name: $name}) { version } }'
)


async def post(client: httpx.AsyncClient, org: Org, body: Any, status: int = 200) -> Any:
    response = await client.post("/graphql", json=body, headers=org.headers)
    assert response.status_code == status, response.text
    return response.json()


async def test_graphql_operations_by_outcome_and_errors_by_code(
    client: httpx.AsyncClient, org: Org, make_assistant: Any
) -> None:
    assistant = await make_assistant(org)
    before = await scrape(client)
    found = await post(client, org, {"query": GET, "variables": {"id": assistant["id"]}})
    assert "errors" not in found
    missing = await post(client, org, {"query": GET, "variables": {"id": "nope"}})
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    updated = await post(
        client, org, {"query": UPDATE, "variables": {"id": assistant["id"], "name": "N"}}
    )
    assert updated["data"]["updateAssistant"]["version"] == 2
    invalid = await post(client, org, {"query": "query broken { nothing }"})
    assert invalid["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    unparsed = await post(client, org, {"query": "query {"})
    assert unparsed["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    no_query = await post(client, org, {"variables": {}}, status=400)
    assert no_query["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    anonymous = await post(client, org, {"query": "{ __typename }"})
    assert anonymous["data"] == {"__typename": "Query"}
    after = await scrape(client)

    operations = "graphql_operations_total"
    durations = "graphql_operation_duration_seconds_count"
    changes = {k: v for k, v in moved(before, after).items() if k[0].startswith("graphql_")}
    assert changes == {
        series(operations, type="query", name="getAssistant", outcome="success"): 1,
        series(operations, type="query", name="getAssistant", outcome="error"): 1,
        series(operations, type="mutation", name="updateAssistant", outcome="success"): 1,
        series(operations, type="query", name="broken", outcome="rejected"): 1,
        series(operations, type="unknown", name="anonymous", outcome="rejected"): 1,
        series(operations, type="query", name="anonymous", outcome="success"): 1,
        series(durations, type="query", name="getAssistant"): 2,
        series(durations, type="mutation", name="updateAssistant"): 1,
        series(durations, type="query", name="broken"): 1,
        series(durations, type="unknown", name="anonymous"): 1,
        series(durations, type="query", name="anonymous"): 1,
        series("graphql_errors_total", code="NOT_FOUND"): 1,
        series("graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED"): 1,
        series("graphql_errors_total", code="GRAPHQL_PARSE_FAILED"): 1,
        series("graphql_errors_total", code="BAD_REQUEST"): 1,
    }


async def test_operation_names_beyond_200_are_other(client: httpx.AsyncClient, org: Org) -> None:
    before = await scrape(client)
    prefix = f"op{uuid.uuid4().hex[:8]}"
    for number in range(250):
        answer = await post(client, org, {"query": f"query {prefix}_{number} {{ __typename }}"})
        assert "errors" not in answer
    after = await scrape(client)
    ours = {
        dict(key[1])["name"]: delta
        for key, delta in moved(before, after).items()
        if key[0] == "graphql_operations_total"
    }
    # the first 200 distinct names under their own, the other 50 under `other`
    assert ours == {
        **{f"{prefix}_{number}": 1 for number in range(metrics.MAX_OPERATION_NAMES)},
        "other": 50,
    }
    # and a name seen before keeps its label, a new one still goes to `other`
    await post(client, org, {"query": f"query {prefix}_0 {{ __typename }}"})
    await post(client, org, {"query": f"query {prefix}_new {{ __typename }}"})
    again = await scrape(client)
    assert (
        value(
            again, "graphql_operations_total", type="query", name=f"{prefix}_0", outcome="success"
        )
        == 2
    )
    assert (
        value(
            again, "graphql_operations_total", type="query", name=f"{prefix}_new", outcome="success"
        )
        == 0
    )
    other = series("graphql_operations_total", type="query", name="other", outcome="success")
    assert again[other] - after[other] == 1


async def test_refusals_for_too_many_requests_are_counted(make_client: Any, org: Org) -> None:
    limited = await make_client(rate_limit="3/minute")
    before = await scrape(limited)
    statuses = [
        (await limited.get("/orgs/c/assistants", headers=org.headers)).status_code for _ in range(5)
    ]
    refused = await limited.post("/graphql", json={"query": "{ __typename }"}, headers=org.headers)
    assert statuses == [200, 200, 200, 429, 429]
    assert refused.status_code == 429
    after = await scrape(limited)
    changes = moved(before, after)
    assert changes[series("rate_limited_total")] == 3
    assert (
        changes[
            series(
                "http_requests_total", method="GET", route="/orgs/{org_id}/assistants", status="429"
            )
        ]
        == 2
    )
    assert (
        changes[series("http_requests_total", method="POST", route="/graphql", status="429")] == 1
    )
    assert changes[series("graphql_errors_total", code="RATE_LIMITED")] == 1


async def test_open_streams_sse_and_websocket(
    app: Starlette, client: httpx.AsyncClient, org: Org
) -> None:
    before = await scrape(client)
    assert value(before, "event_streams_open", transport="sse") == 0
    async with AsgiHttpStream(app, "/orgs/c/events", org.headers) as http:
        await SseStream(http.lines()).wait_connected()
        during = await scrape(client)
        assert value(during, "event_streams_open", transport="sse") == 1
    await until(lambda: app.state.broker.open_streams == 0)
    assert value(await scrape(client), "event_streams_open", transport="sse") == 0

    async with AsgiWebSocket(app) as socket:
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        await socket.subscribe("1", "c", None)
        await until(lambda: app.state.broker.open_streams == 1)
        during = await scrape(client)
        assert value(during, "event_streams_open", transport="websocket") == 1
        assert value(during, "event_streams_open", transport="sse") == 0
    await until(lambda: app.state.broker.open_streams == 0)
    after = await scrape(client)
    assert value(after, "event_streams_open", transport="websocket") == 0


async def test_websocket_operations_are_counted_too(
    app: Starlette, client: httpx.AsyncClient, org: Org
) -> None:
    before = await scrape(client)
    async with AsgiWebSocket(app) as socket:
        assert await socket.init(f"Bearer {org.api_key}") == {"type": "connection_ack"}
        await socket.subscribe("1", "c", None)
        await until(lambda: app.state.broker.open_streams == 1)
        await socket.subscribe("2", "c", None, query="subscription Broken { nothing }")
        refused = await socket.receive()
        assert refused["type"] == "error"
        assert refused["id"] == "2"
        await socket.send({"id": "1", "type": "complete"})
        await until(lambda: app.state.broker.open_streams == 0)
    operations = "graphql_operations_total"
    ended = series(operations, type="subscription", name="Changes", outcome="success")
    for _ in range(100):  # counted once the operation has ended (just after its stream)
        after = await scrape(client)
        if after.get(ended, 0.0) > before.get(ended, 0.0):
            break
        await asyncio.sleep(0.05)
    changes = {k: v for k, v in moved(before, after).items() if k[0].startswith("graphql_")}
    durations = "graphql_operation_duration_seconds_count"
    assert changes == {
        ended: 1,
        series(durations, type="subscription", name="Changes"): 1,
        series(operations, type="subscription", name="Broken", outcome="rejected"): 1,
        series(durations, type="subscription", name="Broken"): 1,
        series("graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED"): 1,
    }


async def test_the_metrics_token(make_client: Any, org: Org) -> None:
    guarded = await make_client(metrics_token="s3cret-scrape")
    assert (await guarded.get("/metrics")).status_code == 401
    wrong = await guarded.get("/metrics", headers={"Authorization": "Bearer s3cret-scrapf"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    # an API key is not the metrics token
    assert (await guarded.get("/metrics", headers=org.headers)).status_code == 401
    samples = await scrape(guarded, Authorization="Bearer s3cret-scrape")
    assert series("rate_limited_total") in samples
    # without a token it needs no key at all
    assert (await (await make_client()).get("/metrics")).status_code == 200


async def test_metrics_off(make_client: Any, org: Org) -> None:
    try:
        off = await make_client(metrics_enabled=False)
        assert (await off.get("/metrics")).status_code == 404
        assert metrics.active is None
        response = await off.post("/orgs/c/assistants", json={"name": "A"}, headers=org.headers)
        assert response.status_code == 201
    finally:
        metrics.configure(True)


# -- two real workers -------------------------------------------------------------------------


def metrics_dirs(temp: Path) -> set[str]:
    return set(glob.glob(str(temp / "assistants-api-metrics-*")))


def writers(directory: str) -> set[str] | None:
    """The processes with counters in a multiprocess directory (None once it is gone)."""
    if not Path(directory).exists():
        return None
    return {path.name.split("_")[1] for path in Path(directory).glob("counter_*.db")}


async def test_two_workers_sum_their_figures(
    settings: Settings, tmp_path: Path, org: Org, make_assistant: Any
) -> None:
    assistant = await make_assistant(org)
    temp = tmp_path / "tmp"  # the server's own TMPDIR: no other run's directories in it
    temp.mkdir()
    running = Server(settings, tmp_path, workers=2, env={"TMPDIR": str(temp)}).start()
    try:
        (directory,) = metrics_dirs(temp)  # `serve --workers 2` made a fresh one
        url = f"{running.base_url}/orgs/c/assistants/{assistant['id']}"

        async def patch(number: int) -> None:
            async with httpx.AsyncClient() as http:  # a new connection: either worker
                response = await http.patch(url, json={"name": f"n{number}"}, headers=org.headers)
                assert response.status_code == 200, response.text

        for number in range(30):
            await patch(number)
        assert len(writers(directory)) == 2  # both workers counted some
        scrapes = []
        for _ in range(6):
            async with httpx.AsyncClient(base_url=running.base_url) as http:
                scrapes.append(await scrape(http))
        for samples in scrapes:
            assert (
                value(samples, "http_requests_total", method="PATCH", route=ASSISTANT, status="200")
                == 30
            )
            assert value(samples, "revisions_written_total", change_type="updated") == 30
    finally:
        running.stop()
    assert writers(directory) is None  # the directory was removed on exit


# -- the dashboard ----------------------------------------------------------------------------


def expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, item in node.items():
            if key == "expr" and isinstance(item, str):
                yield item
            else:
                yield from expressions(item)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


PROMQL_WORDS = frozenset(
    {
        "sum",
        "rate",
        "irate",
        "increase",
        "by",
        "without",
        "histogram_quantile",
        "le",
        "max",
        "min",
        "avg",
        "count",
        "topk",
        "clamp_min",
        "or",
        "and",
        "on",
        "ignoring",
        "vector",
    }
)


async def test_every_dashboard_expression_names_an_exported_metric(
    client: httpx.AsyncClient,
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"]
    assert dashboard["panels"]
    exprs = list(expressions(dashboard))
    assert len(exprs) >= 6
    response = await client.get("/metrics")
    exported = set(re.findall(r"^# TYPE (\S+) (\S+)", response.text, re.M))
    names = set()
    for name, kind in exported:
        names.add(name)
        if kind == "histogram":
            names.update({f"{name}_bucket", f"{name}_count", f"{name}_sum"})
        if kind == "counter":
            names.add(f"{name}_total")
    for expr in exprs:
        without_labels = re.sub(
            r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"|\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", expr
        )
        used = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_labels)) - PROMQL_WORDS
        used = {word for word in used if not word.replace(".", "").isdigit()}
        assert used, expr
        assert used <= names, (expr, used - names)
    for wanted in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "graphql_operations_total",
        "graphql_errors_total",
        "rate_limited_total",
        "revisions_written_total",
        "event_streams_open",
        "graphql_operation_duration_seconds_bucket",
    ):
        assert any(wanted in expr for expr in exprs), wanted


# -- who may scrape without a token -----------------------------------------------------------


async def scrape_from(
    settings: Settings, client: str, headers: dict[str, str] | None = None, **overrides: Any
) -> httpx.Response:
    """GET /metrics of an app whose peer is `client` (the address the connection comes from)."""
    application = create_app(settings.model_copy(update=overrides))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(
            app=application, raise_app_exceptions=False, client=(client, 50_000)
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.get("/metrics", headers=headers)


@pytest.mark.parametrize("loopback", ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"])
async def test_without_a_token_loopback_clients_scrape(settings: Settings, loopback: str) -> None:
    response = await scrape_from(settings, loopback)
    assert response.status_code == 200, response.text
    assert "http_requests_total" in response.text


@pytest.mark.parametrize("remote", ["203.0.113.7", "10.0.0.2", "2001:db8::1", "::ffff:10.1.2.3"])
async def test_without_a_token_other_clients_are_refused(settings: Settings, remote: str) -> None:
    """403, with a body that says why and nothing of the figures (they name every tenant's
    operations)."""
    response = await scrape_from(settings, remote)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")
    assert "METRICS_TOKEN" in response.text
    assert "http_requests_total" not in response.text


async def test_a_request_forwarded_by_a_trusted_proxy_is_its_clients_not_loopback(
    settings: Settings,
) -> None:
    """The proxy on this machine (loopback) forwards a request from elsewhere: the client is
    the forwarded address, so it is refused; the proxy's own request (no forwarded address)
    and a forwarded loopback client are served; from an untrusted peer the header is ignored."""
    trusted = {"forwarded_allow_ips": "127.0.0.1"}
    forwarded = {"X-Forwarded-For": "198.51.100.4"}
    assert (await scrape_from(settings, "127.0.0.1", forwarded, **trusted)).status_code == 403
    assert (await scrape_from(settings, "127.0.0.1", None, **trusted)).status_code == 200
    local = {"X-Forwarded-For": "127.0.0.1"}
    assert (await scrape_from(settings, "127.0.0.1", local, **trusted)).status_code == 200
    spoofed = {"X-Forwarded-For": "127.0.0.1"}
    assert (await scrape_from(settings, "203.0.113.7", spoofed, **trusted)).status_code == 403


async def test_with_a_token_any_client_scrapes_with_it(settings: Settings) -> None:
    token = {"metrics_token": "s3cret-scrape"}
    bearer = {"Authorization": "Bearer s3cret-scrape"}
    assert (await scrape_from(settings, "203.0.113.7", bearer, **token)).status_code == 200
    assert (await scrape_from(settings, "203.0.113.7", None, **token)).status_code == 401
    assert (await scrape_from(settings, "127.0.0.1", None, **token)).status_code == 401
