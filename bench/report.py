"""The figures of a bench run: aggregated per path, ratios to the floor and to PostGraphile,
the printed tables and the targets."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

# SQLite half: each server path and the floor path it is compared with
FLOOR_OF = {
    "graphql_update": "rest_update",
    "graphql_persisted_update": "rest_update",
    "rest_update": "rest_update",
    "rest_get": "rest_get",
    "graphql_list": "rest_list",
    "rest_list": "rest_list",
}
# PostgreSQL half: each server path and the PostGraphile request it is compared with
PEER_OF = {
    "graphql_update": "postgraphile_update",
    "graphql_persisted_update": "postgraphile_update",
    "rest_update": "postgraphile_update",
    "graphql_list": "postgraphile_list",
    "rest_list": "postgraphile_list",
}
# issue 6: requests/s over the floor's, at concurrency 16
TARGETS = {"graphql_update": 0.40, "rest_update": 0.60, "graphql_list": 0.35, "rest_list": 0.60}
# PostgreSQL half, second peer: the same paths against PostGraphile 5's requests
PEER5_OF = {path: peer.replace("postgraphile_", "postgraphile5_") for path, peer in PEER_OF.items()}
# issue 29: requests/s over PostGraphile 5's on the same tables, at concurrency 16
PG5_TARGETS = {"graphql_update": 1.0, "rest_update": 1.25, "graphql_list": 1.0, "rest_list": 1.5}
# issue 13: requests/s over PostGraphile's on the same PostgreSQL tables, at concurrency 16
PG_TARGETS = {"graphql_update": 0.75, "rest_update": 1.25, "graphql_list": 1.0, "rest_list": 1.5}
# issue 16: updateAssistant by its hash alone (automatic persisted queries)
PG_TARGETS["graphql_persisted_update"] = 1.0
# issue 25: the runtime's read of an environment (and its 304) over the REST GET of an
# assistant, per core (server CPU per request), at concurrency 16
RELEASE_TARGETS = {"environment_get": 1.5, "environment_304": 3.0}
P99_OVER_P50 = 3.0
RSS_GROWTH = 1.2
SCALE_PATHS = ("rest_update", "graphql_update")
MAX_STATEMENTS = 5

Rows = dict[tuple[str, str, int], dict[str, Any]]


def pg_key(path: str, peer: str = "postgraphile") -> str:
    return f"pg_{path}_vs_{peer}"


def aggregate(runs: list[dict[str, Any]]) -> Rows:
    """Runs of one (target, path, concurrency) merged: requests/s over their whole time,
    the mean of their p50 and p99, CPU per request over all requests, the highest peak RSS."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["target"], run["path"], run["concurrency"])].append(run)
    merged = {}
    for key, group in groups.items():
        requests = sum(r["requests"] for r in group)
        cpu = sum(r["cpu_ms_per_request"] * r["requests"] for r in group)
        row = {
            "target": key[0],
            "path": key[1],
            "concurrency": key[2],
            "runs": len(group),
            "requests": requests,
            "rps": round(requests / max(sum(r["seconds"] for r in group), 1e-9), 1),
            "p50_ms": round(sum(r["p50_ms"] for r in group) / len(group), 2),
            "p99_ms": round(sum(r["p99_ms"] for r in group) / len(group), 2),
            "cpu_ms_per_request": round(cpu / max(requests, 1), 3),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in group),
            "errors": sum(r["errors"] for r in group),
        }
        if all("db_cpu_ms_per_request" in r for r in group):
            db = sum(r["db_cpu_ms_per_request"] * r["requests"] for r in group)
            row["db_cpu_ms_per_request"] = round(db / max(requests, 1), 3)
        merged[key] = row
    return merged


def add_ratios(rows: Rows, peer: str, peer_of: dict[str, str]) -> None:
    """Each server row's requests/s and CPU per request over those of its peer's row."""
    for (target, path, concurrency), row in rows.items():
        other = rows.get((peer, peer_of.get(path, ""), concurrency))
        if target != "server" or other is None:
            continue
        row["rps_ratio"] = round(row["rps"] / max(other["rps"], 1e-9), 3)
        row["cpu_ratio"] = round(
            row["cpu_ms_per_request"] / max(other["cpu_ms_per_request"], 1e-9), 2
        )
    for row in rows.values():
        row["p99_over_p50"] = round(row["p99_ms"] / max(row["p50_ms"], 1e-9), 2)


