"""`python bench/quick.py PATH... [--seconds N] [--concurrency C] [--rounds R]`: requests/s,
server CPU per request, p50 and p99 of some paths (at concurrency 16 unless told), on the server
only (no floor), the paths taken in turn R times (default 2); then each path's median CPU per
request and the first path's over it (per core, as the targets count). A quick check while
working on one path, against the data/bench/a10k.db that `make bench` left (the environment
paths publish release 1 of the bench assistants to `production` once). Besides the bench's
paths: `healthz` (no key, no database: what every request costs) and `key_current` (`GET
…/api-keys/current`: a key lookup and nothing else). `make bench` is the measurement."""

from __future__ import annotations

import argparse
import statistics

import paths
from load import Template, drive, write_templates
from run import DATA, Target, one_request, start_app

EXTRA = {
    "healthz": Template("GET", "/healthz"),
    "key_current": Template("GET", "/orgs/c/api-keys/current"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    db = DATA / "a10k.db"
    server = start_app(db, "quick")
    cpu: dict[str, list[float]] = {path: [] for path in args.paths}
    try:
        fields, _ = paths.discover(server.url)
        target = Target.sqlite("server", server, db, fields)
        for name, template in EXTRA.items():
            write_templates(target.templates(name), [template])
        one_request(target, "graphql_persisted_register")  # the hash alone runs it from now on
        if any(path.startswith("environment_") for path in args.paths):
            target.publish_production(again=False)  # release 1 in `production`, once per file
        for path in dict.fromkeys(args.paths):
            drive(server.url, args.concurrency, 2, target.env(path))  # warm up
        for _ in range(args.rounds):
            for path in args.paths:
                server.settle()
                before = server.cpu_seconds()
                result = drive(server.url, args.concurrency, args.seconds, target.env(path))
                ms = (server.cpu_seconds() - before) / max(result.requests, 1) * 1000
                cpu[path].append(ms)
                print(
                    f"{path:16} {result.rps:8.1f} req/s  {ms:6.3f} ms CPU/request  "
                    f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms",
                    flush=True,
                )
    finally:
        server.stop()
    first = statistics.median(cpu[args.paths[0]])
    for path, values in cpu.items():
        median = statistics.median(values)
        print(
            f"{path:16} median {median:6.3f} ms CPU/request ({min(values):.3f}-{max(values):.3f})"
            f"  {args.paths[0]} over it: {first / median:4.2f}x"
        )


if __name__ == "__main__":
    main()
