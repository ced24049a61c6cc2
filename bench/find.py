"""The finding part of `make bench` (issue 26): a filtered, sorted page of 100 of 100,000
assistants in one organisation, against today's unfiltered page.

`python bench/find.py` (or `python bench/run.py --only find`, `BENCH_ONLY=find make bench`)
runs this part alone. For each database (SQLite, then PostgreSQL when a role that may CREATEDB
or the local cluster is there, as bench/webhooks.py finds one) it seeds 100,000 assistants in
one organisation with bench/seed.py (two integrations and two actions each), varies them (four
languages, three models, one in five disabled, names and update times spread; then ANALYZE on
PostgreSQL, as autovacuum would), starts `python -m app serve` (one worker, on core 0) and
measures one request at a time (the time of a page, not the server's throughput) from wrk (or
bench/load.py) on core 1, each path in turn, twice, after a warm-up round:

- `graphql_list` and `rest_list`: today's unfiltered page of 100 (the full selection with
  `totalCount`, as the main bench sends it);
- `graphql_find` and `rest_find`: the page of 100 of the enabled English assistants, the most
  recently updated first, with the same selection (and its total);
- `graphql_search` and `rest_search`: a search for "support 1" by name (a substring: it reads
  the organisation's assistants until the page is full), for information.

The target: a filtered, sorted page takes at most 2x the time of today's page (the time of a
request at a fixed concurrency: the inverse of requests per second). Environment: BENCH_SECONDS
(each run, default 4), BENCH_RESEED=1 (seed SQLite again even if a database is kept),
BENCH_POSTGRES_URL (see bench/postgres.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import paths
import postgres
import webhooks
from load import Template, drive, have_wrk, write_templates
from procs import ROOT, Server

BENCH = Path(__file__).resolve().parent
DATA = ROOT / "data" / "bench"
ASSISTANTS = 100_000
SECONDS = max(1, round(float(os.environ.get("BENCH_SECONDS", "4"))))
CONCURRENCY = 1
TARGET = 2.0
SERVER_ENV = {"RATE_LIMIT": "1000000000/minute", "GRAPHQL_POINTS": "1000000000000"}
FIND = 'filter: {enabled: true, language: "en"}, orderBy: {field: UPDATED_AT, direction: DESC}'
SEARCH = 'filter: {search: "support 1"}, orderBy: {field: NAME}'
# (today's path, the path measured against it)
PAIRS = (
    ("graphql_list", "graphql_find"),
    ("rest_list", "rest_find"),
    ("graphql_list", "graphql_search"),
    ("rest_list", "rest_search"),
)
TARGETED = ("graphql_find", "rest_find")
# the variation: what the organisation's assistants look like (the seed makes them all alike)
VARY = """
UPDATE assistants SET
  language = CASE seq % 4 WHEN 0 THEN 'en' WHEN 1 THEN 'fr' WHEN 2 THEN 'de' ELSE 'pt-BR' END,
  model = CASE seq % 3 WHEN 0 THEN 'gpt-4o-mini' WHEN 1 THEN 'gpt-4o' ELSE 'claude' END,
  enabled = {enabled},
  name = CASE seq % 7 WHEN 0 THEN 'Support ' ELSE 'Sales ' END || ((seq * 7919) % 100000),
  updated_at = {updated}
