"""Deploys that drop nothing (issue 29, ops/README.md): three rolling restarts under load.

Two `python -m app serve` processes over one PostgreSQL database (bench/postgres.py: the local
cluster or BENCH_POSTGRES_URL) and one Redis (Debian's `redis-server`, for the shared rate
limits), behind HAProxy from the distribution configured by ops/haproxy.cfg. Each run restarts
one server (SIGTERM, exit, start again on its port), then the other, while writers PATCH their
own assistant and readers GET through the balancer (tests/helpers/rolling_restart.py, the drill
tests/test_rolling_restart.py runs once). Prints, per run, the requests, the acknowledged
writes, every non-2xx answer and every acknowledged write missing afterwards; the target is 0
and 0 in each of three runs. `BENCH_ONLY=deploy` (or `--only deploy`) runs this part alone.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import postgres
from procs import ROOT

sys.path.insert(0, str(ROOT))

from app.settings import Settings
from tests.helpers.redis_server import RedisServer
from tests.helpers.rolling_restart import drill

RUNS = 3
ASSISTANTS = 8  # one writer each
DATA = ROOT / "data" / "bench"


def run() -> dict[str, Any]:
    """The three drills' figures, or {"skipped": why}."""
    missing = [tool for tool in ("haproxy", "redis-server") if shutil.which(tool) is None]
    if missing:
        names = " ".join(missing)
        return {"skipped": f"{names} not found (apt-get install {names})"}
    try:
        db = postgres.provide()
    except postgres.Unavailable as exc:
        return {"skipped": str(exc)}
    runs: list[dict[str, Any]] = []
    try:
        meta = postgres.seed(db, DATA / "deploy.json", ASSISTANTS)
        with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
            redis = RedisServer(Path(tmp)).start()
            try:
                settings = Settings(database_url=db.url, avatars_dir=Path(tmp) / "avatars")
                for n in range(RUNS):
                    outcome = drill(
                        settings,
                        Path(tmp) / f"run{n}",
                        redis_url=redis.url,
                        org_id=meta["bench_org"],
                        api_key=meta["bench_key"],
                        assistants=meta["bench_assistants"][:ASSISTANTS],
                    )
                    runs.append(vars(outcome))
                    sys.stderr.write(f"deploy run {n + 1}: {render_run(runs[-1])}\n")
            finally:
                redis.stop()
    finally:
        db.drop()
    return {"runs": runs}


def render_run(run: dict[str, Any]) -> str:
    restarts = ", ".join(f"stop {r['stop_s']} s, back {r['back_s']} s" for r in run["restarts"])
    return (
        f"{run['requests']:,} requests, {run['writes']:,} acknowledged writes in "
        f"{run['seconds']} s; failed {len(run['failures'])}, lost {len(run['lost'])} ({restarts})"
    )


def render(results: dict[str, Any]) -> str:
    lines = ["", "deploys: two servers behind HAProxy, each restarted in turn under load"]
    if "skipped" in results:
        return "\n".join([*lines, f"  skipped: {results['skipped']}"])
    for n, one in enumerate(results["runs"], start=1):
        lines.append(f"  run {n}: {render_run(one)}")
        lines += [f"    failed: {failure}" for failure in one["failures"][:5]]
        lines += [f"    lost: {lost}" for lost in one["lost"][:5]]
    clean = sum(1 for one in results["runs"] if not one["failures"] and not one["lost"])
    verdict = "ok" if clean == RUNS else "MISS"
    lines.append(f"  target: 0 failed and 0 lost in each of {RUNS} runs: {clean}/{RUNS} {verdict}")
    return "\n".join(lines)


def main() -> None:
    print(render(run()))


if __name__ == "__main__":
    main()
