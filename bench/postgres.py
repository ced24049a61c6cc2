"""The PostgreSQL of the bench's PostgreSQL half: a throwaway database, or BENCH_POSTGRES_URL.

Without BENCH_POSTGRES_URL it does what `.ci/run` does: starts the installed cluster
(`pg_ctlcluster 15 main start`), gives the bench a role and a fresh database (psql as the
postgres user, through `su` when root, else `sudo -n -u postgres`) and drops that database at
the end. With BENCH_POSTGRES_URL (a `postgresql+asyncpg://` URL of a database the bench may
wipe) it uses that database and drops nothing.

When the server is on this machine its postmaster and existing backends are pinned to the
load-generator core (`taskset -a -p -c 1 PID`; new backends inherit it) for the half, then given
back their former CPUs; the CPU time of the backends of the bench's database is read from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from procs import LOADGEN_CORE, TICKS
from seed import libpq_url

PG_VERSION = "15"
PG_CLUSTER = "main"
PG_ROLE = "assistants_bench"
PG_PASSWORD = "assistants_bench"
PG_DATABASE = "assistants_bench"


class Unavailable(Exception):
    """Why the PostgreSQL half cannot run here."""


def as_postgres(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """argv as the postgres user (from /, which that user can read)."""
    if os.geteuid() == 0:
        command = ["su", "postgres", "-c", shlex.join(argv)]
    else:
        command = ["sudo", "-n", "-u", "postgres", *argv]
    return subprocess.run(command, cwd="/", capture_output=True, text=True, check=False)


def as_root(argv: list[str]) -> subprocess.CompletedProcess[str]:
    command = argv if os.geteuid() == 0 else ["sudo", "-n", *argv]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def cluster_port() -> str:
    if not shutil.which("pg_ctlcluster") or not shutil.which("pg_lsclusters"):
        raise Unavailable(
            "pg_ctlcluster not found (no PostgreSQL installed; or set BENCH_POSTGRES_URL)"
        )
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False)
    for line in listed.stdout.splitlines():
        fields = line.split()
        if fields[:2] == [PG_VERSION, PG_CLUSTER]:
            return fields[2]
    raise Unavailable(f"no PostgreSQL cluster {PG_VERSION}/{PG_CLUSTER} (pg_lsclusters)")


def start_cluster(port: str) -> None:
    # starting a cluster that already runs exits non-zero: that is fine
    as_root(["pg_ctlcluster", PG_VERSION, PG_CLUSTER, "start"])
    for _ in range(30):
        ready = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", port]
        if subprocess.run(ready, check=False).returncode == 0:
            return
        time.sleep(1)
    raise Unavailable(f"PostgreSQL {PG_VERSION}/{PG_CLUSTER} did not start on port {port}")


def psql_admin(port: str, sql: str) -> None:
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-p", port, "-d", "postgres", "-c", sql]
    done = as_postgres(argv)
    if done.returncode != 0:
        raise Unavailable(f"psql as postgres failed: {(done.stderr or done.stdout).strip()[:300]}")


def parent(pid: int) -> int | None:
    """The parent process id of a process on this machine, None when there is none such."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


