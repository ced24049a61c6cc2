"""Load generation: request templates, wrk (bench/wrk.lua) or a small asyncio+httpx fallback.

The generator always runs in its own process on the load-generator core, never on the server's.
Templates are three lines each (METHOD, PATH, BODY) with the placeholders of bench/wrk.lua.
Run as a script it is the fallback generator: `python bench/load.py URL CONC SECONDS` with the
same BENCH_* environment as the wrk script; it prints the same `BENCH {json}` line.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Template:
    method: str
    path: str
    body: Any = None  # a JSON value, encoded once; its strings may hold placeholders


def write_templates(path: Path, templates: list[Template]) -> None:
    lines = []
    for t in templates:
        body = "" if t.body is None else orjson.dumps(t.body).decode()
        lines += [t.method, t.path, body]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    sample: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def parse_output(out: str) -> Result:
    line = next((x for x in out.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"the load generator printed no result:\n{out[-2000:]}")
    data = json.loads(line[6:])
    sample = next((x[9:] for x in out.splitlines() if x.startswith("BENCHBAD ")), "")
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["bad"] + data["socket_errors"],
        sample=sample,
    )


def have_wrk() -> bool:
    return shutil.which("wrk") is not None and os.environ.get("BENCH_LOADGEN") != "python"


def drive(url: str, concurrency: int, seconds: int, env: dict[str, str]) -> Result:
    """One run against url; env holds BENCH_TEMPLATES, BENCH_IDS, BENCH_KEY, BENCH_SALT."""
    from procs import LOADGEN_CORE, pinned

    if have_wrk():
        argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "30s"]
        argv += ["-s", str(BENCH / "wrk.lua"), url]
    else:
        argv = [sys.executable, str(BENCH / "load.py"), url, str(concurrency), str(seconds)]
    done = subprocess.run(
        pinned(LOADGEN_CORE, argv),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    return parse_output(done.stdout + done.stderr)


# -- the fallback generator ---------------------------------------------------------------


def read_templates(path: str) -> list[tuple[str, str, str]]:
    lines = Path(path).read_text().split("\n")
    return [(lines[i], lines[i + 1], lines[i + 2]) for i in range(0, len(lines) - 2, 3)]


def read_ids(path: str) -> list[str]:
    return Path(path).read_text().split()


def fill(path: str, body: str, ident: str, salt: str, n: int) -> tuple[str, str]:
    """A template's path and body with the placeholders of bench/wrk.lua replaced."""
    path = path.replace("@ID@", ident)
    if body:
        body = body.replace("@ID@", ident).replace("@N@", str(random.randint(1, 10**6)))
        body = body.replace("@U@", f"{salt}t0n{n}")
    return path, body


async def worker(http: httpx.AsyncClient, state: dict[str, Any], deadline: float) -> None:
    templates, ids, salt = state["templates"], state["ids"], state["salt"]
    while time.perf_counter() < deadline:
        state["counter"] += 1
        n = state["counter"]
        method, path, body = templates[(n - 1) % len(templates)]
        path, body = fill(path, body, random.choice(ids), salt, n)
        started = time.perf_counter()
        headers = {"Idempotency-Key": f"{salt}k{n}"} if state["keyed"] else None
        response = await http.request(method, path, content=body or None, headers=headers)
        state["latencies"].append(time.perf_counter() - started)
        if response.status_code != 200 or b'"errors"' in response.content:
            state["bad"] += 1


async def generate(url: str, concurrency: int, seconds: float) -> None:
    state: dict[str, Any] = {
        "templates": read_templates(os.environ["BENCH_TEMPLATES"]),
        "ids": read_ids(os.environ["BENCH_IDS"]),
        "salt": os.environ.get("BENCH_SALT", "s"),
        "keyed": bool(os.environ.get("BENCH_IDEMPOTENCY_KEY")),
        "counter": 0,
        "bad": 0,
        "latencies": [],
    }
    headers = {
        "Authorization": f"Bearer {os.environ['BENCH_KEY']}",
        "Content-Type": "application/json",
    }
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as http:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(worker(http, state, deadline) for _ in range(concurrency)))
        took = time.perf_counter() - started
    latencies = sorted(state["latencies"]) or [0.0]
    result = {
        "requests": len(state["latencies"]),
        "duration_us": int(took * 1e6),
        "p50_us": int(latencies[len(latencies) // 2] * 1e6),
        "p99_us": int(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e6),
        "socket_errors": 0,
        "bad": state["bad"],
    }
    print("BENCH " + json.dumps(result))


if __name__ == "__main__":
    asyncio.run(generate(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