def scale_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rows = aggregate(runs)
    summary = {}
    for path in SCALE_PATHS:
        small = rows.get(("server", path, 16))
        big = rows.get(("server200k", path, 16))
        if small and big:
            summary[path] = {
                "p50_ms_10k": small["p50_ms"],
                "p50_ms_200k": big["p50_ms"],
                "rps_10k": small["rps"],
                "rps_200k": big["rps"],
                "ratio": round(big["p50_ms"] / max(small["p50_ms"], 1e-9), 2),
            }
    return summary


def server_ratios(rows: Rows, concurrency: int, names: dict[str, str]) -> dict[str, Any]:
    """{name: the server row's ratio} at that concurrency, for the paths measured."""
    return {
        name: rows[("server", path, concurrency)].get("rps_ratio")
        for path, name in names.items()
        if ("server", path, concurrency) in rows
    }


def spreads(rows: Rows, prefix: str) -> dict[str, float]:
    """p99/p50 of the server's paths at concurrency 64."""
    return {
        prefix + path: row["p99_over_p50"]
        for (target, path, concurrency), row in sorted(rows.items())
        if target == "server" and concurrency == 64
    }


def release_ratios(rows: Rows) -> dict[str, Any]:
    """Each environment path over the server's own `rest_get` at c16: per core (the REST GET's
    CPU per request over the path's) and in requests/s."""
    base = rows.get(("server", "rest_get", 16))
    found: dict[str, Any] = {}
    for path in RELEASE_TARGETS:
        row = rows.get(("server", path, 16))
        if base is None or row is None:
            continue
        found[path] = {
            "per_core": round(base["cpu_ms_per_request"] / max(row["cpu_ms_per_request"], 1e-9), 2),
            "rps": round(row["rps"] / max(base["rps"], 1e-9), 2),
        }
    return found


def ordered(rows: Rows) -> list[dict[str, Any]]:
    return sorted(rows.values(), key=lambda r: (r["concurrency"], r["path"], r["target"]))