"""
VARY_SQLITE = VARY.format(
    enabled="(seq % 5 != 0)",
    updated="strftime('%Y-%m-%d %H:%M:%f000', '2026-01-01', '+' || ((seq * 9973) % 100000) "
    "|| ' seconds')",
)
VARY_POSTGRES = VARY.format(
    enabled="(seq % 5 <> 0)",
    updated="timestamptz '2026-01-01 00:00:00+00' + ((seq * 9973) % 100000) * interval '1 second'",
)
STARTED = time.monotonic()


def say(message: str) -> None:
    sys.stderr.write(f"[find {time.monotonic() - STARTED:5.0f} s] {message}\n")


def gql_list(org: str, fields: str, arguments: str = "") -> str:
    return (
        f'query Find {{ assistants(orgId: "{org}", first: 100{arguments}) {{ totalCount '
        f"pageInfo {{ hasNextPage endCursor }} nodes {{ {fields} }} }} }}"
    )


def templates(org: str, fields: str) -> dict[str, Template]:
    base = f"/orgs/{org}/assistants?take=100"

    def graphql(arguments: str = "") -> Template:
        return Template("POST", "/graphql", {"query": gql_list(org, fields, arguments)})

    return {
        "graphql_list": graphql(),
        "graphql_find": graphql(f", {FIND}"),
        "graphql_search": graphql(f", {SEARCH}"),
        "rest_list": Template("GET", base),
        "rest_find": Template("GET", f"{base}&enabled=true&language=en&sort=-updated_at"),
        "rest_search": Template("GET", f"{base}&search=support%201&sort=name"),
    }


# --- the databases -------------------------------------------------------------------------


def fingerprint() -> str:
    digest = hashlib.sha256(VARY_SQLITE.encode() + (BENCH / "seed.py").read_bytes())
    for migration in sorted((ROOT / "migrations" / "versions").glob("*.py")):
        digest.update(migration.name.encode() + migration.read_bytes())
    return digest.hexdigest()[:16]


def seed_sqlite() -> Path:
    """data/bench/find100k.db, kept between runs of the same seed and migrations."""
    path = DATA / "find100k.db"
    meta_file = Path(f"{path}.json")
    wanted = fingerprint()
    kept = path.exists() and meta_file.exists() and not os.environ.get("BENCH_RESEED")
    if kept and json.loads(meta_file.read_text()).get("fingerprint") == wanted:
        say(f"reusing {path.name} (BENCH_RESEED=1 seeds it again)")
        return path
    say(f"seeding {path.name}: {ASSISTANTS:,} assistants in one organisation")
    seed = [sys.executable, str(BENCH / "seed.py"), str(path), "--assistants", str(ASSISTANTS)]
    subprocess.run([*seed, "--orgs", "1"], check=True, stdout=subprocess.DEVNULL)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(VARY_SQLITE)
    finally:
        db.close()
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "fingerprint": wanted}))
    return path


async def vary_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(VARY_POSTGRES)
        await conn.execute("VACUUM ANALYZE assistants")
    finally:
        await conn.close()


def seed_postgres(url: str) -> dict[str, Any]:
    say(f"seeding PostgreSQL: {ASSISTANTS:,} assistants in one organisation")
    meta_file = DATA / "find-pg.json"
    argv = [sys.executable, str(BENCH / "seed.py"), url, "--assistants", str(ASSISTANTS)]
    subprocess.run([*argv, "--orgs", "1", "--meta", str(meta_file)], check=True)
    asyncio.run(vary_postgres(url))
    meta: dict[str, Any] = json.loads(meta_file.read_text())
    return meta


# --- the measurements ----------------------------------------------------------------------


def start_server(database_url: str, tag: str) -> Server:
    env = {**SERVER_ENV, "DATABASE_URL": database_url}
    argv = [sys.executable, "-m", "app", "serve", "--port", "{port}", "--workers", "1"]
    server = Server(f"server-find-{tag}", argv, env, DATA / f"server-find-{tag}.log")
    server.wait_ready("/healthz")
    return server


def check(server: Server, key: str, template: Template) -> str:
    """Why one request of the path is not a full page of 100, or ''."""
    headers = {"Authorization": f"Bearer {key}"}
    answer = httpx.request(
        template.method, server.url + template.path, json=template.body, headers=headers, timeout=60
    )
    if answer.status_code != 200 or b'"errors"' in answer.content:
        return f"{answer.status_code} {answer.text[:300]}"
    body = answer.json()
    items = body if isinstance(body, list) else body["data"]["assistants"]["nodes"]
    return "" if len(items) == 100 else f"{len(items)} items, not 100"


def measure(database_url: str, tag: str, meta: dict[str, Any]) -> dict[str, Any]:
    server = start_server(database_url, tag)
    try:
        fields, _ = paths.discover(server.url)
        ids = DATA / f"find-{tag}.ids"
        ids.write_text("\n".join(meta["bench_assistants"][:100]) + "\n")
        made = templates(meta["bench_org"], fields)
        for path, template in made.items():
            write_templates(DATA / f"find-{tag}.{path}.txt", [template])
            wrong = check(server, meta["bench_key"], template)
            if wrong:
                raise RuntimeError(f"{path} on {tag}: {wrong}")
        runs: dict[str, list[Any]] = {path: [] for path in made}
        for n in range(3):  # the first round warms up (not counted)
            for path in made:
                server.settle()
                env = {
                    "BENCH_TEMPLATES": str(DATA / f"find-{tag}.{path}.txt"),
                    "BENCH_IDS": str(ids),
                    "BENCH_KEY": meta["bench_key"],
                    "BENCH_SALT": f"find{tag}{n}{path}",
                }
                result = drive(server.url, CONCURRENCY, 1 if n == 0 else SECONDS, env)
                if n:
                    runs[path].append(result)
                    say(f"{tag:6} {path:15} {result.rps:8.1f} req/s p50 {result.p50_ms:.1f} ms")
        return summarise(runs)
    finally:
        server.stop()


def summarise(runs: dict[str, list[Any]]) -> dict[str, Any]:
    paths_out = {}
    for path, results in runs.items():
        requests = sum(r.requests for r in results)
        seconds = sum(r.seconds for r in results)
        paths_out[path] = {
            "rps": round(requests / seconds, 1) if seconds else 0.0,
            "p50_ms": round(sum(r.p50_ms for r in results) / len(results), 2),
            "p99_ms": round(sum(r.p99_ms for r in results) / len(results), 2),
            "errors": sum(r.errors for r in results),
        }
    ratios = {}
    for today, other in PAIRS:
        theirs, ours = paths_out[today]["rps"], paths_out[other]["rps"]
        ratios[other] = round(theirs / ours, 2) if ours else None
    return {"paths": paths_out, "time_ratio": ratios}


def sqlite() -> dict[str, Any]:
    path = seed_sqlite()
    meta = json.loads(Path(f"{path}.json").read_text())
    return measure(f"sqlite+aiosqlite:///{path}", "sqlite", meta)


def postgresql() -> tuple[dict[str, Any] | None, str]:
    """(the figures on PostgreSQL, '') or (None, why not); the database as bench/webhooks.py
    finds one, dropped afterwards."""
    try:
        if os.environ.get("BENCH_POSTGRES_URL"):
            raise postgres.Unavailable("BENCH_POSTGRES_URL is set")
        url, admin, name = webhooks.throwaway_ci_database("findbench")
    except postgres.Unavailable as first:
        try:
            db = postgres.provide()
        except postgres.Unavailable as second:
            return None, f"{first}; {second}"
        try:
            return measure(db.url, "pg", seed_postgres(db.url)), ""
        finally:
            db.drop()
    try:
        return measure(url, "pg", seed_postgres(url)), ""
    finally:
        webhooks.drop_ci_database(admin, name)


def run() -> dict[str, Any]:
    DATA.mkdir(parents=True, exist_ok=True)
    config = {
        "assistants": ASSISTANTS,
        "seconds_per_run": SECONDS,
        "concurrency": CONCURRENCY,
        "load_generator": "wrk" if have_wrk() else "bench/load.py",
        "find": FIND,
        "search": SEARCH,
    }
    results: dict[str, Any] = {"config": config, "sqlite": sqlite()}
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
        f"Finding assistants (issue 26): {ASSISTANTS:,} assistants in one organisation, "
        f"one worker, concurrency {CONCURRENCY}",
        "",
        "| database   | path           | req/s   | p50 ms | p99 ms | time vs today's page |",
        "| ---------- | -------------- | ------: | -----: | -----: | -------------------: |",
    ]
    verdicts = []
    for name in ("sqlite", "pg"):
        if name not in results:
            continue
        part = results[name]
        for path, figures in part["paths"].items():
            ratio = part["time_ratio"].get(path)
            shown = "" if ratio is None else f"{ratio:.2f}x"
            lines.append(
                f"| {name:10} | {path:14} | {figures['rps']:7.1f} | {figures['p50_ms']:6.1f} "
                f"| {figures['p99_ms']:6.1f} | {shown:>20} |"
            )
        for path in TARGETED:
            ratio = part["time_ratio"][path]
            met = ratio is not None and ratio <= TARGET
            verdicts.append(
                f"- {name} {path}: {ratio}x today's page (target <= {TARGET}x): "
                f"{'met' if met else 'MISSED'}"
            )
    for name, why in results.get("skipped", {}).items():
        verdicts.append(f"- {name} skipped: {why}")
    return "\n".join([*lines, "", *verdicts])


def main() -> None:
    results = run()
    print(render(results))
    (BENCH / "results-find.json").write_text(json.dumps(results, indent=2) + "\n")
    say(f"done; results in {BENCH / 'results-find.json'}")


if __name__ == "__main__":
    main()