class Postgres:
    """The database of the half: its URL, and the processes of its server on this machine."""

    def __init__(self, url: str, throwaway_port: str | None = None) -> None:
        self.url = url  # postgresql+asyncpg://…
        self.libpq = libpq_url(url)
        self.throwaway_port = throwaway_port  # the cluster's port when the bench made the db
        self.database = url.rsplit("/", 1)[-1].split("?", 1)[0]
        self.postmaster: int | None = None
        self.former_cpus: set[int] | None = None

    @property
    def shown(self) -> str:
        """The URL without its password."""
        scheme, rest = self.url.split("://", 1)
        return f"{scheme}://…@{rest.rsplit('@', 1)[-1]}"

    def drop(self) -> None:
        """Drops the database if the bench made it."""
        if self.throwaway_port is not None:
            sql = f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"
            with contextlib.suppress(Unavailable):
                psql_admin(self.throwaway_port, sql)

    # -- the server's processes ---------------------------------------------------------------

    def find_postmaster(self) -> int | None:
        """The postmaster of the server, when it runs on this machine: the parent of a backend
        of ours (found by the backend's process id)."""
        import asyncpg

        async def parent_of_backend() -> int | None:
            conn = await asyncpg.connect(self.libpq)
            try:  # read while the backend lives
                return parent(await conn.fetchval("SELECT pg_backend_pid()"))
            finally:
                await conn.close()

        postmaster = asyncio.run(parent_of_backend())
        if postmaster is None:
            return None  # another machine (or another pid namespace)
        if "postgres" not in Path(f"/proc/{postmaster}/comm").read_text():
            return None
        return postmaster

    def children(self) -> list[int]:
        if self.postmaster is None:
            return []
        pids = (int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit())
        return [pid for pid in pids if parent(pid) == self.postmaster]

    def pin(self) -> str:
        """Pins the postmaster and its backends to the load-generator core; '' or why not."""
        self.postmaster = self.find_postmaster()
        if self.postmaster is None:
            return "PostgreSQL is not on this machine: not pinned to a core"
        if not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
            return "PostgreSQL not pinned (no taskset, or a single CPU)"
        self.former_cpus = os.sched_getaffinity(self.postmaster)
        failed = self.set_cpus(LOADGEN_CORE)
        if failed:
            return f"PostgreSQL could not be pinned to core {LOADGEN_CORE}: {failed}"
        return ""

    def unpin(self) -> None:
        """Gives the postmaster and its backends back the CPUs they had."""
        if self.former_cpus is not None:
            self.set_cpus(",".join(str(c) for c in sorted(self.former_cpus)))
            self.former_cpus = None

    def set_cpus(self, cpus: str) -> str:
        """taskset on the postmaster and its children; '' or the first error."""
        error = ""
        for pid in [p for p in [self.postmaster] if p is not None] + self.children():
            done = as_root(["taskset", "-a", "-p", "-c", cpus, str(pid)])
            if done.returncode != 0 and Path(f"/proc/{pid}").exists() and not error:
                error = done.stderr.strip()[:200]
        return error

    def cpu_ticks(self) -> dict[int, int]:
        """utime + stime so far (clock ticks) of each backend now serving our database (its
        process title names it)."""
        ticks = {}
        marker = f" {self.database} ".encode()
        for pid in self.children():
            try:
                if marker not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
        return ticks


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds the backends spent between two `cpu_ticks` (a backend that ended in between
    is not counted; one that started counts from zero)."""
    return sum(t - before.get(pid, 0) for pid, t in after.items()) / TICKS


def provide() -> Postgres:
    """BENCH_POSTGRES_URL's database, or a throwaway one on the local cluster; raises
    Unavailable with the reason when there is neither."""
    given = os.environ.get("BENCH_POSTGRES_URL", "")
    if given:
        if not given.startswith("postgresql+asyncpg://"):
            raise Unavailable("BENCH_POSTGRES_URL must be a postgresql+asyncpg:// URL")
        return Postgres(given)
    port = cluster_port()
    start_cluster(port)
    # the role needs no rights beyond owning its database
    psql_admin(
        port,
        f"""DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_ROLE}') THEN
            CREATE ROLE {PG_ROLE} LOGIN PASSWORD '{PG_PASSWORD}';
          ELSE
            ALTER ROLE {PG_ROLE} LOGIN PASSWORD '{PG_PASSWORD}';
          END IF;
        END $$;""",
    )
    psql_admin(port, f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
    psql_admin(port, f"CREATE DATABASE {PG_DATABASE} OWNER {PG_ROLE}")
    url = f"postgresql+asyncpg://{PG_ROLE}:{PG_PASSWORD}@127.0.0.1:{port}/{PG_DATABASE}"
    return Postgres(url, throwaway_port=port)


def seed(db: Postgres, meta_file: Path, assistants: int, orgs: int = 1) -> dict[str, Any]:
    """Migrates the database and seeds `orgs` organisations sharing `assistants` assistants
    (bench/seed.py); their ids and keys, also written to `meta_file`."""
    script = str(Path(__file__).resolve().parent / "seed.py")
    argv = [sys.executable, script, db.url, "--assistants", str(assistants), "--orgs", str(orgs)]
    done = subprocess.run([*argv, "--meta", str(meta_file)], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise Unavailable(f"seeding {db.shown} failed: {last[:300]}")
    meta: dict[str, Any] = json.loads(meta_file.read_text())
    return meta
