"""The attack mix of `make bench` (issue 23): the real server under each attack of the issue,
one at a time and then all at once, while a second organisation keeps GETting one of its
assistants; prints that tenant's p50/p99 quiet and under each attack, and the server's peak RSS.

`python bench/attacks.py` (or `python bench/run.py --only attacks`) runs this part alone, in
about 90 seconds. The server is `python -m app serve` (one worker, pinned to core 0 like the rest
of the bench) on a fresh SQLite database with the contract's default limits, and
FORWARDED_ALLOW_IPS=127.0.0.1 so that keyless attackers are several client addresses (they name
theirs in X-Forwarded-For, as behind a proxy). The attacks are tests/helpers/attacks.py, the
victim tests/helpers/victim.py (its own process, one GET every 10 ms, over 20 keys so that it
stays within the per-key request limit).

Environment: BENCH_ATTACK_SECONDS (each attack, default 6; the mix runs twice as long).
Targets: the victim's p99 under each attack at most 5 x its quiet p99, peak RSS under 1 GiB.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from procs import ROOT, Server
from websockets.exceptions import WebSocketException

sys.path.insert(0, str(ROOT))

from tests.helpers import attacks
from tests.helpers.attacks import Streams, Tenant, forwarded
from tests.helpers.victim import Victim, Window

BENCH = Path(__file__).resolve().parent
DATA = ROOT / "data" / "bench"
SECONDS = float(os.environ.get("BENCH_ATTACK_SECONDS", "6"))
FACTOR = 5.0
VICTIM_KEYS = 20  # one GET every 10 ms spread over them: 300 a minute each, within 500
RSS_LIMIT_MB = 1024.0
STARTED = time.monotonic()

Attack = Callable[["Arena", float], Awaitable[Counter[str]]]
# what an attacker may meet when the server does not answer in time: counted, not raised
ATTACKER_ERRORS = (httpx.HTTPError, OSError, TimeoutError, WebSocketException, AssertionError)


def say(message: str) -> None:
    sys.stderr.write(f"[{time.monotonic() - STARTED:5.0f} s] attacks: {message}\n")


class Arena:
    def __init__(self, server: Server, victim: Tenant, attacker: Tenant) -> None:
        self.server, self.victim, self.attacker = server, victim, attacker

    @property
    def url(self) -> str:
        return self.server.url


# --- the attacks, each for `seconds`; what the attacker got, counted ------------------------


async def idle_websockets(arena: Arena, seconds: float) -> Counter[str]:
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0.5:  # waves of 200 from one address
        sockets = await attacks.idle_sockets(arena.url, 200, "203.0.113.50", hold=left)
        seen.update(f"{s.outcome} {s.code}" for s in sockets)
    return seen


async def big_answers(arena: Arena, seconds: float) -> Counter[str]:
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    keys = arena.attacker.keys[1:11]

    async def worker(turn: int) -> None:
        async with httpx.AsyncClient(base_url=arena.url, timeout=120) as http:
            while time.monotonic() < deadline:
                key = keys[turn % len(keys)]
                turn += 3
                try:
                    status, body, _ = await attacks.big_answer(http, arena.attacker, key)
                except ATTACKER_ERRORS as exc:
                    seen[f"no answer ({type(exc).__name__})"] += 1
                    continue
                seen[code_of(status, body)] += 1

    await asyncio.gather(*(worker(i) for i in range(3)))
    return seen


async def introspection(arena: Arena, seconds: float) -> Counter[str]:
    try:
        senders = await attacks.introspection_senders(arena.url, 4, seconds)
    except ATTACKER_ERRORS as exc:
        return Counter({f"no answer ({type(exc).__name__})": 1})
    return Counter(str(status) for sender in senders for status in sender.statuses)


async def stream_slots(arena: Arena, seconds: float) -> Counter[str]:
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    streams = Streams(arena.url)
    try:
        for key in arena.attacker.keys[11:17]:  # 6 keys: up to 120 streams asked for
            for _ in range(20):
                response = await streams.try_open(key)
                if response.status_code == 200:
                    seen["200"] += 1
                else:
                    seen[code_of(response.status_code, json.loads(response.content))] += 1
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    finally:
        await streams.close()
    return seen


async def keyless_persisted(arena: Arena, seconds: float) -> Counter[str]:
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + seconds

    async def sender(i: int) -> None:
        async with httpx.AsyncClient(base_url=arena.url, timeout=60) as http:
            n = 0
            while time.monotonic() < deadline:
                n += 1
                text = attacks.oversized_document(30 * 1024) + f"{i}-{n}"
                body = attacks.persisted(text, text)
                try:
                    answer = await http.post(
                        "/graphql", json=body, headers=forwarded(f"192.0.2.{i}")
                    )
                except ATTACKER_ERRORS as exc:
                    seen[f"no answer ({type(exc).__name__})"] += 1
                    continue
                seen[code_of(answer.status_code, answer.json())] += 1

    await asyncio.gather(*(sender(i) for i in range(3)))
    return seen


async def subscribe_flood(arena: Arena, seconds: float) -> Counter[str]:
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            seen.update(await attacks.ws_operations(arena.url, arena.attacker.keys[17], 100))
        except ATTACKER_ERRORS as exc:
            seen[f"no answer ({type(exc).__name__})"] += 1
    return seen


def code_of(status: int, body: Any) -> str:
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors:
        return f"{status} {errors[0].get('extensions', {}).get('code', '?')}"
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return f"{status} {body['code']}"
    return str(status)


ATTACKS: dict[str, Attack] = {
    "idle websockets (200 at once, one address)": idle_websockets,
    "10 aliases of integrations { config }": big_answers,
    "keyless aliased introspection (4 senders)": introspection,
    "stream slots (one org, 6 keys)": stream_slots,
    "keyless persisted documents of 30 KiB": keyless_persisted,
    "websocket subscribe flood": subscribe_flood,
}


# --- the run ---------------------------------------------------------------------------------


def start_server(db: Path) -> Server:
    for stale in DATA.glob(f"{db.name}*"):
        stale.unlink()
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{db}", "FORWARDED_ALLOW_IPS": "127.0.0.1"}
    argv = [sys.executable, "-m", "app", "serve", "--port", "{port}", "--workers", "1"]
    server = Server("server-attacks", argv, env, DATA / "server-attacks.log")
    server.wait_ready("/healthz")
    return server


async def populate(url: str, victim: Tenant, attacker: Tenant) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        await attacks.add_keys(http, victim, VICTIM_KEYS)
        await attacks.add_keys(http, attacker, 20)
        await attacks.add_assistant(http, victim, "Victim's assistant")
        assistant_id = await attacks.add_assistant(http, attacker, "Attacker's assistant")
        statuses = await attacks.fill_with_configs(
            http, attacker, assistant_id, 100, attacks.CONFIG_BOUND - 512
        )
        if set(statuses) != {201}:
            say(f"integrations of ~64 KiB: {Counter(statuses)} (fewer than 100 stored)")


async def play(arena: Arena, chosen: list[Attack], seconds: float) -> list[Counter[str]]:
    return list(await asyncio.gather(*(attack(arena, seconds) for attack in chosen)))


def figures(window: Window) -> dict[str, Any]:
    return {
        "gets": len(window.samples),
        "p50_ms": round(window.p50, 2),
        "p99_ms": round(window.p99, 2),
        "max_ms": round(window.worst, 2),
        "failed": sum(1 for s in window.samples if s.status != 200),
    }


def run() -> dict[str, Any]:
    """Plays the attacks; returns the figures (also printed by `render`)."""
    DATA.mkdir(parents=True, exist_ok=True)
    db = DATA / "attacks.db"
    server = start_server(db)
    database_url = f"sqlite+aiosqlite:///{db}"
    try:
        victim_org = attacks.create_org(database_url, "Victim")
        attacker = attacks.create_org(database_url, "Attacker")
        say("setup: keys, assistants, 100 integrations of ~64 KiB")
        asyncio.run(populate(server.url, victim_org, attacker))
        arena = Arena(server, victim_org, attacker)
        path = f"/orgs/c/assistants/{victim_org.assistant_id}"
        out = DATA / "victim.txt"
        rows: list[dict[str, Any]] = []
        with Victim(server.url, path, victim_org.keys[1:], out, pace_ms=10) as victim:
            time.sleep(1.0)
            server.reset_peak()
            since = time.monotonic()
            time.sleep(SECONDS)
            quiet = figures(victim.window(since, time.monotonic()))
            quiet_rss = server.memory_kb("VmHWM") / 1024
            rows.append({"attack": "quiet", **quiet, "peak_rss_mb": round(quiet_rss, 1)})
            say(f"quiet: p50 {quiet['p50_ms']} ms, p99 {quiet['p99_ms']} ms")
            phases = [(name, [attack], SECONDS) for name, attack in ATTACKS.items()]
            phases.append(("all of them at once", list(ATTACKS.values()), 2 * SECONDS))
            for name, chosen, seconds in phases:
                time.sleep(1.0)  # what the last attack left queued (the victim never lets the
                server.reset_peak()  # server idle, so procs.Server.settle would not return)
                since = time.monotonic()
                seen = asyncio.run(play(arena, chosen, seconds))
                window = victim.window(since, time.monotonic())
                rss = server.memory_kb("VmHWM") / 1024
                total: Counter[str] = sum(seen, Counter())
                row = {"attack": name, **figures(window), "peak_rss_mb": round(rss, 1)}
                row["attacker_saw"] = dict(total.most_common())
                rows.append(row)
                say(f"{name}: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, RSS {rss:.0f} MB")
        peak = max(row["peak_rss_mb"] for row in rows)
        return {"seconds_per_attack": SECONDS, "rows": rows, "peak_rss_mb": peak}
    finally:
        server.stop()


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    quiet = rows[0]
    lines = [
        "",
        "Attack mix (issue 23): the second tenant's GET /orgs/c/assistants/{id} "
        f"({result['seconds_per_attack']:g} s per attack, SQLite, default limits)",
        "",
        f"| {'attack':44} | GETs | p50 ms | p99 ms | max ms | failed | p99 / quiet | peak RSS MB |",
        f"| {'-' * 44} | ---: | -----: | -----: | -----: | -----: | ----------: | ----------: |",
    ]
    for row in rows:
        ratio = row["p99_ms"] / quiet["p99_ms"] if quiet["p99_ms"] else float("nan")
        lines.append(
            f"| {row['attack']:44} | {row['gets']:4} | {row['p50_ms']:6.1f} | "
            f"{row['p99_ms']:6.1f} | {row['max_ms']:6.1f} | {row['failed']:6} | "
            f"{ratio:11.2f} | {row['peak_rss_mb']:11.1f} |"
        )
    lines += ["", "What the attackers got:"]
    for row in rows[1:]:
        saw = ", ".join(f"{code} x{n}" for code, n in row["attacker_saw"].items())
        lines.append(f"- {row['attack']}: {saw}")
    lines += ["", "Targets:"]
    for row in rows[1:]:
        bound = FACTOR * quiet["p99_ms"]
        ok = row["p99_ms"] <= bound and row["failed"] == 0
        lines.append(
            f"- {'ok  ' if ok else 'MISS'} victim p99 under {row['attack']}: "
            f"{row['p99_ms']:.1f} ms (at most {FACTOR:g} x quiet p99 = {bound:.1f} ms, no failure)"
        )
    peak = result["peak_rss_mb"]
    lines.append(
        f"- {'ok  ' if peak < RSS_LIMIT_MB else 'MISS'} server peak RSS {peak:.0f} MB "
        f"(under {RSS_LIMIT_MB:.0f} MB)"
    )
    return "\n".join(lines)


def main() -> None:
    result = run()
    print(render(result))
    (BENCH / "results-attacks.json").write_text(json.dumps(result, indent=2) + "\n")
    say(f"done; figures in {BENCH / 'results-attacks.json'}")


if __name__ == "__main__":
    main()
