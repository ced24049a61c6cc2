"""The audit entry's cost on the update path measured in one process, away from the load
generator's and the other processes' noise: `python bench/audit_inprocess.py [DATABASE_URL]`.

PATCHes (and GraphQL updateAssistant) of 10 assistants through the ASGI app (httpx's
ASGITransport, no network), in rounds of ROUND requests, alternately with `record_audit` as it
is and made a no-op (as bench/audit_off.py does), ROUNDS rounds each, each round ending with
the chaining of its entries (`seal_everything`, which `serve` runs every second); the figure is
the process CPU time per request (time.process_time, every thread), least and median of the
rounds, and the ratio without / with. SQLite by default (a fresh file under data/bench); a
postgresql+asyncpg:// URL measures PostgreSQL (its server's CPU is not counted).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

import app.domain.audit as audit
from app.auth import create_organisation
from app.main import create_app
from app.migrate import upgrade
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ROUNDS, ROUND = 8, 150
UPDATE = (
    'mutation($id: ID!, $name: String!) { updateAssistant(orgId: "c", assistantId: $id, '
    "input: {name: $name}) { id name version } }"
)
REAL = audit.record_audit.__code__


async def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


def recording(on: bool) -> None:
    audit.record_audit.__code__ = REAL if on else _nothing.__code__


async def one_round(
    http: httpx.AsyncClient, store: Any, ids: list[str], path: str, n: int
) -> float:
    """CPU per request of one round, the chaining of the round's entries included."""
    started = time.process_time()
    for i in range(ROUND):
        target = ids[i % len(ids)]
        if path == "rest_update":
            done = await http.patch(f"/orgs/c/assistants/{target}", json={"name": f"b{n}-{i}"})
        else:
            variables = {"id": target, "name": f"b{n}-{i}"}
            done = await http.post("/graphql", json={"query": UPDATE, "variables": variables})
        assert done.status_code == 200, done.text
    await audit.seal_everything(store)
    return (time.process_time() - started) / ROUND * 1e6


async def measure(database_url: str) -> dict[str, Any]:
    settings = Settings(
        database_url=database_url, rate_limit="1000000000/minute", log_level="WARNING"
    )
    application = create_app(settings)
    figures: dict[str, Any] = {}
    async with application.router.lifespan_context(application):
        async with application.state.db.write() as tx:
            _org, _key_id, token = await create_organisation(tx, name="in-process bench")
        transport = httpx.ASGITransport(app=application)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as http:
            ids = []
            for i in range(10):
                made = await http.post("/orgs/c/assistants", json={"name": f"Bench {i}"})
                ids.append(made.json()["id"])
            for path in ("rest_update", "graphql_update"):
                cpu: dict[str, list[float]] = {"on": [], "off": []}
                for n in range(2 * ROUNDS + 1):
                    on = n % 2 == 1
                    recording(on)
                    spent = await one_round(http, application.state.db, ids, path, n)
                    if n:  # the first round warms up
                        cpu["on" if on else "off"].append(spent)
                recording(True)
                on_, off = min(cpu["on"]), min(cpu["off"])
                figures[path] = {
                    "cpu_us_with": round(on_, 1),
                    "cpu_us_without": round(off, 1),
                    "median_with": round(statistics.median(cpu["on"]), 1),
                    "median_without": round(statistics.median(cpu["off"]), 1),
                    "ratio": round(off / on_, 3),
                }
    return figures


def main() -> None:
    as_json = "--json" in sys.argv
    argv = [a for a in sys.argv[1:] if a != "--json"]
    if argv:
        url = argv[0]
    else:
        db = ROOT / "data" / "bench" / "audit-inprocess.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        for stale in db.parent.glob(db.name + "*"):
            stale.unlink()
        url = f"sqlite+aiosqlite:///{db}"
    upgrade(Settings(database_url=url))  # (runs its own event loop)
    figures = asyncio.run(measure(url))
    if as_json:
        print(json.dumps(figures))
        return
    for path, f in figures.items():
        print(
            f"{path:15} CPU/request with {f['cpu_us_with']:7.1f} us  without "
            f"{f['cpu_us_without']:7.1f} us  (medians {f['median_with']} / "
            f"{f['median_without']})  without/with {f['ratio']}"
        )


if __name__ == "__main__":
    main()