def build(
    config: dict[str, Any],
    sqlite: dict[str, Any] | None,
    pg: dict[str, Any] | None,
    notes: list[str],
) -> dict[str, Any]:
    """results.json: the SQLite half at the top level (as before the PostgreSQL half), the
    PostgreSQL half under `pg`, every ratio of a target in `ratios`."""
    results: dict[str, Any] = {"config": config, "ratios": {}, "p99_over_p50_c64": {}}
    if sqlite is not None:
        rows = aggregate(sqlite["runs"])
        add_ratios(rows, "floor", FLOOR_OF)
        results["ratios"] |= server_ratios(rows, 16, {p: p for p in TARGETS})
        results["p99_over_p50_c64"] |= spreads(rows, "")
        results["releases"] = release_ratios(rows)
        counted = sqlite["statements"]
        results |= {
            "ratios_c64": server_ratios(rows, 64, {p: p for p in FLOOR_OF}),
            "statements": {k: v.get("count") for k, v in counted.items() if isinstance(v, dict)},
            "scale": scale_summary(sqlite["runs"] + sqlite["scale_runs"]),
            "leak": sqlite["leak"],
            "summary": ordered(rows),
            "statement_details": counted,
            "runs": sqlite["runs"] + sqlite["scale_runs"],
        }
    if pg is not None:
        rows = aggregate(pg["runs"])
        peer5 = {k: dict(r) for k, r in rows.items() if k[0] in ("server", "postgraphile5")}
        rows = {k: r for k, r in rows.items() if k[0] != "postgraphile5"}
        add_ratios(rows, "postgraphile", PEER_OF)
        add_ratios(peer5, "postgraphile5", PEER5_OF)
        names = {p: pg_key(p) for p in PG_TARGETS}
        names5 = {p: pg_key(p, "postgraphile5") for p in PG5_TARGETS}
        results["ratios"] |= server_ratios(rows, 16, names) | server_ratios(peer5, 16, names5)
        results["p99_over_p50_c64"] |= spreads(rows, "pg_")
        results["pg"] = {
            **pg["config"],
            "ratios_c64": server_ratios(rows, 64, names) | server_ratios(peer5, 64, names5),
            "summary": ordered(rows),
            "summary_postgraphile5": ordered(peer5),
            "runs": pg["runs"],
        }
    results["notes"] = notes
    return results


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def table(summary: list[dict[str, Any]], peer: str, db_cpu: bool = False) -> list[str]:
    width = max([7] + [len(r["target"]) for r in summary])
    db = f" {'db CPU ms/req':>13}" if db_cpu else ""
    head = (
        f"{'path':19} {'c':>3} {'target':{width}} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU ms/req':>10}{db} {'peak RSS MB':>11} {f'÷{peer} req/s':>12} "
        f"{f'÷{peer} CPU':>10} {'p99/p50':>7} {'errors':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in summary:
        ratio = f"{r['rps_ratio']:.3f}" if "rps_ratio" in r else "-"
        cpu = f"{r['cpu_ratio']:.2f}" if "cpu_ratio" in r else "-"
        spread = f"{r['p99_ms'] / r['p50_ms']:.2f}" if r["p50_ms"] else "-"
        db = f" {r.get('db_cpu_ms_per_request', 0):>13.3f}" if db_cpu else ""
        lines.append(
            f"{r['path']:19} {r['concurrency']:>3} {r['target']:{width}} {r['rps']:>8.1f} "
            f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['cpu_ms_per_request']:>10.3f}{db} "
            f"{r['peak_rss_mb']:>11.1f} {ratio:>12} {cpu:>10} {spread:>7} {r['errors']:>6}"
        )
    return lines


def target_line(name: str, goal: str, got: float | None, ok: bool, why: str = "") -> str:
    if got is None:
        return f"  {name:36} {goal:>8}  {'-':>7}  skipped{f' ({why})' if why else ''}"
    return f"  {name:36} {goal:>8}  {got:7.3f}  {verdict(ok)}"


def targets(results: dict[str, Any], skipped: dict[str, str]) -> list[str]:
    """Every target of the bench, both halves: ok, MISS, or skipped (and why)."""
    ratios, spread = results["ratios"], results["p99_over_p50_c64"]
    lines = ["", "targets:", f"  {'':36} {'goal':>8}  {'got':>7}"]
    lines.append("  SQLite, requests/s over the floor's at c16 (issue 6):")
    for path, goal in TARGETS.items():
        got = ratios.get(path)
        lines.append(
            target_line(path, f">= {goal:.2f}", got, (got or 0) >= goal, skipped["sqlite"])
        )
    lines.append("  PostgreSQL, requests/s over PostGraphile's at c16 (issue 13):")
    for path, goal in PG_TARGETS.items():
        got = ratios.get(pg_key(path))
        lines.append(
            target_line(pg_key(path), f">= {goal:.2f}", got, (got or 0) >= goal, skipped["pg"])
        )
    lines.append("  SQLite, an environment's read over the REST GET, per core at c16 (issue 25):")
    for path, goal in RELEASE_TARGETS.items():
        got = results.get("releases", {}).get(path, {}).get("per_core")
        lines.append(
            target_line(path, f">= {goal:.2f}", got, (got or 0) >= goal, skipped["sqlite"])
        )
    lines.append("  PostgreSQL, requests/s over PostGraphile 5's at c16 (issue 29):")
    for path, goal in PG5_TARGETS.items():
        name = pg_key(path, "postgraphile5")
        got = ratios.get(name)
        why = skipped["pg"] or ("" if got is not None else "PostGraphile 5 did not run")
        lines.append(target_line(name, f">= {goal:.2f}", got, (got or 0) >= goal, why))
    lines.append(f"  p99 <= {P99_OVER_P50:.0f} x p50 at c64, this server's paths:")
    for half, paths in (("sqlite", FLOOR_OF), ("pg", PEER_OF)):
        prefix = "" if half == "sqlite" else "pg_"
        for path in paths:
            got = spread.get(prefix + path)
            name = f"{half} {path}"
            lines.append(
                target_line(
                    name, f"<= {P99_OVER_P50:.2f}", got, (got or 0) <= P99_OVER_P50, skipped[half]
                )
            )
    leak = results.get("leak")
    lines.append("  memory: RSS growth after the cache warm-up:")
    if leak:
        first, last = leak["points"]
        name = f"RSS {last['requests']:,} / {first['requests']:,} req"
        lines.append(
            target_line(name, f"<= {RSS_GROWTH:.2f}", leak["ratio"], leak["ratio"] <= RSS_GROWTH)
        )
    else:
        lines.append(
            target_line("RSS growth", f"<= {RSS_GROWTH:.2f}", None, False, skipped["sqlite"])
        )
    return lines


