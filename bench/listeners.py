"""Ten thousand listeners (issue 29): many SSE streams and websocket subscriptions in one server
process on PostgreSQL, and what they cost.

Setup: a throwaway PostgreSQL database (bench/postgres.py) seeded with LISTENER_ORGS
organisations that are listened to, and one more (the bench's) that is not; one server process
(`python -m app serve`, one worker, pinned to the server core) with the stream caps raised to
hold them all. Client processes (this file with `--client`, on the load-generator core; each
under the per-process open-file limit) open SSE streams (`GET /orgs/{org}/events`) and
graphql-transport-ws subscriptions (`assistantChanged(orgId)`), spread evenly over the listened
organisations, a few handshakes at a time (under GRAPHQL_WS_MAX_PENDING_PER_ADDRESS).

Measured:
- update throughput (REST PATCH at c16 on the bench's organisation, whose changes go to no
  listener: what holding the listeners costs the process) before the listeners open and while
  they are open: the ratio (target >= 0.70);
- the server's RSS before and after, and per open listener (target: below 1.5 GiB in all);
- delivery: ROUNDS times, one assistant of each listened organisation is updated (one after
  another, 50 per second); for every listener and every change of its organisation, the time
  from the change's `updated_at` (the server's clock, taken in its transaction just before the
  commit: the figure errs long by that much) to its arrival at the listener; p50 and p99 over
  all of them (target: p99 <= 1 s), and any listener that missed one.

Each process may hold at most its open-file limit of sockets (`ulimit -n`; 20,000 on the
bench's machine, a hard limit), so the listeners are sized under it: BENCH_LISTENERS (default:
the limit less 500, split evenly between SSE and websockets). `BENCH_ONLY=listeners` runs this
part alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import httpx
import paths
import postgres
from load import drive, write_templates
from procs import LOADGEN_CORE, ROOT, Server, pinned

DATA = ROOT / "data" / "bench"
LISTENER_ORGS = 100
ROUNDS = 5
GAP = 0.02  # seconds between the updates of a round: 50 changes per second
CLIENTS = 4
PENDING = 20  # handshakes in flight per client process (the server allows 50 per address)
SECONDS = max(1, round(float(os.environ.get("BENCH_SECONDS", "4"))))
SUBSCRIPTION = (
    "subscription($orgId: ID!) { assistantChanged(orgId: $orgId) { assistantId version } }"
)


def listener_count() -> int:
    wanted = os.environ.get("BENCH_LISTENERS")
    if wanted:
        return int(wanted)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(soft - 500, 100)


# --- the client processes ---------------------------------------------------------------------


async def sse_listener(
    host: str, port: int, org: str, key: str, seen: dict[str, float], opened: asyncio.Event
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET /orgs/{org}/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"SSE refused: {status!r}")
    opened.set()
    while line := await reader.readline():  # chunk sizes and other fields are skipped
        if line.startswith(b"data:") and b'"assistant_id"' in line:
            event = json.loads(line[5:])
            seen[f"{event['assistant_id']}/{event['version']}"] = time.time()


async def ws_listener(
    url: str, org: str, key: str, seen: dict[str, float], opened: asyncio.Event
) -> None:
    import websockets

    protocols: Any = ["graphql-transport-ws"]
    async with websockets.connect(
        url, subprotocols=protocols, max_queue=None, open_timeout=120
    ) as socket:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {key}"}}
        await socket.send(json.dumps(init))
        ack = json.loads(await socket.recv())
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"websocket refused: {ack}")
        payload = {"query": SUBSCRIPTION, "variables": {"orgId": org}}
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        opened.set()
        async for message in socket:
            body = json.loads(message)
            if body.get("type") == "next":
                change = body["payload"]["data"]["assistantChanged"]
                seen[f"{change['assistantId']}/{change['version']}"] = time.time()


async def client(spec: dict[str, Any]) -> None:
    """Opens this client's listeners, says `ready`, and once stdin says `stop`, prints what each
    listener saw: {"opened", "failed", "seen": [{change: arrival time}, …]}."""
    host, port = spec["host"], spec["port"]
    gate = asyncio.Semaphore(PENDING)
    seens: list[dict[str, float]] = []
    failures: list[str] = []
    tasks: list[asyncio.Task[None]] = []
    opened = 0

    async def open_one(kind: str, org: str, key: str) -> None:
        """Holds one of PENDING places until the listener is open (or failed)."""
        nonlocal opened
        seen: dict[str, float] = {}
        seens.append(seen)
        ready = asyncio.Event()
        async with gate:
            if kind == "sse":
                task = asyncio.create_task(sse_listener(host, port, org, key, seen, ready))
            else:
                url = f"ws://{host}:{port}/graphql"
                task = asyncio.create_task(ws_listener(url, org, key, seen, ready))
            tasks.append(task)
            waiting = asyncio.create_task(ready.wait())
            await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
        opened += 1

    await asyncio.gather(*(open_one(k, o, key) for k, o, key in spec["listeners"]))
    await asyncio.sleep(2)  # handshakes and subscriptions settle
    failures += [repr(t.exception())[:200] for t in tasks if t.done() and t.exception()]
    print(json.dumps({"ready": opened - len(failures)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    failures += [
        repr(t.exception())[:200]
        for t in tasks
        if t.done() and t.exception() and repr(t.exception())[:200] not in failures
    ]
    outcome = {"opened": opened, "failed": failures[:20], "failures": len(failures), "seen": seens}
    print(json.dumps(outcome), flush=True)
    os._exit(0)  # the listeners' sockets close with the process


# --- the parent: server, load, rounds ----------------------------------------------------------


def start_server(url: str, listeners: int) -> Server:
    caps = str(listeners + 100)
    env = {
        "DATABASE_URL": url,
        "RATE_LIMIT": "1000000000/minute",
        "GRAPHQL_POINTS": "1000000000000",
        "EVENTS_MAX_STREAMS": caps,
        "EVENTS_MAX_STREAMS_PER_KEY": caps,
        "EVENTS_MAX_STREAMS_PER_ORG": caps,
    }
    argv = [sys.executable, "-m", "app", "serve", "--port", "{port}", "--workers", "1"]
    server = Server("server-listeners", argv, env, DATA / "server-listeners.log")
    server.wait_ready("/healthz")
    return server


def throughput(server: Server, meta: dict[str, Any]) -> float:
    """REST PATCH requests/s at c16 on the bench's organisation (no listener hears it)."""
    templates = DATA / "listeners.rest_update.txt"
    write_templates(templates, paths.templates(meta["bench_org"], "id")["rest_update"])
    ids = DATA / "listeners.ids"
    ids.write_text("\n".join(meta["bench_assistants"]) + "\n")
    env = {"BENCH_TEMPLATES": str(templates), "BENCH_IDS": str(ids), "BENCH_KEY": meta["bench_key"]}
    server.settle()
    drive(server.url, 16, 1, {**env, "BENCH_SALT": f"warm{time.time()}"})
    server.settle()
    return drive(server.url, 16, SECONDS, {**env, "BENCH_SALT": f"run{time.time()}"}).rps


