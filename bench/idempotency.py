"""The idempotency part of `make bench` (issue 27): what an `Idempotency-Key` on every request
costs the update path.

`python bench/idempotency.py` (or `BENCH_ONLY=idempotency make bench`) runs this part alone, in
about a minute. For each database (SQLite, then PostgreSQL when a local cluster or
BENCH_POSTGRES_URL is there) it starts `python -m app serve` (one worker, pinned to core 0 like
the rest of the bench), makes one organisation with 10 assistants, then drives `PATCH` (a new
random name each time, so every request is a real update) from wrk or bench/load.py at
concurrency 16 on core 1: without the header, then with a key of its own on every request
(never a replay), A B A B A B. Prints, for each, the best requests/s and the least server CPU
per request (utime + stime of the server process over its requests: on a machine others share,
the steadier of the two), and the ratios with / without. The target: the key costs the update
path at most 10 % (CPU per request at most 1.10 times, requests/s at least 0.90 times).

Environment: BENCH_IDEMPOTENCY_SECONDS (each run, default 4), BENCH_POSTGRES_URL (see
bench/postgres.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
from load import Template, drive, have_wrk, write_templates
from procs import ROOT, Server
from webhooks import on_own_database

DATA = ROOT / "data" / "bench"
SECONDS = max(1, round(float(os.environ.get("BENCH_IDEMPOTENCY_SECONDS", "4"))))
ASSISTANTS = 10
CONCURRENCY = 16
RUNS = 10  # without, with, in turn
COST_TARGET = 0.10
SERVER_ENV = {"RATE_LIMIT": "1000000000/minute", "GRAPHQL_POINTS": "1000000000000"}
STARTED = time.monotonic()


def say(message: str) -> None:
    sys.stderr.write(f"[{time.monotonic() - STARTED:5.0f} s] idempotency: {message}\n")


def organisation(server: Server, database_url: str) -> tuple[str, list[str]]:
    """A new organisation's API key and its ASSISTANTS assistants' ids."""
    made = subprocess.run(
        [sys.executable, "-m", "app", "orgs", "create", "Idempotency bench"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=True,
    )
    key = str(json.loads(made.stdout)["api_key"])
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        ids = []
        for i in range(ASSISTANTS):
            done = http.post("/orgs/c/assistants", json={"name": f"Bench {i}"})
            done.raise_for_status()
            ids.append(str(done.json()["id"]))
    return key, ids


def measure(database_url: str, tag: str) -> dict[str, Any]:
    env = {**SERVER_ENV, "DATABASE_URL": database_url}
    argv = [sys.executable, "-m", "app", "serve", "--port", "{port}", "--workers", "1"]
    server = Server(f"server-idempotency-{tag}", argv, env, DATA / f"server-idem-{tag}.log")
    server.wait_ready("/healthz")
    try:
        key, ids = organisation(server, database_url)
        templates, id_file = DATA / "idempotency.rest_update.txt", DATA / "idempotency.ids"
        patch = Template("PATCH", "/orgs/c/assistants/@ID@", {"name": "B @N@"})
        write_templates(templates, [patch])
        id_file.write_text("\n".join(ids) + "\n")
        rates: dict[str, list[float]] = {"without": [], "with": []}
        cpu: dict[str, list[float]] = {"without": [], "with": []}  # µs of server CPU a request
        errors = 0
        for run in range(RUNS):
            label = "with" if run % 2 else "without"
            server.settle()
            load_env = {
                "BENCH_TEMPLATES": str(templates),
                "BENCH_IDS": str(id_file),
                "BENCH_KEY": key,
                "BENCH_SALT": f"idem{run}x{int(time.time())}",
                **({"BENCH_IDEMPOTENCY_KEY": "1"} if label == "with" else {}),
            }
            used = server.cpu_seconds()
            result = drive(server.url, CONCURRENCY, SECONDS, load_env)
            used = server.cpu_seconds() - used
            rates[label].append(round(result.rps, 1))
            cpu[label].append(round(used / max(result.requests, 1) * 1e6, 1))
            errors += result.errors
            rps, us = result.rps, cpu[label][-1]
            say(f"{tag}: PATCH {label:7} key: {rps:8.1f} req/s, {us:7.1f} µs CPU a request")
        without, with_ = max(rates["without"]), max(rates["with"])
        cpu_without, cpu_with = min(cpu["without"]), min(cpu["with"])
        return {
            "without_rps": rates["without"],
            "with_rps": rates["with"],
            "ratio": round(with_ / without, 3) if without else None,
            "without_cpu_us": cpu["without"],
            "with_cpu_us": cpu["with"],
            "cpu_ratio": round(cpu_with / cpu_without, 3) if cpu_without else None,
            "errors": errors,
        }
    finally:
        server.stop()


def postgresql() -> tuple[dict[str, Any] | None, str]:
    """The idempotency figures on PostgreSQL, in a database of its own (bench/webhooks.py)."""
    return on_own_database(measure)


def run() -> dict[str, Any]:
    DATA.mkdir(parents=True, exist_ok=True)
    db = DATA / "idempotency.db"
    for stale in DATA.glob(f"{db.name}*"):
        stale.unlink()
    results: dict[str, Any] = {
        "config": {
            "seconds": SECONDS,
            "concurrency": CONCURRENCY,
            "load_generator": "wrk" if have_wrk() else "bench/load.py",
            "workers": 1,
        },
        "sqlite": measure(f"sqlite+aiosqlite:///{db}", "sqlite"),
    }
    pg, why = postgresql()
    if pg is None:
        results["skipped"] = {"pg": why}
        say(f"PostgreSQL skipped: {why}")
    else:
        results["pg"] = pg
    return results


def render(results: dict[str, Any]) -> str:
    lines = [
        "",
        "Idempotency-Key on the update path (PATCH, concurrency 16, one worker; best of "
        f"{RUNS // 2} runs each)",
        "| database   | PATCH/s without | with a key | ratio | CPU µs/req without | with a key "
        "| ratio | target |",
        "| ---------- | --------------- | ---------- | ----- | ------------------ | ---------- "
        "| ----- | ------ |",
    ]
    for name, tag in (("SQLite", "sqlite"), ("PostgreSQL", "pg")):
        if tag not in results:
            continue
        t = results[tag]
        ratio, cpu_ratio = t["ratio"] or 0.0, t["cpu_ratio"] or 0.0
        verdict = "ok" if cpu_ratio <= 1 + COST_TARGET else "MISSED"
        lines.append(
            f"| {name:10} | {max(t['without_rps']):15.1f} | {max(t['with_rps']):10.1f} "
            f"| {ratio:5.3f} | {min(t['without_cpu_us']):18.1f} | {min(t['with_cpu_us']):10.1f} "
            f"| {cpu_ratio:5.3f} | {verdict:6} |"
        )
    for tag, why in results.get("skipped", {}).items():
        lines.append(f"({tag} skipped: {why})")
    return "\n".join(lines)


def main() -> None:
    results = run()
    print(render(results))
    (DATA / "idempotency.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
