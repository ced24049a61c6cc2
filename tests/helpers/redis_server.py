"""A real `redis-server` on a free port of 127.0.0.1, for the shared rate limits.

No persistence (`--save '' --appendonly no`): a restarted server starts empty, as a Redis that
died and came back may. `kill()` ends it at once (SIGKILL: the outage), `start()` brings it
back on the same port. Missing `redis-server` skips the test, unless REQUIRE_REDIS=1 (set by
`.ci/run`), which fails it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.server_process import free_port

STARTUP_SECONDS = 10.0


def redis_server_or_skip() -> str:
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not on PATH: the Redis tests are skipped"
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


class RedisServer:
    def __init__(self, log_dir: Path) -> None:
        self.binary = redis_server_or_skip()
        self.port = free_port()
        self.log_path = log_dir / f"redis-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.log_path.read_text()}")
            if self.answers():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not answer in {STARTUP_SECONDS}s")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: Redis is gone mid-flight, nothing is flushed."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
