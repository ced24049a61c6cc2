"""`python bench/quick.py PATH... [--seconds N] [--concurrency C]`: requests/s, server CPU per
request, p50 and p99 of some paths (at concurrency 16 unless told), on the server only (no
floor, no alternation): a quick check while working on one path, against the
data/bench/a10k.db that `make bench` left. `make bench` is the measurement."""

from __future__ import annotations

import argparse

import paths
from load import drive
from run import DATA, Target, one_request, start_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    db = DATA / "a10k.db"
    server = start_app(db, "quick")
    try:
        fields, _ = paths.discover(server.url)
        target = Target.sqlite("server", server, db, fields)
        one_request(target, "graphql_persisted_register")  # the hash alone runs it from now on
        for path in args.paths:
            drive(server.url, args.concurrency, 3, target.env(path))  # warm up
            for _ in range(2):
                server.settle()
                before = server.cpu_seconds()
                result = drive(server.url, args.concurrency, args.seconds, target.env(path))
                cpu = (server.cpu_seconds() - before) / max(result.requests, 1) * 1000
                print(
                    f"{path:16} {result.rps:8.1f} req/s  {cpu:6.2f} ms CPU/request  "
                    f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
