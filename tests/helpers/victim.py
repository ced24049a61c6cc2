"""The second tenant of the fairness checks: a process of its own that GETs one assistant over
and over, paced, and writes each request's start, latency and status to a file.

It runs apart from the attackers (another process, so their client-side work does not delay its
clock); the samples carry `time.monotonic()` (CLOCK_MONOTONIC, the same in every process of the
machine), so a caller cuts them into windows: `Victim.samples(since, until)`.

Run as a script: `python tests/helpers/victim.py URL PATH OUT PACE_MS KEY [KEY …]` (the keys
are used in turn, so that the victim's own requests stay within the per-key request limit).
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

FAILED = 0  # the status written for a request that got no answer


@dataclass
class Sample:
    started: float  # time.monotonic()
    ms: float
    status: int


@dataclass
class Window:
    """The victim's requests of one stretch of time."""

    samples: list[Sample]

    @property
    def latencies(self) -> list[float]:
        return sorted(sample.ms for sample in self.samples)

    def quantile(self, q: float) -> float:
        values = self.latencies
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.samples else float("nan")

    @property
    def p90(self) -> float:
        return self.quantile(0.90)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)

    @property
    def worst(self) -> float:
        return max(self.latencies, default=float("nan"))

    @property
    def statuses(self) -> set[int]:
        return {sample.status for sample in self.samples}

    def summary(self) -> str:
        return (
            f"{len(self.samples)} GETs, p50 {self.p50:.1f} ms, p90 {self.p90:.1f} ms, "
            f"p99 {self.p99:.1f} ms, "
            f"max {self.worst:.1f} ms, statuses {sorted(self.statuses)}"
        )


class Victim:
    """`with Victim(url, path, keys, out) as victim:` … `victim.window(t0, t1)`."""

    def __init__(
        self, base_url: str, path: str, keys: list[str], out: Path, pace_ms: float = 20.0
    ) -> None:
        self.out = out
        self.argv = [sys.executable, __file__, base_url, path, str(out), str(pace_ms), *keys]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Victim:
        self.out.write_text("")
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not self.read() and time.monotonic() < deadline:  # its first answer
            time.sleep(0.05)
        return self

    def read(self) -> list[Sample]:
        samples = []
        for line in self.out.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                samples.append(Sample(float(parts[0]), float(parts[1]), int(parts[2])))
        return samples

    def window(self, since: float, until: float) -> Window:
        """The requests that started within [since, until)."""
        time.sleep(0.05)  # the last line may be on its way
        return Window([s for s in self.read() if since <= s.started < until])

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process = None

    def __enter__(self) -> Victim:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run(base_url: str, path: str, out: Path, pace_ms: float, keys: list[str]) -> None:
    headers = [{"Authorization": f"Bearer {key}"} for key in keys]
    turn = 0
    with httpx.Client(base_url=base_url, timeout=30) as http, out.open("a", buffering=1) as log:
        while True:
            started = time.monotonic()
            try:
                status = http.get(path, headers=headers[turn % len(headers)]).status_code
            except httpx.HTTPError:
                status = FAILED
            took = time.monotonic() - started
            log.write(f"{started:.6f} {1000 * took:.3f} {status}\n")
            turn += 1
            time.sleep(max(0.0, pace_ms / 1000 - took))


if __name__ == "__main__":
    url, route, file, pace, *tokens = sys.argv[1:]
    with contextlib.suppress(KeyboardInterrupt):
        run(url, route, Path(file), float(pace), tokens)
