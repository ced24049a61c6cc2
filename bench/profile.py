"""Where the server's time goes on one path: py-spy under the bench's load.

`python bench/profile.py [PATH] [--seconds N] [--gil]` (PATH one of graphql_update,
rest_update, rest_get, graphql_list, rest_list; default graphql_update) uses the
data/bench/a10k.db that `make bench` left, starts the server pinned as the bench does, drives
PATH at concurrency 16 and samples the server with py-spy (`pip install py-spy` into .venv;
it is not a dependency). It writes data/bench/profile-PATH.txt (collapsed stacks, which
speedscope and flamegraph tools read) and prints the share of samples by layer (inclusive: a
sample counts for every layer on its stack; exclusive: for the layer of its innermost known
frame), the app functions with the most samples under them, and the functions with the most
samples of their own. With --gil only samples holding the GIL count (Python work; SQLite's own
C code runs without it).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import paths
from load import drive
from run import DATA, Target, start_app

LAYERS = {
    "GraphQL parse": "graphql/language/",
    "GraphQL validation": "graphql/validation/",
    "GraphQL execution (graphql-core)": "graphql/execution/",
    "Strawberry": "strawberry/",
    "SQLAlchemy ORM": "sqlalchemy/orm/",
    "SQLAlchemy Core (compile, engine)": "sqlalchemy/sql/|sqlalchemy/engine/",
    "aiosqlite / sqlite3": "aiosqlite/|sqlite3",
    "pydantic": "pydantic",
    "logging": "logging/",
    "uvicorn / httptools": "uvicorn/",
    "Starlette": "starlette/",
    "asyncio": "asyncio/",
    "app code (any frame)": "(app/",
}


def layers(stacks: Counter[str]) -> list[tuple[str, float]]:
    total = sum(stacks.values()) or 1
    shares = []
    for name, needles in LAYERS.items():
        hits = sum(n for s, n in stacks.items() if any(x in s for x in needles.split("|")))
        shares.append((name, 100 * hits / total))
    return sorted(shares, key=lambda x: -x[1])


def layer_of(frame: str) -> str | None:
    for name, needles in LAYERS.items():
        if any(x in frame for x in needles.split("|")):
            return name
    return None


def exclusive(stacks: Counter[str]) -> list[tuple[str, float]]:
    total = sum(stacks.values()) or 1
    shares: Counter[str] = Counter()
    for stack, n in stacks.items():
        frames = stack.split(";")
        found = next((lay for f in reversed(frames) if (lay := layer_of(f))), "other")
        shares[found] += n
    return [(name, 100 * n / total) for name, n in shares.most_common()]


def app_functions(stacks: Counter[str], top: int = 15) -> list[tuple[str, float]]:
    total = sum(stacks.values()) or 1
    inclusive: Counter[str] = Counter()
    for stack, n in stacks.items():
        for frame in {f for f in stack.split(";") if "(app/" in f}:
            inclusive[frame.split(" (")[0] + " (" + frame.split("(")[-1].split(":")[0] + ")"] += n
    return [(f, 100 * n / total) for f, n in inclusive.most_common(top)]


def own_time(stacks: Counter[str], top: int = 20) -> list[tuple[str, float]]:
    total = sum(stacks.values()) or 1
    leaves: Counter[str] = Counter()
    for stack, n in stacks.items():
        leaves[stack.rsplit(";", 1)[-1]] += n
    return [(f, 100 * n / total) for f, n in leaves.most_common(top)]


def read_stacks(path: Path) -> Counter[str]:
    stacks: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks[stack] += int(count)
    return stacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="graphql_update")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    args = parser.parse_args()
    path, seconds = args.path, args.seconds
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    db = DATA / "a10k.db"
    server = start_app(db, "profile")
    out = DATA / f"profile-{path}.txt"
    try:
        fields, _ = paths.discover(server.url)
        target = Target.sqlite("server", server, db, fields)
        drive(server.url, 16, 2, target.env(path))  # warm up
        argv = [spy, "record", "-p", str(server.pid), "-r", "250", "-d", str(seconds)]
        argv += ["-f", "raw", "-o", str(out), "--nonblocking"] + (["--gil"] if args.gil else [])
        recorder = subprocess.Popen(argv)
        time.sleep(1)
        result = drive(server.url, 16, seconds - 2, target.env(path))
        recorder.wait()
    finally:
        server.stop()
    stacks = read_stacks(out)
    print(f"{path}: {result.rps:.1f} req/s during the profile; {sum(stacks.values())} samples")
    print("\nshare of samples by layer (inclusive):")
    for name, share in layers(stacks):
        print(f"  {share:5.1f} %  {name}")
    print("\nshare of samples by layer (exclusive, innermost known frame):")
    for name, share in exclusive(stacks):
        print(f"  {share:5.1f} %  {name}")
    print("\napp functions (inclusive):")
    for frame, share in app_functions(stacks):
        print(f"  {share:5.1f} %  {frame}")
    print("\nown time (leaf functions):")
    for frame, share in own_time(stacks):
        print(f"  {share:5.1f} %  {frame}")
    print(f"\ncollapsed stacks in {out}")


if __name__ == "__main__":
    main()