def first_assistants(url: str, orgs: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    """(org id, key, the id of its first assistant) of each organisation."""
    found = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for org in orgs:
            headers = {"Authorization": f"Bearer {org['api_key']}"}
            page = http.get(f"/orgs/{org['org_id']}/assistants?take=1", headers=headers).json()
            found.append((org["org_id"], org["api_key"], page[0]["id"]))
    return found


def plan(targets: list[tuple[str, str, str]], count: int) -> list[tuple[str, str, str]]:
    """(kind, org id, key) of every listener: SSE and websocket in turn, over the orgs."""
    return [
        ("sse" if n % 2 == 0 else "ws", targets[n % len(targets)][0], targets[n % len(targets)][1])
        for n in range(count)
    ]


def open_clients(server: Server, listeners: list[tuple[str, str, str]]) -> list[Any]:
    clients = []
    for c in range(CLIENTS):
        spec = {"host": "127.0.0.1", "port": server.port, "listeners": listeners[c::CLIENTS]}
        argv = pinned(LOADGEN_CORE, [sys.executable, __file__, "--client"])
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert process.stdin is not None
        process.stdin.write(json.dumps(spec) + "\n")
        process.stdin.flush()
        clients.append(process)
    return clients


def ready(clients: list[Any]) -> int:
    return sum(json.loads(process.stdout.readline())["ready"] for process in clients)


async def update_round(
    url: str, targets: list[tuple[str, str, str]], n: int
) -> dict[str, tuple[str, float]]:
    """One assistant of each listened organisation updated, one after another (GAP apart, so
    that each change's `updated_at` is close to its commit): {change: (its org, updated_at)}."""
    changes = {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for org, key, assistant in targets:
            headers = {"Authorization": f"Bearer {key}"}
            path = f"/orgs/{org}/assistants/{assistant}"
            body = (await http.patch(path, json={"name": f"round {n}"}, headers=headers)).json()
            at = datetime.fromisoformat(body["updated_at"].replace("Z", "+00:00")).timestamp()
            changes[f"{assistant}/{body['version']}"] = (org, at)
            await asyncio.sleep(GAP)
    return changes


def collect(clients: list[Any]) -> dict[str, Any]:
    """Stops the clients; what their listeners saw, in the order of the plan."""
    outcomes = []
    for process in clients:
        process.stdin.write("stop\n")
        process.stdin.flush()
    for process in clients:
        outcomes.append(json.loads(process.stdout.readline()))
        process.wait(30)
    by_client = [o["seen"] for o in outcomes]
    seen = [by_client[n % CLIENTS][n // CLIENTS] for n in range(sum(map(len, by_client)))]
    return {
        "opened": sum(o["opened"] for o in outcomes),
        "failures": sum(o["failures"] for o in outcomes),
        "failed": [f for o in outcomes for f in o["failed"]][:10],
        "seen": seen,
    }


def delays(
    seen: list[dict[str, float]],
    listeners: list[tuple[str, str, str]],
    changes: dict[str, tuple[str, float]],
) -> tuple[list[float], int]:
    """Every (listener, change of its organisation) delay in ms, and how many were missed."""
    found, missed = [], 0
    for heard, (_, org, _) in zip(seen, listeners, strict=True):
        for change, (changed_org, at) in changes.items():
            if changed_org != org:
                continue
            if change in heard:
                found.append(1000 * (heard[change] - at))
            else:
                missed += 1
    return found, missed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else 0.0


def profiler(server: Server) -> subprocess.Popen[bytes] | None:
    """BENCH_PY_SPY=/path/to/py-spy: a flame graph of the server while the listeners are open
    (data/bench/listeners-profile.svg)."""
    spy = os.environ.get("BENCH_PY_SPY")
    if not spy:
        return None
    out = DATA / "listeners-profile.svg"
    argv = [spy, "record", "-p", str(server.pid), "-d", str(SECONDS + 3), "-o", str(out)]
    return subprocess.Popen([*argv, "--nonblocking"], stdout=subprocess.DEVNULL)


def measure(server: Server, meta: dict[str, Any], count: int) -> dict[str, Any]:
    targets = first_assistants(server.url, meta["orgs"][1 : LISTENER_ORGS + 1])
    quiet = throughput(server, meta)
    rss_quiet = server.memory_kb("VmRSS") / 1024
    listeners = plan(targets, count)
    clients = open_clients(server, listeners)
    opened = ready(clients)
    rss_open = server.memory_kb("VmRSS") / 1024
    spy = profiler(server)
    listening = throughput(server, meta)
    if spy is not None:
        spy.wait(60)
    changes: dict[str, tuple[str, float]] = {}
    for n in range(ROUNDS):
        changes |= asyncio.run(update_round(server.url, targets, n))
        time.sleep(2)
    seen = collect(clients)
    found, missed = delays(seen["seen"], listeners, changes)
    return {
        "listeners": count,
        "open": opened,
        "sse": sum(1 for kind, _, _ in listeners if kind == "sse"),
        "websockets": sum(1 for kind, _, _ in listeners if kind == "ws"),
        "failures": seen["failures"],
        "failed": seen["failed"],
        "rss_mb_quiet": round(rss_quiet, 1),
        "rss_mb_listening": round(rss_open, 1),
        "kb_per_listener": round(1024 * (rss_open - rss_quiet) / max(opened, 1), 1),
        "updates_rps_quiet": round(quiet, 1),
        "updates_rps_listening": round(listening, 1),
        "throughput_ratio": round(listening / max(quiet, 1e-9), 3),
        "deliveries": len(found),
        "missed": missed,
        "delivery_p50_ms": percentile(found, 0.50),
        "delivery_p99_ms": percentile(found, 0.99),
        "delivery_max_ms": round(max(found), 1) if found else 0.0,
        "rounds": ROUNDS,
        "orgs": len(targets),
    }


def run() -> dict[str, Any]:
    count = listener_count()
    try:
        db = postgres.provide()
    except postgres.Unavailable as exc:
        return {"skipped": str(exc)}
    try:
        meta = postgres.seed(
            db, DATA / "listeners.json", 10 * (LISTENER_ORGS + 1), LISTENER_ORGS + 1
        )
        server = start_server(db.url, count)
        try:
            return measure(server, meta, count)
        finally:
            server.stop()
    finally:
        db.drop()


def render(r: dict[str, Any]) -> str:
    lines = ["", "listeners: SSE streams and websocket subscriptions in one process (PostgreSQL)"]
    if "skipped" in r:
        return "\n".join([*lines, f"  skipped: {r['skipped']}"])
    ok = lambda good: "ok" if good else "MISS"  # noqa: E731
    lines += [
        f"  {r['open']:,} of {r['listeners']:,} open ({r['sse']:,} SSE, {r['websockets']:,} "
        f"websockets, over {r['orgs']} organisations; {r['failures']} failed)",
        f"  RSS {r['rss_mb_quiet']} MB quiet, {r['rss_mb_listening']} MB listening: "
        f"{r['kb_per_listener']} KB per listener (target < 1536 MB: "
        f"{ok(r['rss_mb_listening'] < 1536)})",
        f"  updates {r['updates_rps_quiet']} req/s quiet, {r['updates_rps_listening']} req/s "
        f"listening: x{r['throughput_ratio']} (target >= 0.70: {ok(r['throughput_ratio'] >= 0.7)})",
        f"  delivery over {r['rounds']} rounds: {r['deliveries']:,} deliveries, p50 "
        f"{r['delivery_p50_ms']} ms, p99 {r['delivery_p99_ms']} ms, max {r['delivery_max_ms']} ms,"
        f" {r['missed']} missed (target p99 <= 1000 ms, none missed: "
        f"{ok(r['delivery_p99_ms'] <= 1000 and not r['missed'])})",
    ]
    lines += [f"  failed: {f}" for f in r["failed"]]
    return "\n".join(lines)


def main() -> None:
    if "--client" in sys.argv:
        spec = json.loads(sys.stdin.readline())
        asyncio.run(client(spec))
        return
    DATA.mkdir(parents=True, exist_ok=True)
    results = run()
    print(render(results))
    (DATA / "listeners-results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
