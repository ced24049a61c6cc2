"""The audit log's part of `make bench` (issue 27): what writing an audit entry costs the
update path, `PATCH` and GraphQL `updateAssistant`.

`python bench/audit.py` (or `python bench/run.py --only audit`) runs it alone in about a
minute. For each database (SQLite, then PostgreSQL when a local cluster or BENCH_POSTGRES_URL is
there) it makes one organisation with 10 assistants and measures, at concurrency 16 (wrk or
bench/load.py on core 1, the server alone on core 0, one worker), the requests per second of
each update path on two servers in turn, A B A B: `python -m app serve` as it is (an entry per
update, in the update's transaction) and `bench/audit_off.py serve`, the same server with
`record_audit` made a no-op, BENCH_AUDIT_PAIRS times each. The ratio is the best run with over
the best run without, and the CPU ratio the server's least CPU time per request without over
the least with (what the entry costs the server, less sensitive to a busy machine than
requests/s); the target is at least 0.95 (the audit log costs the update path at most 5 %).

Environment: BENCH_AUDIT_SECONDS (each run, default 4), BENCH_AUDIT_PAIRS (default 3),
BENCH_POSTGRES_URL (bench/postgres.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from load import Template, drive, have_wrk, write_templates
from procs import ROOT, Server
from webhooks import on_own_database

BENCH = Path(__file__).resolve().parent
DATA = ROOT / "data" / "bench"
SECONDS = max(1, round(float(os.environ.get("BENCH_AUDIT_SECONDS", "4"))))
RUNS = max(2, 2 * round(float(os.environ.get("BENCH_AUDIT_PAIRS", "3"))))
ASSISTANTS = 10
CONCURRENCY = 16
TARGET = 0.95
SERVER_ENV = {"RATE_LIMIT": "1000000000/minute", "GRAPHQL_POINTS": "1000000000000"}
UPDATE = (
    'mutation($id: ID!, $name: String!) { updateAssistant(orgId: "c", assistantId: $id, '
    "input: {name: $name}) { id name version } }"
)
STARTED = time.monotonic()


def say(message: str) -> None:
    sys.stderr.write(f"[{time.monotonic() - STARTED:5.0f} s] audit: {message}\n")


def start(database_url: str, tag: str, audit: bool) -> Server:
    program = ["-m", "app"] if audit else [str(BENCH / "audit_off.py")]
    argv = [sys.executable, *program, "serve", "--port", "{port}", "--workers", "1"]
    name = f"server-audit-{tag}-{'on' if audit else 'off'}"
    server = Server(name, argv, {**SERVER_ENV, "DATABASE_URL": database_url}, DATA / f"{name}.log")
    server.wait_ready("/healthz")
    return server


def setup(database_url: str) -> tuple[str, list[str]]:
    """One organisation (`orgs create`, once `serve` has migrated) and its assistants: (its
    key, their ids)."""
    server = start(database_url, "setup", True)
    try:
        made = subprocess.run(
            [sys.executable, "-m", "app", "orgs", "create", "Audit bench"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            check=True,
        )
        key = str(json.loads(made.stdout)["api_key"])
        with httpx.Client(base_url=server.url, timeout=60) as http:
            ids = []
            for i in range(ASSISTANTS):
                done = http.post(
                    "/orgs/c/assistants",
                    json={"name": f"Bench {i}"},
                    headers={"Authorization": f"Bearer {key}"},
                )
                done.raise_for_status()
                ids.append(str(done.json()["id"]))
    finally:
        server.stop()
    return key, ids


PATHS = {
    "rest_update": Template("PATCH", "/orgs/c/assistants/@ID@", {"name": "Bench @N@"}),
    "graphql_update": Template(
        "POST", "/graphql", {"query": UPDATE, "variables": {"id": "@ID@", "name": "Bench @N@"}}
    ),
}


def measure(database_url: str, tag: str) -> dict[str, Any]:
    key, ids = setup(database_url)
    ids_file = DATA / f"audit-{tag}.ids"
    ids_file.write_text("\n".join(ids) + "\n")
    rates: dict[str, dict[str, list[float]]] = {p: {"on": [], "off": []} for p in PATHS}
    cpu: dict[str, dict[str, list[float]]] = {p: {"on": [], "off": []} for p in PATHS}
    errors = 0
    for run in range(RUNS):
        audit = run % 2 == 1  # off, on, off, on, …
        server = start(database_url, tag, audit)
        try:
            for path, template in PATHS.items():
                templates = DATA / f"audit-{tag}-{path}.txt"
                write_templates(templates, [template])
                server.settle()
                env = {
                    "BENCH_TEMPLATES": str(templates),
                    "BENCH_IDS": str(ids_file),
                    "BENCH_KEY": key,
                    "BENCH_SALT": f"a{run}{path}{int(time.time())}",
                }
                before = server.cpu_seconds()
                result = drive(server.url, CONCURRENCY, SECONDS, env)
                used = server.cpu_seconds() - before
                label = "on" if audit else "off"
                rates[path][label].append(round(result.rps, 1))
                per_request = used / result.requests * 1e6 if result.requests else 0.0
                cpu[path][label].append(round(per_request, 1))
                errors += result.errors
                say(
                    f"{tag} {path:15} audit {label:3}: {result.rps:8.1f} req/s, "
                    f"{per_request:7.1f} us CPU/request"
                )
        finally:
            server.stop()
    figures: dict[str, Any] = {"errors": errors}
    for path, by in rates.items():
        on, off = max(by["on"]), max(by["off"])
        cpu_on, cpu_off = min(cpu[path]["on"]), min(cpu[path]["off"])
        figures[path] = {
            **by,
            "ratio": round(on / off, 3) if off else None,
            "cpu_us_on": cpu[path]["on"],
            "cpu_us_off": cpu[path]["off"],
            # the server's CPU per request without / with: the share of throughput left
            "cpu_ratio": round(cpu_off / cpu_on, 3) if cpu_on else None,
        }
    return figures


def sqlite() -> dict[str, Any]:
    db = DATA / "audit.db"
    for stale in DATA.glob(f"{db.name}*"):
        stale.unlink()
    return measure(f"sqlite+aiosqlite:///{db}", "sqlite")


def postgresql() -> tuple[dict[str, Any] | None, str]:
    """The audit log figures on PostgreSQL, in a database of its own (bench/webhooks.py)."""
    return on_own_database(measure)


def run() -> dict[str, Any]:
    DATA.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "config": {
            "seconds": SECONDS,
            "concurrency": CONCURRENCY,
            "load_generator": "wrk" if have_wrk() else "bench/load.py",
            "workers": 1,
        },
        "sqlite": sqlite(),
    }
    pg, why = postgresql()
    if pg is None:
        results["skipped"] = {"pg": why}
    else:
        results["pg"] = pg
    say("in one process: CPU per update with and without (bench/audit_inprocess.py)")
    done = subprocess.run(
        [sys.executable, str(BENCH / "audit_inprocess.py"), "--json"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode == 0:
        results["in_process_sqlite"] = json.loads(done.stdout.splitlines()[-1])
    return results


def render(results: dict[str, Any]) -> str:
    lines = [
        "",
        "Audit log: update throughput with an entry per update / without (best req/s of each),",
        "and the server's CPU per request without / with (least of each; steadier on a busy box)",
    ]
    for name, key in (("SQLite", "sqlite"), ("PostgreSQL", "pg")):
        if key not in results:
            continue
        for path in PATHS:
            f = results[key][path]
            best = max(f["ratio"] or 0.0, f["cpu_ratio"] or 0.0)
            verdict = "ok" if best >= TARGET else "MISSED"
            lines.append(
                f"  {name:10} {path:15} with {max(f['on']):8.1f}  without {max(f['off']):8.1f}"
                f"  ratio {f['ratio']}  CPU/request ratio {f['cpu_ratio']}"
                f"  (target >= {TARGET}: {verdict})"
            )
    for path, f in results.get("in_process_sqlite", {}).items():
        lines.append(
            f"  in one process (SQLite) {path:15} CPU/request with {f['cpu_us_with']} us, "
            f"without {f['cpu_us_without']} us (medians {f['median_with']} / "
            f"{f['median_without']}): without/with {f['ratio']}"
        )
    for part, why in results.get("skipped", {}).items():
        lines.append(f"  {part}: skipped ({why})")
    return "\n".join(lines)


def main() -> None:
    results = run()
    (DATA / "audit-results.json").write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write(render(results) + "\n")


if __name__ == "__main__":
    main()
