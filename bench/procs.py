"""Processes of the bench: servers pinned to a core, their CPU time and memory from /proc."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
SERVER_CORE = "0"
LOADGEN_CORE = "1"


def pinned(core: str, argv: list[str]) -> list[str]:
    """argv run on one core when taskset exists and the machine has more than one."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", core, *argv]
    return argv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """A server process on SERVER_CORE; `ready_path` answers (any status) once it is up."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, **env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            pinned(SERVER_CORE, argv),
            cwd=ROOT,
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited with {self.proc.returncode}; see {self.log.name}")
            try:
                httpx.get(self.url + path, timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        sys.exit(f"{self.name} did not answer within {timeout:.0f} s; see {self.log.name}")

    def cpu_seconds(self) -> float:
        """utime + stime of the whole process (all its threads) so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def settle(self, timeout: float = 30.0) -> None:
        """Waits until the process is idle (under 5 % of a core for 0.3 s): a run must not pay
        for the requests the previous one left queued when its generator stopped."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            time.sleep(0.3)
            if self.cpu_seconds() - before < 0.015:
                return

    def memory_kb(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def reset_peak(self) -> None:
        """Resets VmHWM to the current RSS (Linux 4.0+), so each run reports its own peak."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
