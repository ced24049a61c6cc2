"""`make bench`: the real server against a peer, A B A B, on one core; two halves.

SQLite half: seeds data/bench/a10k.db (10,000 assistants over 100 organisations, 2 integrations
and 2 actions each) and data/bench/a200k.db (200,000), counts the SQL statements of each path
in-process, starts `python -m app serve` (one worker) and the floor (bench/floor.py) on core 0,
drives each path from wrk (or bench/load.py) on core 1 at concurrency 16 and 64, measures the
scale of data and the memory after the bounded caches are full.

PostgreSQL half: a throwaway database on the local cluster (bench/postgres.py) or
BENCH_POSTGRES_URL, migrated and seeded (one organisation, 100 assistants), PostgreSQL pinned to
core 1; the server on it and PostGraphile 4 (bench/postgraphile.py, installed into bench/peers
by npm on first use) and PostGraphile 5 (bench/postgraphile5.py, bench/peers/v5, on a pinned
Node 22 when the machine's is older) on core 0, the same paths against each one's update and
list.

Prints the tables and the targets and writes bench/results.json. A half that cannot run here
(no PostgreSQL, no node or npm) is skipped with the reason; the other still runs.

Then the attack mix (bench/attacks.py, issue 23): the second tenant's GET p50/p99 quiet and under
each attack of the issue, and the server's peak RSS; `--only attacks` runs that part alone.
Then the webhooks part (bench/webhooks.py, issue 24): deliveries per second, commit-to-receipt
p50/p99 at 100 updates/s, PATCH throughput with and without one webhook, recovery after the
receiver was down; `--only webhooks` runs that part alone.
Then the deploys part (bench/deploy.py, issue 29): three rolling restarts of two servers behind
HAProxy under load, counting failed requests and lost writes; `--only deploy` runs it alone.
Then the finding part (bench/find.py, issue 26): a filtered, sorted page of 100 of 100,000
assistants in one organisation against today's unfiltered page; `--only find` runs it alone.
Then the listeners part (bench/listeners.py, issue 29): as many SSE streams and websocket
subscriptions as one process may hold, their memory, delivery delays and the update throughput
while they listen; `--only listeners` runs it alone.
Then the audit log's part (bench/audit.py, issue 27): PATCH and updateAssistant throughput with
an audit entry per update and without; `--only audit` runs that part alone.
Then the idempotency part (bench/idempotency.py, issue 27): PATCH throughput and CPU with an
Idempotency-Key on every request and without; `--only idempotency` runs it alone.


Then bundles (bench/bundles.py, issue 26): `apply` of a 1,000-assistant bundle with 10 changes
on SQLite, and a re-apply unchanged that must write nothing; `--only bundles` runs it alone.

Environment: BENCH_SECONDS (each measurement, whole seconds, default 4), BENCH_ONLY (`sqlite`,
`pg`, or one of PARTS below: one part; `--only PART` on the command line says the same),
BENCH_LEAK_REQUESTS (default 10000; the issue's check is 100000),
BENCH_POSTGRES_URL (a postgresql+asyncpg:// database the bench may wipe), BENCH_LOADGEN=python
(the Python generator even where wrk exists), BENCH_RESEED=1 (seed the 200,000-assistant
database even if one is kept).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attacks
import audit
import bundles
import deploy
import find
import httpx
import idempotency
import listeners
import paths
import postgraphile
import postgraphile5
import postgres
import report
import webhooks
from load import Template, drive, fill, have_wrk, read_templates, write_templates
from procs import ROOT, Server

BENCH = Path(__file__).resolve().parent
DATA = ROOT / "data" / "bench"
SECONDS = max(1, round(float(os.environ.get("BENCH_SECONDS", "4"))))
LEAK_REQUESTS = int(os.environ.get("BENCH_LEAK_REQUESTS", "10000"))
ONLY = os.environ.get("BENCH_ONLY", "").strip().lower()
# unique GraphQL texts sent before the memory is read: more than the largest bounded cache of
# the server (a plan per unique text, 4,096 kept; 1,024 parsed and validated documents)
CACHE_FILL = 5_000
CONCURRENCY = (16, 64)
PG_ASSISTANTS = 100
PUBLIC_URL = "http://127.0.0.1:8000"
# the contract's per-key rate limit and GraphQL points would cap any benchmark: lifted for the
# measured server
SERVER_ENV = {
    "RATE_LIMIT": "1000000000/minute",
    "GRAPHQL_POINTS": "1000000000000",
    "PUBLIC_URL": PUBLIC_URL,
}
# (server paths, the peer paths they are compared with)
Groups = tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
GROUPS: Groups = (
    (("graphql_update", "graphql_persisted_update", "rest_update"), ("rest_update",)),
    (("rest_get", "environment_get", "environment_304"), ("rest_get",)),
    (("graphql_list", "rest_list"), ("rest_list",)),
)
RELEASED = 1000  # bench assistants published to `production` (the environment paths read them)
PG_GROUPS: Groups = (
    (
        ("graphql_update", "graphql_persisted_update", "rest_update"),
        ("postgraphile_update", "postgraphile5_update"),
    ),
    (("graphql_list", "rest_list"), ("postgraphile_list", "postgraphile5_list")),
)
STARTED = time.monotonic()


def say(message: str) -> None:
    sys.stderr.write(f"[{time.monotonic() - STARTED:5.0f} s] {message}\n")


class Target:
    """A server with the request templates of its database (files data/bench/STEM.PATH.txt)."""

    def __init__(
        self,
        name: str,
        server: Server,
        stem: str,
        meta: dict[str, Any],
        db_cpu: Callable[[], dict[int, int]] | None = None,
    ) -> None:
        self.name, self.server, self.stem, self.meta = name, server, stem, meta
        self.db_cpu = db_cpu  # CPU ticks of the database's processes so far, when known
        self.ids = DATA / f"{stem}.ids"
        self.ids.write_text("\n".join(meta["bench_assistants"]) + "\n")
        self.released_ids = DATA / f"{stem}.released.ids"  # written by `publish_production`
        self.warm: set[tuple[str, int]] = set()
        self.runs = 0

    @classmethod
    def sqlite(cls, name: str, server: Server, db: Path, fields: str = "") -> Target:
        target = cls(name, server, db.stem, json.loads(Path(f"{db}.json").read_text()))
        if fields:
            target.set_fields(fields)
        return target

    def set_fields(self, fields: str) -> None:
        self.write(paths.templates(self.meta["bench_org"], fields))

    def write(self, templates: dict[str, list[Template]]) -> None:
        for path, some in templates.items():
            write_templates(self.templates(path), some)

    def templates(self, path: str) -> Path:
        return DATA / f"{self.stem}.{path}.txt"

    def env(self, path: str) -> dict[str, str]:
        self.runs += 1
        environment = path.startswith("environment_")
        env = {
            "BENCH_TEMPLATES": str(self.templates(path)),
            "BENCH_IDS": str(self.released_ids if environment else self.ids),
            "BENCH_KEY": self.meta["bench_key"],
            "BENCH_SALT": f"{self.name}{self.runs}x{int(time.time())}",
        }
        if path == "environment_304":
            env["BENCH_IF_NONE_MATCH"] = '"1"'
        return env

    def publish_production(self, count: int = RELEASED, again: bool = True) -> None:
        """Release 1 of the first `count` bench assistants, in `production` (not `again`: left
        as it is when an earlier run published it, as bench/quick.py does on a kept file)."""
        headers = {"Authorization": f"Bearer {self.meta['bench_key']}"}
        released = self.meta["bench_assistants"][:count]
        with httpx.Client(base_url=self.server.url, headers=headers, timeout=60) as client:
            for assistant_id in released:
                url = f"/orgs/{self.meta['bench_org']}/assistants/{assistant_id}/releases"
                if not again and client.get(url).json():
                    continue
                done = client.post(url, json={"environment": "production"})
                if done.status_code != 201:
                    raise RuntimeError(f"publishing {assistant_id}: {done.status_code} {done.text}")
        self.released_ids.write_text("\n".join(released) + "\n")

    def measure(self, path: str, concurrency: int, seconds: int) -> dict[str, Any]:
        if (path, concurrency) not in self.warm and concurrency == CONCURRENCY[0]:
            self.server.settle()
            drive(self.server.url, concurrency, 1, self.env(path))
            self.warm.add((path, concurrency))
        self.server.settle()
        self.server.reset_peak()
        cpu = self.server.cpu_seconds()
        db = self.db_cpu() if self.db_cpu else {}
        result = drive(self.server.url, concurrency, seconds, self.env(path))
        cpu = self.server.cpu_seconds() - cpu
        requests = max(result.requests, 1)
        run = {
            "target": self.name,
            "path": path,
            "concurrency": concurrency,
            "requests": result.requests,
            "seconds": round(result.seconds, 3),
            "rps": round(result.rps, 1),
            "p50_ms": round(result.p50_ms, 2),
            "p99_ms": round(result.p99_ms, 2),
            "cpu_ms_per_request": round(1000 * cpu / requests, 3),
            "peak_rss_mb": round(self.server.memory_kb("VmHWM") / 1024, 1),
            "errors": result.errors,
        }
        if self.db_cpu:
            db_cpu = postgres.cpu_seconds_between(db, self.db_cpu())
            run["db_cpu_ms_per_request"] = round(1000 * db_cpu / requests, 3)
        if result.sample:
            run["error_sample"] = result.sample
        say(f"{self.name:12} {path:19} c{concurrency:<3} {run['rps']:8.1f} req/s")
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
        # this checkout's app (an editable install may point at another one)
        env={**os.environ, **SERVER_ENV, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def start_app(db: Path | str, tag: str) -> Server:
    """The server on a SQLite file or on a database URL."""
    url = db if isinstance(db, str) else f"sqlite+aiosqlite:///{db}"
    env = {**SERVER_ENV, "DATABASE_URL": url}
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
    method, url, body = read_templates(str(target.templates(path)))[0]
    url, content = fill(url, body, target.meta["bench_assistants"][0], "check", 1)
    headers = {"Authorization": f"Bearer {target.meta['bench_key']}"}
    headers["Content-Type"] = "application/json"
    return httpx.request(
        method, target.server.url + url, content=content, headers=headers, timeout=60
    )


def answers(target: Target, path: str, notes: list[str], half: str) -> httpx.Response | None:
    """The response of one request of the path when it is a 200 without errors; else a note."""
    response = one_request(target, path)
    if response.status_code != 200 or b'"errors"' in response.content:
        notes.append(f"{half}{path} skipped: {response.status_code} {response.text[:300]}")
        return None
    return response


def check_paths(app: Target, floor: Target, has_list: bool, notes: list[str]) -> list[str]:
    """The paths the server answers correctly; notes say why the others are skipped and
    whether the floor's JSON has the server's keys."""
    usable = []
    answers(app, "graphql_persisted_register", notes, "")  # then the hash alone runs it
    for path in (
        "graphql_update",
        "graphql_persisted_update",
        "rest_update",
        "rest_get",
        "environment_get",
        "graphql_list",
        "rest_list",
    ):
        if path == "graphql_list" and not has_list:
            notes.append("graphql_list skipped: Query.assistants is not in the schema yet")
            continue
        response = answers(app, path, notes, "")
        if response is None:
            continue
        usable.append(path)
        if path.startswith("rest_"):
            mine, floors = response.json(), one_request(floor, path).json()
            if paths.shape(mine) != paths.shape(floors):
                notes.append(f"{path}: the floor's JSON keys differ from the server's")
    if "environment_get" in usable:
        usable.append("environment_304")  # the same read, answered 304 by its ETag
    return usable


def alternate(
    mine: Target, peers: dict[str, Target], groups: Groups, usable: list[str]
) -> list[dict[str, Any]]:
    """Per concurrency and group: the server's paths then each peer's (`peers`: the target of
    each peer path), twice (A B A B)."""
    runs = []
    for concurrency in CONCURRENCY:
        for server_paths, peer_paths in groups:
            ours = [p for p in server_paths if p in usable]
            theirs = [p for p in peer_paths if p in usable and p in peers]
            if not ours or not theirs:
                continue
            for _ in range(2):
                runs += [mine.measure(p, concurrency, SECONDS) for p in ours]
                runs += [peers[p].measure(p, concurrency, SECONDS) for p in theirs]
    return runs


def scale_runs(small: Target, big: Target) -> list[dict[str, Any]]:
    """Updates at concurrency 16 on 10,000 and on 200,000 assistants, alternated."""
    runs = []
    for _ in range(2):
        for target in (small, big):
            runs += [target.measure(p, CONCURRENCY[0], SECONDS) for p in report.SCALE_PATHS]
    return runs


def send(app: Target, path: str, count: int) -> tuple[int, int, str]:
    """At least `count` requests of a path, in runs sized by the rate so far (wrk runs for a
    time, not a number of requests), rounded down so as not to overshoot much: (requests sent,
    errors, a sample error)."""
    done, took, errors, sample, empty = 0, 0.0, 0, "", 0
    while done < count and empty < 3:  # three runs without an answer: the server is stuck
        rate = done / took if done and took else 0.0
        seconds = 2 if not rate else max(1, min(120, math.floor((count - done) / rate)))
        app.server.settle()
        result = drive(app.server.url, CONCURRENCY[0], seconds, app.env(path))
        done, took, errors = done + result.requests, took + result.seconds, errors + result.errors
        sample = sample or result.sample
        empty = 0 if result.requests else empty + 1
    return done, errors, sample


def leak(app: Target, total: int) -> dict[str, Any]:
    """RSS after a tenth of `total` requests and after all of them, unique GraphQL texts mixed
    in, once CACHE_FILL requests of unique texts have filled the bounded caches (so that
    their growth is not taken for a leak); the counts are approximate."""
    say(f"leak check: {CACHE_FILL:,} unique GraphQL texts to fill the caches first")
    warm, errors, sample = send(app, "cache_fill", CACHE_FILL)
    done, points = 0, []
    for goal in (max(total // 10, 1), total):
        sent, bad, some = send(app, "leak_mix", goal - done)
        done, errors, sample = done + sent, errors + bad, sample or some
        rss = round(app.server.memory_kb("VmRSS") / 1024, 1)
        points.append({"requests": done, "rss_mb": rss})
        say(f"leak    {done:,} requests after the warm-up: RSS {rss} MB")
    outcome: dict[str, Any] = {"warmup_requests": warm, "points": points, "errors": errors}
    outcome["ratio"] = round(points[1]["rss_mb"] / points[0]["rss_mb"], 3)
    if sample:
        outcome["error_sample"] = sample
    return outcome


def sqlite_half(notes: list[str]) -> dict[str, Any]:
    small, big = seed("a10k", 10_000), seed("a200k", 200_000, reuse=True)
    counted = statements(small)
    servers: list[Server] = []
    try:
        servers += [start_app(small, "10k"), start_floor(small)]
        fields, has_list = paths.discover(servers[0].url)
        app = Target.sqlite("server", servers[0], small, fields)
        floor = Target.sqlite("floor", servers[1], small, fields)
        app.publish_production()
        usable = check_paths(app, floor, has_list, notes)
        runs = alternate(app, {p: floor for _, g in GROUPS for p in g}, GROUPS, usable)
        servers.append(start_app(big, "200k"))
        scale = scale_runs(app, Target.sqlite("server200k", servers[-1], big, fields))
        servers.pop().stop()
        say(f"leak check: {LEAK_REQUESTS:,} requests with unique GraphQL texts mixed in")
        return {
            "runs": runs,
            "scale_runs": scale,
            "leak": leak(app, LEAK_REQUESTS),
            "statements": counted,
        }
    finally:
        for server in servers:
            server.stop()


def start_peers(db: postgres.Postgres, org: str, notes: list[str]) -> dict[str, Target]:
    """PostGraphile 4, and 5 when it could be installed, over the bench's tables: the target of
    each of their paths."""
    meta = json.loads((DATA / "pg.json").read_text())
    peers: dict[str, Target] = {}
    for module, name in ((postgraphile, "postgraphile"), (postgraphile5, "postgraphile5")):
        missing = module.ensure_installed()
        if missing:
            notes.append(f"{name} skipped: {missing}")
            say(f"{name} skipped: {missing}")
            continue
        server = module.start(db.libpq, DATA / f"{name}.log")
        peer = Target(name, server, "pg", meta, db.cpu_ticks)
        templates = module.templates(org, module.discover(server.url))
        peer.write(templates)
        peers |= {path: peer for path in templates}
    if not peers:
        raise RuntimeError("neither PostGraphile 4 nor 5 could be installed here")
    return peers


def pg_measure(db: postgres.Postgres, notes: list[str]) -> dict[str, Any]:
    say(f"PostgreSQL: seeding {db.shown} ({PG_ASSISTANTS} assistants)")
    meta = postgres.seed(db, DATA / "pg.json", PG_ASSISTANTS)
    pinned = db.pin()
    if pinned:
        notes.append(pinned)
    server: Server | None = None
    peers: dict[str, Target] = {}
    try:
        server = start_app(db.url, "pg")
        fields, has_list = paths.discover(server.url)
        org = meta["bench_org"]
        app = Target("server", server, "pg", meta, db.cpu_ticks)
        app.set_fields(fields)
        peers = start_peers(db, org, notes)
        candidates = [p for g, _ in PG_GROUPS for p in g if has_list or p != "graphql_list"]
        answers(app, "graphql_persisted_register", notes, "pg ")  # then the hash alone runs it
        usable = [p for p in candidates if answers(app, p, notes, "pg ")]
        usable += [p for p, peer in peers.items() if answers(peer, p, notes, "pg ")]
        return {
            "runs": alternate(app, peers, PG_GROUPS, usable),
            "config": {
                "postgraphile": postgraphile.installed_version(),
                "postgraphile5": postgraphile5.installed_version()
                if "postgraphile5_update" in peers
                else None,
                "postgraphile_flags": postgraphile.FLAGS,
                "database": db.shown,
                "assistants": PG_ASSISTANTS,
                "postgres_pinned": not pinned,
            },
        }
    finally:
        for running in {id(t.server): t.server for t in peers.values()}.values():
            running.stop()
        if server is not None:
            server.stop()
        db.unpin()


def pg_half(notes: list[str]) -> tuple[dict[str, Any] | None, str]:
    """(the PostgreSQL half's runs, '') or (None, why it was skipped)."""
    try:
        db = postgres.provide()
    except postgres.Unavailable as exc:
        return None, str(exc)
    try:
        return pg_measure(db, notes), ""
    except (postgres.Unavailable, RuntimeError, SystemExit) as exc:  # SystemExit: a server
        # that did not start (procs.Server.wait_ready); the SQLite half's figures are kept
        return None, str(exc)
    finally:
        db.drop()


# The parts after the two halves, in the order they run: each module's `run()` gives its
# figures (kept in results.json under its name), `render(figures)` prints them, and `main()`
# runs it alone (`--only NAME`).
PARTS: dict[str, Any] = {
    "attacks": attacks,  # issue 23: the second tenant's latency under attack, peak RSS
    "webhooks": webhooks,  # issue 24: deliveries, commit-to-receipt, PATCH cost, recovery
    "deploy": deploy,  # issue 29: rolling restarts behind HAProxy, failures and lost writes
    "find": find,  # issue 26: a filtered, sorted page of 100,000 assistants
    "listeners": listeners,  # issue 29: ten thousand SSE streams and subscriptions
    "audit": audit,  # issue 27: update throughput with an audit entry per update and without
    "idempotency": idempotency,  # issue 27: PATCH with an Idempotency-Key on each and without
    "bundles": bundles,  # issue 26: apply of a 1,000-assistant bundle, and a re-apply unchanged
}


def main() -> None:
    parser = argparse.ArgumentParser(description="make bench; see bench/README.md")
    parts = ("sqlite", "pg", *PARTS)
    parser.add_argument("--only", choices=parts, default=ONLY or None)
    only = parser.parse_args().only or ""
    if only not in ("", *parts):
        sys.exit(f"BENCH_ONLY={only!r}: use one of {', '.join(parts)} (or leave it unset for all)")
    DATA.mkdir(parents=True, exist_ok=True)
    if only in PARTS:
        PARTS[only].main()
        return
    notes: list[str] = []
    if not have_wrk():
        notes.append("wrk not found: bench/load.py generated the load (apt-get install -y wrk)")
    skipped = {"sqlite": "", "pg": ""}
    sqlite = pg = None
    if only == "pg":
        skipped["sqlite"] = "BENCH_ONLY=pg"
    else:
        sqlite = sqlite_half(notes)
    if only == "sqlite":
        skipped["pg"] = "BENCH_ONLY=sqlite"
    else:
        pg, why = pg_half(notes)
        if pg is None:
            skipped["pg"] = why
            notes.append(f"PostgreSQL half skipped: {why}")
            say(f"PostgreSQL half skipped: {why}")
    config = {
        "seconds_per_run": SECONDS,
        "concurrency": list(CONCURRENCY),
        "load_generator": "wrk" if have_wrk() else "bench/load.py",
        "cpus": os.cpu_count(),
        "only": only or "both",
        "leak_requests": LEAK_REQUESTS,
        "cache_fill_requests": CACHE_FILL,
        "sqlite_synchronous": os.environ.get("SQLITE_SYNCHRONOUS", "FULL"),
    }
    extra = {} if only else {name: part.run() for name, part in PARTS.items()}
    results = report.build(config, sqlite, pg, notes)
    results["skipped"] = {half: why for half, why in skipped.items() if why}
    results |= extra
    results["elapsed_s"] = round(time.monotonic() - STARTED, 1)
    print(report.render(results, skipped))
    for name, figures in extra.items():
        print(PARTS[name].render(figures))
    (BENCH / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    say(f"done; results in {BENCH / 'results.json'}")


if __name__ == "__main__":
    main()
