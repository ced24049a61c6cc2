"""`make bench`: the real server against the floor (bench/floor.py), A B A B, on one core.

Seeds data/bench/a10k.db (10,000 assistants over 100 organisations, 2 integrations and 2 actions
each) and data/bench/a200k.db (200,000), counts the SQL statements of each path in-process,
starts `python -m app serve` (one worker) and the floor on core 0, drives each path from wrk (or
bench/load.py) on core 1 at concurrency 16 and 64, measures the scale of data and the memory
after many unique GraphQL texts, prints the table and writes bench/results.json.

Environment: BENCH_SECONDS (each measurement, whole seconds, default 4), BENCH_LEAK_REQUESTS
(default 5000; the issue's check is 100000), BENCH_LOADGEN=python (the Python generator even
where wrk exists), BENCH_RESEED=1 (seed the 200,000-assistant database even if one is kept).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import paths
import report
from load import drive, fill, have_wrk, read_templates, write_templates
from procs import ROOT, Server

BENCH = Path(__file__).resolve().parent
DATA = ROOT / "data" / "bench"
SECONDS = max(1, round(float(os.environ.get("BENCH_SECONDS", "4"))))
LEAK_REQUESTS = int(os.environ.get("BENCH_LEAK_REQUESTS", "5000"))
CONCURRENCY = (16, 64)
PUBLIC_URL = "http://127.0.0.1:8000"
# the contract's per-key rate limit would cap any benchmark: lifted for the measured server
SERVER_ENV = {"RATE_LIMIT": "1000000000/minute", "PUBLIC_URL": PUBLIC_URL}
# (server paths, the floor path they are compared with)
GROUPS = (
    (("graphql_update", "rest_update"), "rest_update"),
    (("rest_get",), "rest_get"),
    (("graphql_list", "rest_list"), "rest_list"),
)
STARTED = time.monotonic()


def say(message: str) -> None:
    sys.stderr.write(f"[{time.monotonic() - STARTED:5.0f} s] {message}\n")


class Target:
    """A server with the templates of its database."""

    def __init__(self, name: str, server: Server, db: Path, fields: str = "") -> None:
        self.name, self.server, self.db = name, server, db
        self.meta = json.loads(Path(f"{db}.json").read_text())
        self.ids = DATA / f"{db.stem}.ids"
        self.ids.write_text("\n".join(self.meta["bench_assistants"]) + "\n")
        self.warm: set[tuple[str, int]] = set()
        self.runs = 0
        if fields:
            self.set_fields(fields)

    def set_fields(self, fields: str) -> None:
        for path, templates in paths.templates(self.meta["bench_org"], fields).items():
            write_templates(DATA / f"{self.db.stem}.{path}.txt", templates)

    def env(self, path: str) -> dict[str, str]:
        self.runs += 1
        return {
            "BENCH_TEMPLATES": str(DATA / f"{self.db.stem}.{path}.txt"),
            "BENCH_IDS": str(self.ids),
            "BENCH_KEY": self.meta["bench_key"],
            "BENCH_SALT": f"{self.name}{self.runs}x{int(time.time())}",
        }

    def measure(self, path: str, concurrency: int, seconds: int) -> dict[str, Any]:
        if (path, concurrency) not in self.warm and concurrency == CONCURRENCY[0]:
            self.server.settle()
            drive(self.server.url, concurrency, 1, self.env(path))
            self.warm.add((path, concurrency))
        self.server.settle()
        self.server.reset_peak()
        cpu = self.server.cpu_seconds()
        result = drive(self.server.url, concurrency, seconds, self.env(path))
        cpu = self.server.cpu_seconds() - cpu
        run = {
            "target": self.name,
            "path": path,
            "concurrency": concurrency,
            "requests": result.requests,
            "seconds": round(result.seconds, 3),
            "rps": round(result.rps, 1),
            "p50_ms": round(result.p50_ms, 2),
            "p99_ms": round(result.p99_ms, 2),
            "cpu_ms_per_request": round(1000 * cpu / max(result.requests, 1), 3),
            "peak_rss_mb": round(self.server.memory_kb("VmHWM") / 1024, 1),
            "errors": result.errors,
        }
        if result.sample:
            run["error_sample"] = result.sample
        say(f"{self.name:7} {path:15} c{concurrency:<3} {run['rps']:8.1f} req/s")
        return run


def fingerprint(assistants: int) -> str:
    """Changes with the seed script, the migrations and the size."""
    digest = hashlib.sha256(f"{assistants}".encode() + (BENCH / "seed.py").read_bytes())
    for migration in sorted((ROOT / "migrations" / "versions").glob("*.py")):
        digest.update(migration.name.encode() + migration.read_bytes())
    return digest.hexdigest()[:16]


def seed(name: str, assistants: int, reuse: bool = False) -> Path:
    """A fresh database; with `reuse`, one left by an earlier run of the same seed and
    migrations is kept (BENCH_RESEED=1 refuses it)."""
    path = DATA / f"{name}.db"
    meta_file = Path(f"{path}.json")
    wanted = fingerprint(assistants)
    kept = reuse and path.exists() and meta_file.exists() and not os.environ.get("BENCH_RESEED")
    if kept and json.loads(meta_file.read_text()).get("fingerprint") == wanted:
        say(f"reusing {path.name} ({assistants:,} assistants; BENCH_RESEED=1 reseeds)")
        return path
    say(f"seeding {path.name} ({assistants:,} assistants)")
    script = str(BENCH / "seed.py")
    subprocess.run([sys.executable, script, str(path), "--assistants", str(assistants)], check=True)
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "fingerprint": wanted}))
    return path


def statements(db: Path) -> dict[str, Any]:
    say("counting SQL statements per request (in-process)")
    out = subprocess.run(
        [sys.executable, str(BENCH / "statements.py"), str(db)],
        env={**os.environ, **SERVER_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def start_app(db: Path, tag: str) -> Server:
    env = {**SERVER_ENV, "DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    argv = [sys.executable, "-m", "app", "serve", "--port", "{port}", "--workers", "1"]
    server = Server(f"server-{tag}", argv, env, DATA / f"server-{tag}.log")
    server.wait_ready("/healthz")
    return server


def start_floor(db: Path) -> Server:
    env = {"DATABASE": str(db), "PUBLIC_URL": PUBLIC_URL}
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH), "floor:app"]
    argv += ["--port", "{port}", "--no-access-log", "--log-level", "warning"]
    server = Server("floor", argv, env, DATA / "floor.log")
    server.wait_ready("/orgs/c/assistants/none")
    return server


def one_request(target: Target, path: str) -> httpx.Response:
    """The first template of a path, filled as the generators fill it, sent once."""
    method, url, body = read_templates(str(DATA / f"{target.db.stem}.{path}.txt"))[0]
    url, content = fill(url, body, target.meta["bench_assistants"][0], "check", 1)
    headers = {"Authorization": f"Bearer {target.meta['bench_key']}"}
    headers["Content-Type"] = "application/json"
    return httpx.request(
        method, target.server.url + url, content=content, headers=headers, timeout=60
    )


def check_paths(app: Target, floor: Target, has_list: bool, notes: list[str]) -> list[str]:
    """The paths the server answers correctly; notes say why the others are skipped and
    whether the floor's JSON has the server's keys."""
    usable = []
    for path in ("graphql_update", "rest_update", "rest_get", "graphql_list", "rest_list"):
        if path == "graphql_list" and not has_list:
            notes.append("graphql_list skipped: Query.assistants is not in the schema yet")
            continue
        response = one_request(app, path)
        if response.status_code != 200 or b'"errors"' in response.content:
            notes.append(f"{path} skipped: {response.status_code} {response.text[:300]}")
            continue
        usable.append(path)
        if path.startswith("rest_"):
            mine, floors = response.json(), one_request(floor, path).json()
            if paths.shape(mine) != paths.shape(floors):
                notes.append(f"{path}: the floor's JSON keys differ from the server's")
    return usable


def main_runs(app: Target, floor: Target, usable: list[str]) -> list[dict[str, Any]]:
    """Per concurrency and group: server paths then the floor, twice (A B A B)."""
    runs = []
    for concurrency in CONCURRENCY:
        for server_paths, floor_path in GROUPS:
            mine = [p for p in server_paths if p in usable]
            if not mine:
                continue
            for _ in range(2):
                runs += [app.measure(p, concurrency, SECONDS) for p in mine]
                runs.append(floor.measure(floor_path, concurrency, SECONDS))
    return runs


def scale_runs(small: Target, big: Target) -> list[dict[str, Any]]:
    """Updates at concurrency 16 on 10,000 and on 200,000 assistants, alternated."""
    runs = []
    for _ in range(2):
        for target in (small, big):
            runs += [target.measure(p, CONCURRENCY[0], SECONDS) for p in report.SCALE_PATHS]
    return runs


def leak(app: Target, total: int) -> dict[str, Any]:
    """RSS after a tenth of `total` requests and after all of them, unique GraphQL texts mixed
    in (runs of about the time the rest needs, so the counts are approximate)."""
    done, rate, errors, points, sample = 0, 0.0, 0, [], ""
    for goal in (max(total // 10, 1), total):
        while done < goal:
            seconds = 2 if not rate else max(1, min(120, math.ceil((goal - done) / rate)))
            app.server.settle()
            result = drive(app.server.url, CONCURRENCY[0], seconds, app.env("leak_mix"))
            done, errors, rate = done + result.requests, errors + result.errors, result.rps or 1.0
            sample = sample or result.sample
        rss = round(app.server.memory_kb("VmRSS") / 1024, 1)
        points.append({"requests": done, "rss_mb": rss})
        say(f"leak    {done:,} requests: RSS {rss} MB")
    outcome: dict[str, Any] = {"points": points, "errors": errors}
    outcome["ratio"] = round(points[1]["rss_mb"] / points[0]["rss_mb"], 3)
    if sample:
        outcome["error_sample"] = sample
    return outcome


def measure_all(small: Path, big: Path, notes: list[str]) -> dict[str, Any]:
    servers: list[Server] = []
    try:
        servers += [start_app(small, "10k"), start_floor(small)]
        fields, has_list = paths.discover(servers[0].url)
        app = Target("server", servers[0], small, fields)
        floor = Target("floor", servers[1], small, fields)
        usable = check_paths(app, floor, has_list, notes)
        runs = main_runs(app, floor, usable)
        servers.append(start_app(big, "200k"))
        scale = scale_runs(app, Target("server200k", servers[-1], big, fields))
        servers.pop().stop()
        say(f"leak check: {LEAK_REQUESTS:,} requests with unique GraphQL texts")
        return {"runs": runs, "scale_runs": scale, "leak": leak(app, LEAK_REQUESTS)}
    finally:
        for server in servers:
            server.stop()


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if not have_wrk():
        notes.append("wrk not found: bench/load.py generated the load (apt-get install -y wrk)")
    small, big = seed("a10k", 10_000), seed("a200k", 200_000, reuse=True)
    counted = statements(small)
    measured = measure_all(small, big, notes)
    config = {
        "seconds_per_run": SECONDS,
        "concurrency": list(CONCURRENCY),
        "load_generator": "wrk" if have_wrk() else "bench/load.py",
        "cpus": os.cpu_count(),
        "leak_requests": LEAK_REQUESTS,
        "sqlite_synchronous": os.environ.get("SQLITE_SYNCHRONOUS", "FULL"),
    }
    results = report.build(config, measured, counted, notes)
    results["elapsed_s"] = round(time.monotonic() - STARTED, 1)
    print(report.render(results))
    (BENCH / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    say(f"done; results in {BENCH / 'results.json'}")


if __name__ == "__main__":
    main()
