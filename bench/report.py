"""The figures of a bench run: aggregated per path, ratios to the floor, the printed table."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

# each server path and the floor path it is compared with
FLOOR_OF = {
    "graphql_update": "rest_update",
    "rest_update": "rest_update",
    "rest_get": "rest_get",
    "graphql_list": "rest_list",
    "rest_list": "rest_list",
}
# issue 6: requests/s over the floor's, at concurrency 16
TARGETS = {"graphql_update": 0.40, "rest_update": 0.60, "graphql_list": 0.35, "rest_list": 0.60}
P99_OVER_P50 = 3.0
SCALE_PATHS = ("rest_update", "graphql_update")
MAX_STATEMENTS = 5


def aggregate(runs: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Runs of one (target, path, concurrency) merged: requests/s over their whole time,
    the mean of their p50 and p99, CPU per request over all requests, the highest peak RSS."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["target"], run["path"], run["concurrency"])].append(run)
    merged = {}
    for key, group in groups.items():
        requests = sum(r["requests"] for r in group)
        cpu = sum(r["cpu_ms_per_request"] * r["requests"] for r in group)
        merged[key] = {
            "target": key[0],
            "path": key[1],
            "concurrency": key[2],
            "runs": len(group),
            "requests": requests,
            "rps": round(requests / sum(r["seconds"] for r in group), 1),
            "p50_ms": round(sum(r["p50_ms"] for r in group) / len(group), 2),
            "p99_ms": round(sum(r["p99_ms"] for r in group) / len(group), 2),
            "cpu_ms_per_request": round(cpu / max(requests, 1), 3),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in group),
            "errors": sum(r["errors"] for r in group),
        }
    return merged


def add_ratios(rows: dict[tuple[str, str, int], dict[str, Any]]) -> None:
    for (target, path, concurrency), row in rows.items():
        floor = rows.get(("floor", FLOOR_OF[path], concurrency))
        if target != "server" or floor is None:
            continue
        row["rps_ratio"] = round(row["rps"] / max(floor["rps"], 1e-9), 3)
        row["cpu_ratio"] = round(
            row["cpu_ms_per_request"] / max(floor["cpu_ms_per_request"], 1e-9), 2
        )
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


def build(
    config: dict[str, Any], measured: dict[str, Any], counted: dict[str, Any], notes: list[str]
) -> dict[str, Any]:
    rows = aggregate(measured["runs"])
    add_ratios(rows)
    summary = sorted(rows.values(), key=lambda r: (r["concurrency"], r["path"], r["target"]))
    ratios = {
        p: rows[("server", p, 16)].get("rps_ratio") for p in TARGETS if ("server", p, 16) in rows
    }
    return {
        "config": config,
        "ratios": ratios,
        "ratios_c64": {
            p: rows[("server", p, 64)].get("rps_ratio")
            for p in FLOOR_OF
            if ("server", p, 64) in rows
        },
        "p99_over_p50_c64": {
            p: rows[("server", p, 64)]["p99_over_p50"]
            for p in FLOOR_OF
            if ("server", p, 64) in rows
        },
        "statements": {k: v.get("count") for k, v in counted.items() if isinstance(v, dict)},
        "scale": scale_summary(measured["runs"] + measured["scale_runs"]),
        "leak": measured["leak"],
        "summary": summary,
        "notes": notes,
        "statement_details": counted,
        "runs": measured["runs"] + measured["scale_runs"],
    }


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def table(results: dict[str, Any]) -> list[str]:
    head = (
        f"{'path':15} {'c':>3} {'target':7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU ms/req':>10} {'peak RSS MB':>11} {'÷floor req/s':>12} {'÷floor CPU':>10} "
        f"{'p99/p50':>7} {'errors':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in results["summary"]:
        ratio = f"{r['rps_ratio']:.3f}" if "rps_ratio" in r else "-"
        cpu = f"{r['cpu_ratio']:.2f}" if "cpu_ratio" in r else "-"
        spread = f"{r['p99_ms'] / r['p50_ms']:.2f}" if r["p50_ms"] else "-"
        lines.append(
            f"{r['path']:15} {r['concurrency']:>3} {r['target']:7} {r['rps']:>8.1f} "
            f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['cpu_ms_per_request']:>10.3f} "
            f"{r['peak_rss_mb']:>11.1f} {ratio:>12} {cpu:>10} {spread:>7} {r['errors']:>6}"
        )
    return lines


def targets(results: dict[str, Any]) -> list[str]:
    lines = ["", "targets (issue 6), requests/s over the floor's at c16:"]
    for path, goal in TARGETS.items():
        got = results["ratios"].get(path)
        mark = "skipped" if got is None else f"{got:.3f}  {verdict(got >= goal)}"
        lines.append(f"  {path:15} >= {goal:.2f}: {mark}")
    for path, spread in results["p99_over_p50_c64"].items():
        ok = verdict(spread <= P99_OVER_P50)
        lines.append(f"  p99/p50 at c64 {path:15} <= {P99_OVER_P50:.0f}: {spread:.2f}  {ok}")
    return lines


def extras(results: dict[str, Any]) -> list[str]:
    lines = ["", "SQL statements per request (BEGIN included, COMMIT not):"]
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
        f"memory: RSS {first['rss_mb']} MB after {first['requests']:,} requests, "
        f"{last['rss_mb']} MB after {last['requests']:,}: x{leak['ratio']:.3f} "
        f"(target <= 1.2: {verdict(leak['ratio'] <= 1.2)}; {leak['errors']} errors)",
    ]
    return lines


def render(results: dict[str, Any]) -> str:
    lines = table(results) + targets(results) + extras(results)
    if results["notes"]:
        lines += ["", "notes:"] + [f"  - {n}" for n in results["notes"]]
    return "\n".join(lines)