def extras(results: dict[str, Any]) -> list[str]:
    lines = ["", "SQL statements per request (SQLite; BEGIN included, COMMIT not):"]
    error = results["statement_details"].get("error")
    if error:
        last = (error.strip().splitlines() or ["?"])[-1]
        lines.append(f"  not counted: bench/statements.py failed: {last[:300]}")
    for path, count in results["statements"].items():
        note = ""
        if path.endswith("_update") and count is not None:
            without = results["statement_details"][path]["without_begin"]
            note = f"  ({without} without BEGIN; target <= {MAX_STATEMENTS}: "
            note += f"{verdict(without <= MAX_STATEMENTS)})"
        lines.append(f"  {path:17} {count}{note}")
    lines += ["", "scale of data, update p50 at c16 (10,000 vs 200,000 assistants):"]
    for path, s in results["scale"].items():
        lines.append(
            f"  {path:15} {s['p50_ms_10k']:.2f} ms vs {s['p50_ms_200k']:.2f} ms: "
            f"x{s['ratio']:.2f} (target <= 1.5: {verdict(s['ratio'] <= 1.5)}); "
            f"{s['rps_10k']:.0f} vs {s['rps_200k']:.0f} req/s"
        )
    leak = results["leak"]
    first, last = leak["points"]
    lines += [
        "",
        f"memory: after {leak['warmup_requests']:,} requests of unique GraphQL texts (to fill "
        f"the bounded caches), RSS {first['rss_mb']} MB after {first['requests']:,} more "
        f"requests, {last['rss_mb']} MB after {last['requests']:,}: x{leak['ratio']:.3f} "
        f"(target <= {RSS_GROWTH}: {verdict(leak['ratio'] <= RSS_GROWTH)}; "
        f"{leak['errors']} errors)",
    ]
    return lines


def render(results: dict[str, Any], skipped: dict[str, str]) -> str:
    lines: list[str] = []
    if "summary" in results:
        lines += ["SQLite: this server against the floor (bench/floor.py), same database", ""]
        lines += table(results["summary"], "floor")
        lines += extras(results)
    if "pg" in results:
        pg = results["pg"]
        lines += [
            *([""] if lines else []),
            f"PostgreSQL: this server against PostGraphile {pg['postgraphile']}, same tables "
            f"({pg['assistants']} assistants; ÷pgl: over PostGraphile's; db CPU: the "
            "PostgreSQL backends of the bench's database)",
            "",
        ]
        lines += table(pg["summary"], "pgl", db_cpu=True)
        if pg.get("postgraphile5"):
            lines += [
                "",
                f"PostgreSQL: this server against PostGraphile {pg['postgraphile5']} (Grafast, "
                "the Amber preset), same tables and runs (÷pg5: over PostGraphile 5's)",
                "",
            ]
            lines += table(pg["summary_postgraphile5"], "pg5", db_cpu=True)
    lines += targets(results, skipped)
    if results["notes"]:
        lines += ["", "notes:"] + [f"  - {n}" for n in results["notes"]]
    return "\n".join(lines)
