"""A real `python -m app serve --workers N` in a subprocess, for the tests whose behaviour lives
in the server: many worker processes over one database, and SIGKILL.

The server runs in its own process group (the uvicorn supervisor and its workers), on a free
port of 127.0.0.1; `start()` returns once /healthz answers and every worker has completed its
startup, `stop()` ends it with SIGTERM (then SIGKILL), `kill()` SIGKILLs the whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0
STOP_SECONDS = 15.0
WORKER_READY = "Application startup complete."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def server_env(settings: Settings, port: int) -> dict[str, str]:
    """The environment of the server: the test's database, nothing from a `.env`."""
    env = {k: v for k, v in os.environ.items() if k not in {"HOST", "PORT", "PUBLIC_URL"}}
    env.update(
        DATABASE_URL=settings.database_url,
        AVATARS_DIR=str(settings.avatars_dir),
        SQLITE_SYNCHRONOUS=settings.sqlite_synchronous,
        LOG_LEVEL="INFO",
        RATE_LIMIT="100000/minute",
        GRAPHQL_POINTS="100000000",
        PYTHONUNBUFFERED="1",
    )
    if settings.public_url:
        env["PUBLIC_URL"] = settings.public_url
    return env


class Server:
    """One `serve` process group; can be started again (on a new port) after stop or kill."""

    def __init__(
        self,
        settings: Settings,
        log_dir: Path,
        workers: int = 2,
        env: dict[str, str] | None = None,  # more environment (settings) for the server
    ) -> None:
        self.settings = settings
        self.workers = workers
        self.env = env or {}
        self.log_dir = log_dir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = log_dir / "server-0.log"
        self._starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> Server:
        """Starts the server on `port` (a restart behind a balancer), else on a free one."""
        self.port = port or free_port()
        self.log_path = self.log_dir / f"server-{self._starts}.log"
        self._starts += 1
        command = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", str(self.workers)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**server_env(self.settings, self.port), **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() reaches every worker
            )
        self._wait_until_ready()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at startup:\n{self.log()}")
            if self.log().count(WORKER_READY) >= self.workers and self._healthy():
                return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the server did not start in {STARTUP_SECONDS}s:\n{self.log()}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _signal_group(self, signum: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL to the whole process group: supervisor and workers die mid-flight."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=STOP_SECONDS)
        self._reap_group()
        self.process = None

    def stop(self) -> None:
        """A clean stop (SIGTERM), SIGKILL when it does not end in time."""
        if self.process is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout=STOP_SECONDS)
        self._reap_group()
        self.process = None

    def _reap_group(self) -> None:
        """Waits until no process of the group is left (workers are not our children)."""
        assert self.process is not None
        deadline = time.monotonic() + STOP_SECONDS
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        self._signal_group(signal.SIGKILL)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()
