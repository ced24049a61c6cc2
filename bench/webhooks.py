"""The webhooks part of `make bench` (issue 24): the real server and a real receiver on loopback.

`python bench/webhooks.py` (or `python bench/run.py --only webhooks`) runs this part alone, in
about two minutes. For each database (SQLite, then PostgreSQL when a local cluster or
BENCH_POSTGRES_URL is there) it starts `python -m app serve` (one worker, pinned to core 0 like
the rest of the bench) with WEBHOOKS_ALLOW_HTTP=true, WEBHOOKS_ALLOW_PRIVATE=true and a short
WEBHOOK_RETRY_SCHEDULE, makes one organisation with 10 assistants and one webhook (every event
type) to a threaded HTTP receiver in this process (ThreadingHTTPServer, answers 204), then:

- PATCH throughput (wrk or bench/load.py, concurrency 16, on core 1) with the webhook disabled
  and enabled, A B A B (a disabled webhook costs the write path nothing, docs/webhooks.md);
- deliveries per second: a burst of BURST changes sent as fast as 16 clients can, then the time
  until the receiver has every one;
- commit-to-receipt latency at a steady 100 updates per second: the receipt time minus the time
  the PATCH's answer arrived (after its commit), matched by (assistant, the unique name the
  PATCH set);
- recovery: the receiver is stopped (connections refused), changes are made, and after
  DOWN seconds it listens again; every change must arrive within one retry interval (the
  schedule's delay plus its 20 % jitter) of that.

Environment: BENCH_WEBHOOK_DOWN_SECONDS (default 20; the issue's check is 60),
BENCH_WEBHOOK_SECONDS (each throughput run, default 4), BENCH_POSTGRES_URL (see bench/postgres.py).
Targets: p50 <= 50 ms and p99 <= 250 ms at 100 updates/s on PostgreSQL; the webhook costs at
most 10 % of the update throughput; recovery within one retry interval.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import postgres
from load import Template, drive, have_wrk, write_templates
from procs import ROOT, Server, free_port

BENCH = Path(__file__).resolve().parent
DATA = ROOT / "data" / "bench"
DOWN_SECONDS = float(os.environ.get("BENCH_WEBHOOK_DOWN_SECONDS", "20"))
SECONDS = max(1, round(float(os.environ.get("BENCH_WEBHOOK_SECONDS", "4"))))
RETRY_DELAY = 5.0
# enough retries to outlast the receiver's down time (with 7, a change made early in a 60 s
# outage would have spent them all, and be `failed`, before the receiver came back)
RETRY_SCHEDULE = ",".join([f"{RETRY_DELAY:g}"] * max(7, int(DOWN_SECONDS // RETRY_DELAY) + 4))
RETRY_INTERVAL = RETRY_DELAY * 1.2  # the delay with its largest jitter
ASSISTANTS = 10
BURST = 500
BURST_WAIT = 30.0  # seconds the burst's deliveries are waited for
RATE = 100  # updates per second
STEADY_SECONDS = 10
CONCURRENCY = 16
P50_TARGET_MS, P99_TARGET_MS, COST_TARGET = 50.0, 250.0, 0.10
CI_POSTGRES = "postgresql+asyncpg://assistants_ci:assistants_ci@127.0.0.1:5432/assistants_ci"
SERVER_ENV = {
    "RATE_LIMIT": "1000000000/minute",
    "GRAPHQL_POINTS": "1000000000000",
    "WEBHOOKS_ALLOW_HTTP": "true",
    "WEBHOOKS_ALLOW_PRIVATE": "true",
    "WEBHOOK_RETRY_SCHEDULE": RETRY_SCHEDULE,
}
STARTED = time.monotonic()


def say(message: str) -> None:
    sys.stderr.write(f"[{time.monotonic() - STARTED:5.0f} s] webhooks: {message}\n")


# --- the receiver ------------------------------------------------------------------------------


class Receiver:
    """A threaded HTTP server on loopback that records (assistant, the name a change set) -> receipt
    time; it keeps connections alive (HTTP/1.1), as receivers in production do.
    `stop` closes its socket (senders see connection refused) and ends each kept connection
    without an answer at its next request; `start` listens again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.lock = threading.Lock()
        self.received: dict[tuple[str, str], float] = {}
        self.posts = 0
        self.up = False
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keeps the connection, as receivers in production do

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if not receiver.up:  # stopped: a kept connection ends without an answer
                    self.close_connection = True
                    return
                now = time.monotonic()
                data = json.loads(body).get("data", {})
                with receiver.lock:
                    receiver.posts += 1
                    for change in data.get("changes") or []:
                        if change.get("path") == "name":  # each change names itself
                            key = (str(data.get("assistant_id")), str(change.get("to")))
                            receiver.received.setdefault(key, now)
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.up = True
        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.up = False
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def times(self, keys: list[tuple[str, str]]) -> list[float | None]:
        with self.lock:
            return [self.received.get(key) for key in keys]

    def wait_for(self, keys: list[tuple[str, str]], timeout: float) -> list[float | None]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.times(keys)
            if all(t is not None for t in got):
                return got
            time.sleep(0.01)
        return self.times(keys)


