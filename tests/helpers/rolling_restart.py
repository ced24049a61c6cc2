"""A rolling restart under load (ops/README.md): two `python -m app serve` processes over one
PostgreSQL and one Redis, behind a real HAProxy configured by ops/haproxy.cfg. While threads
send updates and reads through the balancer, each server in turn gets SIGTERM, exits, and is
started again on its port; then the other. Counted: every answer that is not a 2xx (a transport
error included) and every acknowledged write that is missing afterwards.

Used by tests/test_rolling_restart.py (one drill) and bench/deploy.py (three, with figures).
Missing `haproxy` skips the test, unless REQUIRE_HAPROXY=1 (set by .ci/run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.helpers.server_process import ROOT, Server, free_port

CONFIG = ROOT / "ops" / "haproxy.cfg"
DRAIN_SECONDS = "2"  # longer than ops/haproxy.cfg's health checks take to see a 503
TIMEOUT = 30.0


def haproxy_or_skip() -> str:
    path = shutil.which("haproxy")
    if path is None:
        reason = "haproxy is not on PATH: the rolling-restart test is skipped"
        if os.environ.get("REQUIRE_HAPROXY") == "1":
            pytest.fail(reason + " (REQUIRE_HAPROXY=1)")
        pytest.skip(reason)
    return path


class HAProxy:
    """`haproxy -f ops/haproxy.cfg` in the foreground, its addresses from the environment."""

    def __init__(self, binary: str, backends: list[str], log: Path) -> None:
        self.port, stats = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stats_url = f"http://127.0.0.1:{stats}/stats;csv"
        env = {**os.environ, "LISTEN": f"127.0.0.1:{self.port}", "STATS": f"127.0.0.1:{stats}"}
        env |= {f"APP{n}": backend for n, backend in enumerate(backends, start=1)}
        self.log = log.open("wb")
        self.process = subprocess.Popen(
            [binary, "-db", "-f", str(CONFIG)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_up(self, count: int) -> None:
        """Until `count` servers are UP in HAProxy's own view."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}")
            if list(self.states().values()).count("UP") >= count:
                return
            time.sleep(0.05)
        raise RuntimeError(f"haproxy did not see {count} servers up: {self.states()}")

    def states(self) -> dict[str, str]:
        """{server name: UP, DOWN, …} of the `servers` backend."""
        try:
            text = httpx.get(self.stats_url, timeout=2).text
        except httpx.HTTPError:
            return {}
        rows = [line.split(",") for line in text.splitlines() if line.startswith("servers,")]
        return {row[1]: row[17].split(" ")[0] for row in rows if row[1] != "BACKEND"}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@dataclass
class Load:
    """Threads sending PATCHes (each writer owns one assistant) and GETs through the balancer."""

    url: str
    api_key: str
    org_id: str
    assistants: list[str]
    readers: int = 2
    stop: threading.Event = field(default_factory=threading.Event)
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    acknowledged: dict[str, list[str]] = field(default_factory=dict)  # assistant: names stored
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for assistant in self.assistants:
            self.acknowledged[assistant] = []
            self._spawn(self._write, assistant)
        for n in range(self.readers):
            self._spawn(self._read, self.assistants[n % len(self.assistants)])

    def _spawn(self, target: Any, assistant: str) -> None:
        thread = threading.Thread(target=target, args=(assistant,), daemon=True)
        thread.start()
        self.threads.append(thread)

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)

    def _record(self, what: str, response: httpx.Response | None, error: str = "") -> bool:
        ok = response is not None and 200 <= response.status_code < 300
        with self.lock:
            self.requests += 1
            if not ok:
                status = response.status_code if response is not None else "no answer"
                body = response.text[:200] if response is not None else error
                self.failures.append(f"{what}: {status} {body}")
        return ok

    def _send(self, http: httpx.Client, what: str, method: str, path: str, **kw: Any) -> bool:
        try:
            response = http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            return self._record(what, None, f"{type(exc).__name__}: {exc}")
        return self._record(what, response)

    def _write(self, assistant: str) -> None:
        path = f"/orgs/{self.org_id}/assistants/{assistant}"
        with self.client() as http:
            n = 0
            while not self.stop.is_set():
                n += 1
                name = f"write {n}"
                if self._send(http, f"PATCH {assistant}", "PATCH", path, json={"name": name}):
                    self.acknowledged[assistant].append(name)

    def _read(self, assistant: str) -> None:
        path = f"/orgs/{self.org_id}/assistants/{assistant}"
        with self.client() as http:
            while not self.stop.is_set():
                self._send(http, f"GET {assistant}", "GET", path)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(TIMEOUT)


@dataclass
class Outcome:
    requests: int
    writes: int
    failures: list[str]
    lost: list[str]
    restarts: list[dict[str, float]]
    seconds: float


def lost_writes(load: Load, before: dict[str, int]) -> list[str]:
    """Acknowledged writes not in the database: per assistant, its version must have grown by
    the number of acknowledged PATCHes, its name be the last one, and its revisions name them
    all."""
    lost = []
    with load.client() as http:
        for assistant, names in load.acknowledged.items():
            path = f"/orgs/{load.org_id}/assistants/{assistant}"
            now = http.get(path).json()
            if now["version"] != before[assistant] + len(names):
                lost.append(f"{assistant}: version {now['version']}, {len(names)} acknowledged")
            if names and now["name"] != names[-1]:
                lost.append(f"{assistant}: name {now['name']!r}, last acknowledged {names[-1]!r}")
    return lost


def versions(load: Load) -> dict[str, int]:
    with load.client() as http:
        found = {}
        for assistant in load.assistants:
            path = f"/orgs/{load.org_id}/assistants/{assistant}"
            found[assistant] = http.get(path).json()["version"]
        return found


def drill(
    settings: Settings,
    log_dir: Path,
    *,
    redis_url: str,
    org_id: str,
    api_key: str,
    assistants: list[str],
    steady_seconds: float = 1.5,
) -> Outcome:
    """One rolling restart of two servers under load; returns what it counted."""
    binary = haproxy_or_skip()
    env = {"RATE_LIMIT_STORAGE": redis_url, "SHUTDOWN_DRAIN_SECONDS": DRAIN_SECONDS}
    servers = []
    for name in ("app1", "app2"):
        (log_dir / name).mkdir(parents=True, exist_ok=True)
        servers.append(Server(settings, log_dir / name, workers=1, env=env).start())
    balancer = HAProxy(binary, [f"127.0.0.1:{s.port}" for s in servers], log_dir / "haproxy.log")
    restarts: list[dict[str, float]] = []
    began = time.monotonic()
    load = Load(balancer.url, api_key, org_id, assistants)
    try:
        balancer.wait_until_up(2)
        before = versions(load)
        load.start()
        time.sleep(steady_seconds)
        for server in servers:
            stopping = time.monotonic()
            port = server.port
            server.stop()
            stopped = time.monotonic()
            server.start(port=port)
            balancer.wait_until_up(2)
            back = time.monotonic() - stopped
            restarts.append({"stop_s": round(stopped - stopping, 2), "back_s": round(back, 2)})
            time.sleep(steady_seconds)
        load.finish()
        writes = sum(len(names) for names in load.acknowledged.values())
        return Outcome(
            requests=load.requests,
            writes=writes,
            failures=load.failures,
            lost=lost_writes(load, before),
            restarts=restarts,
            seconds=round(time.monotonic() - began, 1),
        )
    finally:
        load.stop.set()
        balancer.stop()
        for server in servers:
            server.stop()
