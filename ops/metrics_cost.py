"""`.venv/bin/python ops/metrics_cost.py [--requests N] [--rounds R]`: the CPU a
request costs with Prometheus metrics on and off, measured in process (the ASGI app called
directly, no HTTP client in the figure) with `time.process_time()`, in alternating processes;
prints the median per side and the difference.

Paths: REST `PATCH /orgs/{org_id}/assistants/{assistant_id}` and GraphQL `updateAssistant`, on
a fresh SQLite database (SQLITE_SYNCHRONOUS=NORMAL: the fsync is not CPU anyway).

Each side runs in a process of its own (two apps in one process measured a few % apart even
when both were the same: the one made first was slower), on, off, off, on … so that a busy
machine slows both sides alike."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the app of this checkout

from app.auth import create_organisation
from app.main import create_app
from app.migrate import upgrade
from app.observability import metrics
from app.settings import Settings

UPDATE = (
    "mutation updateAssistant($id: ID!, $name: String!) "
    '{ updateAssistant(orgId: "c", assistantId: $id, input: {name: $name}) { version } }'
)


async def call(
    app: Starlette,
    method: str,
    path: str,
    token: str,
    body: bytes,
    answer: list[bytes] | None = None,
) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif answer is not None:
            answer.append(message.get("body", b""))

    await app(scope, receive, send)
    return status


async def round_of(app: Starlette, on: bool, kind: str, ids: tuple[str, str, str], n: int) -> float:
    metrics.configure(on)
    org_id, assistant_id, token = ids
    started = time.process_time()
    for number in range(n):
        if kind == "rest":
            body = orjson.dumps({"name": f"n{number}"})
            path = f"/orgs/{org_id}/assistants/{assistant_id}"
            status = await call(app, "PATCH", path, token, body)
        else:
            variables = {"id": assistant_id, "name": f"g{number}"}
            body = orjson.dumps({"query": UPDATE, "variables": variables})
            status = await call(app, "POST", "/graphql", token, body)
        assert status == 200, status
    return (time.process_time() - started) / n * 1e6  # µs per request


async def one_side(folder: Path, on: bool, requests: int) -> dict[str, float]:
    """µs of CPU per request of each kind, for one app (metrics on or off) in this process."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder}/bench.db",
        avatars_dir=folder / "avatars",
        sqlite_synchronous="NORMAL",
        rate_limit="1000000/minute",
        graphql_points=100_000_000,
        log_level="WARNING",
        metrics_enabled=on,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    figures = {}
    async with app.router.lifespan_context(app):
        async with app.state.db.write() as tx:
            org, _key_id, token = await create_organisation(tx, name="bench")
        answer: list[bytes] = []
        path = f"/orgs/{org.id}/assistants"
        assert await call(app, "POST", path, token, b'{"name": "a"}', answer) == 201
        ids = (org.id, orjson.loads(b"".join(answer))["id"], token)
        for kind in ("rest", "graphql"):
            await round_of(app, on, kind, ids, requests // 4)  # warm up
            figures[kind] = await round_of(app, on, kind, ids, requests)
    return figures


def main(requests: int, rounds: int) -> None:
    """Alternating processes, each one app: on, off, off, on, on, off …"""
    folder = Path(tempfile.mkdtemp())
    upgrade(
        Settings(
            database_url=f"sqlite+aiosqlite:///{folder}/bench.db",
            _env_file=None,  # type: ignore[call-arg]
        )
    )
    figures: dict[bool, dict[str, list[float]]] = {True: {}, False: {}}
    for number in range(rounds):
        for side in (True, False) if number % 2 == 0 else (False, True):
            command = [sys.executable, __file__, "--side", "on" if side else "off"]
            command += ["--requests", str(requests), "--folder", str(folder)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            for kind, value in json.loads(done.stdout.splitlines()[-1]).items():
                figures[side].setdefault(kind, []).append(value)
    for kind in figures[True]:
        with_metrics = statistics.median(figures[True][kind])
        without = statistics.median(figures[False][kind])
        print(
            f"{kind:8} metrics on {with_metrics:7.1f} µs CPU/request, off {without:7.1f}: "
            f"{(with_metrics / without - 1) * 100:+.1f} % (medians of {rounds} processes "
            f"of {requests} requests each side)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--side", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.side is None:
        main(arguments.requests, arguments.rounds)
    else:
        result = asyncio.run(one_side(arguments.folder, arguments.side == "on", arguments.requests))
        print(json.dumps(result))