# --- the server and its organisation -----------------------------------------------------------


class Setup:
    def __init__(self, server: Server, receiver: Receiver, database_url: str) -> None:
        self.server, self.receiver = server, receiver
        env = {**os.environ, "DATABASE_URL": database_url}
        made = subprocess.run(
            [sys.executable, "-m", "app", "orgs", "create", "Webhooks bench"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        org = json.loads(made.stdout)
        self.org, self.key = str(org["org_id"]), str(org["api_key"])
        self.headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=server.url, headers=self.headers, timeout=60) as http:
            self.assistants = []
            for i in range(ASSISTANTS):
                done = http.post(f"/orgs/{self.org}/assistants", json={"name": f"Bench {i}"})
                done.raise_for_status()
                self.assistants.append(str(done.json()["id"]))
            done = http.post(f"/orgs/{self.org}/webhooks", json={"url": receiver.url})
            if done.status_code != 201:
                raise RuntimeError(f"making the webhook: {done.status_code} {done.text}")
            self.webhook = str(done.json()["id"])
        self.unavailable = 0  # 503 answers to `patch`, sent again

    def enable(self, enabled: bool) -> None:
        url = f"{self.server.url}/orgs/{self.org}/webhooks/{self.webhook}"
        for _ in range(100):  # a 503: SQLite busy with the deliveries' writes; again
            done = httpx.patch(url, json={"enabled": enabled}, headers=self.headers, timeout=60)
            if done.status_code != 503:
                break
            time.sleep(0.1)
        done.raise_for_status()

    async def patch(self, http: httpx.AsyncClient, assistant: str, n: int) -> tuple[str, str]:
        """One change, to the name `Hooked {n}`; (assistant, that name). A 503 (the database
        busy: SQLite's lock wait ran out) is counted and sent again after a short pause."""
        while True:
            done = await http.patch(
                f"/orgs/{self.org}/assistants/{assistant}", json={"name": f"Hooked {n}"}
            )
            if done.status_code != 503:
                break
            self.unavailable += 1
            await asyncio.sleep(0.05)
        done.raise_for_status()
        return assistant, f"Hooked {n}"


def start_server(database_url: str, tag: str) -> Server:
    env = {**SERVER_ENV, "DATABASE_URL": database_url}
    argv = [sys.executable, "-m", "app", "serve", "--port", "{port}", "--workers", "1"]
    server = Server(f"server-webhooks-{tag}", argv, env, DATA / f"server-webhooks-{tag}.log")
    server.wait_ready("/healthz")
    return server


# --- the measurements --------------------------------------------------------------------------


def throughput(setup: Setup) -> dict[str, Any]:
    """PATCH requests per second, webhook disabled then enabled, twice (A B A B)."""
    templates = DATA / "webhooks.rest_update.txt"
    one = f"/orgs/{setup.org}/assistants/@ID@"
    write_templates(templates, [Template("PATCH", one, {"name": "Bench @N@"})])
    ids = DATA / "webhooks.ids"
    ids.write_text("\n".join(setup.assistants) + "\n")
    rates: dict[str, list[float]] = {"without": [], "with": []}
    errors = 0
    for run in range(4):
        label = "with" if run % 2 else "without"
        setup.enable(label == "with")
        setup.server.settle()
        env = {
            "BENCH_TEMPLATES": str(templates),
            "BENCH_IDS": str(ids),
            "BENCH_KEY": setup.key,
            "BENCH_SALT": f"wh{run}x{int(time.time())}",
        }
        result = drive(setup.server.url, CONCURRENCY, SECONDS, env)
        rates[label].append(round(result.rps, 1))
        errors += result.errors
        say(f"PATCH {label:7} webhook: {result.rps:8.1f} req/s")
    setup.enable(True)
    without, with_ = max(rates["without"]), max(rates["with"])
    return {
        "without_rps": rates["without"],
        "with_rps": rates["with"],
        "ratio": round(with_ / without, 3) if without else None,
        "errors": errors,
    }


async def burst(setup: Setup) -> dict[str, Any]:
    """BURST changes from 16 clients at once; the time until the receiver has them all."""
    queue = list(range(BURST))
    keys: list[tuple[str, str]] = []
    started = time.monotonic()

    async def client() -> None:
        async with httpx.AsyncClient(
            base_url=setup.server.url, headers=setup.headers, timeout=60
        ) as http:
            while queue:
                n = queue.pop()
                assistant = setup.assistants[n % ASSISTANTS]
                keys.append(await setup.patch(http, assistant, 20_000 + n))  # names unused yet

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    sent = time.monotonic()
    got = await asyncio.to_thread(setup.receiver.wait_for, keys, BURST_WAIT)
    arrived = [t for t in got if t is not None]
    last = max(arrived) if len(arrived) == len(keys) else time.monotonic()
    return {
        "changes": BURST,
        "received": len(arrived),
        "patch_seconds": round(sent - started, 3),
        "last_receipt_after_s": round(last - started, 3),
        "after_last_answer_s": round(last - sent, 3),
        "deliveries_per_s": round(len(arrived) / (last - started), 1) if arrived else 0.0,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def steady(setup: Setup) -> dict[str, Any]:
    """RATE updates per second for STEADY_SECONDS (one started every 1/RATE s, whatever the
    earlier ones do); latency = receipt - the PATCH's answer."""
    answered: dict[tuple[str, str], float] = {}
    late = 0
    # no connection limit: when the server falls behind, waiting requests pile up in httpcore's
    # pool, whose every completion scans them all (the bench's client, not the server, stalled)
    async with httpx.AsyncClient(
        base_url=setup.server.url,
        headers=setup.headers,
        timeout=60,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=RATE),
    ) as http:

        async def one(n: int) -> None:
            key = await setup.patch(http, setup.assistants[n % ASSISTANTS], n)
            answered[key] = time.monotonic()

        tasks = []
        start = time.monotonic()
        for n in range(RATE * STEADY_SECONDS):
            delay = start + n / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.005:
                late += 1
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
        took = time.monotonic() - start
    keys = list(answered)
    got = await asyncio.to_thread(setup.receiver.wait_for, keys, 60.0)
    latencies = [1000 * (t - answered[k]) for k, t in zip(keys, got, strict=True) if t]
    missing = [f"{a} {name}" for (a, name), t in zip(keys, got, strict=True) if t is None]
    return {
        "updates": len(keys),
        "rate_per_s": round(len(keys) / took, 1),
        "started_late": late,
        "received": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "missing": missing[:20],
    }


async def recovery(setup: Setup) -> dict[str, Any]:
    """The receiver down for DOWN_SECONDS while changes are made; then the time until every
    one of them has arrived, from the moment it listens again."""
    receiver = setup.receiver
    receiver.stop()
    down_at = time.monotonic()
    keys = []
    async with httpx.AsyncClient(
        base_url=setup.server.url, headers=setup.headers, timeout=60
    ) as http:
        for n in range(20):  # spread over the first half of the down time
            keys.append(await setup.patch(http, setup.assistants[n % ASSISTANTS], 10_000 + n))
            await asyncio.sleep(DOWN_SECONDS / 40)
    await asyncio.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
    early = sum(1 for t in receiver.times(keys) if t is not None)
    receiver.start()
    up_at = time.monotonic()
    got = await asyncio.to_thread(receiver.wait_for, keys, RETRY_INTERVAL + 30.0)
    arrived = [t for t in got if t is not None]
    last = max(arrived) - up_at if arrived else float("nan")
    return {
        "down_seconds": DOWN_SECONDS,
        "changes": len(keys),
        "received_while_down": early,
        "received": len(arrived),
        "last_after_up_s": round(last, 2),
        "retry_interval_s": RETRY_INTERVAL,
        "ok": len(arrived) == len(keys) and last <= RETRY_INTERVAL,
    }


def measure(database_url: str, tag: str) -> dict[str, Any]:
    receiver = Receiver()
    receiver.start()
    server = start_server(database_url, tag)
    try:
        setup = Setup(server, receiver, database_url)
        # the latency first, on an empty queue; the throughput runs last (they leave thousands
        # of deliveries queued behind them)
        say(f"{tag}: {RATE} updates/s for {STEADY_SECONDS} s")
        result: dict[str, Any] = {"steady": asyncio.run(steady(setup))}
        say(f"{tag}: receiver down for {DOWN_SECONDS:g} s")
        result["recovery"] = asyncio.run(recovery(setup))
        say(f"{tag}: a burst of {BURST} changes")
        result["burst"] = asyncio.run(burst(setup))
        say(f"{tag}: PATCH throughput with and without the webhook")
        result["throughput"] = throughput(setup)
        result["patch_503_retried"] = setup.unavailable
        return result
    finally:
        server.stop()
        receiver.stop()


def sqlite() -> dict[str, Any]:
    db = DATA / "webhooks.db"
    for stale in DATA.glob(f"{db.name}*"):
        stale.unlink()
    return measure(f"sqlite+aiosqlite:///{db}", "sqlite")


def throwaway_ci_database(prefix: str = "whbench") -> tuple[str, str, str]:
    """A fresh database made by a role that may CREATEDB (TEST_POSTGRES_URL or the CI role):
    (its URL, the admin URL, its name)."""
    import asyncpg

    admin = os.environ.get("TEST_POSTGRES_URL") or CI_POSTGRES
    name = f"{prefix}_{os.getpid()}"

    async def create() -> None:
        conn = await asyncpg.connect(admin.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncpg.PostgresError) as exc:
        raise postgres.Unavailable(f"no PostgreSQL: {exc}") from None
    return admin.rsplit("/", 1)[0] + f"/{name}", admin, name


def drop_ci_database(admin: str, name: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(admin.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()

    asyncio.run(drop())


def on_own_database(
    measure: Callable[[str, str], dict[str, Any]],
) -> tuple[dict[str, Any] | None, str]:
    """(`measure(url, "pg")` on a PostgreSQL database of its own, '') or (None, why not): a
    throwaway database made through the CI cluster's role that may CREATEDB first (the
    PostgreSQL half's `assistants_bench` may be another bench's at the same moment), else the
    PostgreSQL half's (bench/postgres.py). BENCH_POSTGRES_URL, when set, is used first. Shared by
    the webhooks, audit and idempotency parts."""
    try:
        if os.environ.get("BENCH_POSTGRES_URL"):  # the operator's choice comes first
            raise postgres.Unavailable("BENCH_POSTGRES_URL is set")
        url, admin, name = throwaway_ci_database()
    except postgres.Unavailable as first:
        try:
            db = postgres.provide()
        except postgres.Unavailable as second:
            return None, f"{first}; {second}"
        try:
            return measure(db.url, "pg"), ""
        finally:
            db.drop()
    try:
        return measure(url, "pg"), ""
    finally:
        drop_ci_database(admin, name)


def postgresql() -> tuple[dict[str, Any] | None, str]:
    """The webhooks figures on PostgreSQL (see `on_own_database`)."""
    return on_own_database(measure)


def run() -> dict[str, Any]:
    DATA.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "config": {
            "retry_schedule": RETRY_SCHEDULE,
            "down_seconds": DOWN_SECONDS,
            "throughput_seconds": SECONDS,
            "concurrency": CONCURRENCY,
            "load_generator": "wrk" if have_wrk() else "bench/load.py",
            "workers": 1,
        },
        "sqlite": sqlite(),
    }
    pg, why = postgresql()
    if pg is None:
        results["skipped"] = {"pg": why}
        say(f"PostgreSQL skipped: {why}")
    else:
        results["pg"] = pg
    return results


def render(results: dict[str, Any]) -> str:
    parts = [("SQLite", results["sqlite"])]
    if "pg" in results:
        parts.append(("PostgreSQL", results["pg"]))
    down = results["config"]["down_seconds"]
    lines = [
        "",
        "Webhooks (issue 24): one worker, one webhook, a receiver on loopback",
        "",
        "| database   | PATCH/s without | PATCH/s with | ratio | deliveries/s | "
        "p50 ms @100/s | p99 ms @100/s | recovery s |",
        "| ---------- | --------------: | -----------: | ----: | -----------: | "
        "------------: | ------------: | ---------: |",
    ]
    for name, r in parts:
        t, b, s, rec = r["throughput"], r["burst"], r["steady"], r["recovery"]
        lines.append(
            f"| {name:10} | {max(t['without_rps']):15.1f} | {max(t['with_rps']):12.1f} | "
            f"{t['ratio'] or 0.0:5.3f} | {b['deliveries_per_s']:12.1f} | {s['p50_ms']:13.1f} | "
            f"{s['p99_ms']:13.1f} | {rec['last_after_up_s']:10.2f} |"
        )
    for name, r in parts:
        b = r["burst"]
        lines.append(
            f"{name}: burst of {b['changes']} changes in {b['patch_seconds']:.2f} s, "
            f"{b['received']} received within {b['last_receipt_after_s']:.2f} s of its start"
        )
    if "skipped" in results:
        lines.append(f"\nPostgreSQL skipped: {results['skipped']['pg']}")
    lines += ["", "Targets:"]

    def line(ok: bool, text: str) -> None:
        lines.append(f"- {'ok  ' if ok else 'MISS'} {text}")

    if "pg" in results:
        s = results["pg"]["steady"]
        complete = s["received"] == s["updates"]
        line(
            s["p50_ms"] <= P50_TARGET_MS and complete,
            f"PostgreSQL commit-to-receipt p50 {s['p50_ms']:.1f} ms at {s['rate_per_s']:.0f}"
            f" updates/s (at most {P50_TARGET_MS:g} ms; {s['received']}/{s['updates']} received)",
        )
        line(
            s["p99_ms"] <= P99_TARGET_MS and complete,
            f"PostgreSQL commit-to-receipt p99 {s['p99_ms']:.1f} ms (at most {P99_TARGET_MS:g} ms)",
        )
    for name, r in parts:
        t, rec = r["throughput"], r["recovery"]
        line(
            t["ratio"] is not None and t["ratio"] >= 1 - COST_TARGET,
            f"{name}: PATCH throughput with one webhook {t['ratio'] or 0.0:.3f} x without "
            f"(at least {1 - COST_TARGET:.2f})",
        )
        line(
            rec["ok"],
            f"{name}: receiver down {down:g} s, {rec['received']}/{rec['changes']} changes "
            f"arrived {rec['last_after_up_s']:.2f} s after it came back "
            f"(within one retry interval, {rec['retry_interval_s']:g} s)",
        )
    return "\n".join(lines)


def main() -> None:
    results = run()
    results["elapsed_s"] = round(time.monotonic() - STARTED, 1)
    print(render(results))
    (BENCH / "results-webhooks.json").write_text(json.dumps(results, indent=2) + "\n")
    say(f"done in {results['elapsed_s']:.0f} s; figures in {BENCH / 'results-webhooks.json'}")


if __name__ == "__main__":
    main()
