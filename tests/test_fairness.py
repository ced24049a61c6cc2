"""Fair shares between tenants (docs/protection.md): each attack of the issue, played
against a real uvicorn server (one worker, so every bound "per process" is the server's), is
refused as the contract says, and a second organisation that keeps GETting one of its
assistants all along keeps its normal latency.

The victim is a process of its own (tests/helpers/victim.py) that GETs
`/orgs/c/assistants/{id}` every 25 ms; its quiet median is measured first. Under each attack its
median stays within 5 times the quiet one (a quiet median under 20 ms counts as 20 ms, so a
loaded machine does not make the check flaky), every GET is a 200, and none takes longer than
a generous ceiling. These are bounds on another process's latency, not timings of our own code.

One server per database for the whole module (SQLite, and PostgreSQL with TEST_POSTGRES_URL);
the settings are the contract's defaults except where a smaller one keeps the test short:
GRAPHQL_POINTS (so that keyless introspection runs out after a few requests) and
FORWARDED_ALLOW_IPS=127.0.0.1 (so that keyless attackers are several client addresses).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.helpers import attacks
from tests.helpers.attacks import Streams, Tenant, bearer, forwarded
from tests.helpers.server_process import Server
from tests.helpers.victim import Victim, Window

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
FLOOR_MS = 20.0  # a quiet median below this counts as this
P90_FLOOR_MS = 40.0  # a quiet p90 below this counts as this
FACTOR = 5.0  # the victim's p50 and p90 under attack, at most this times the quiet ones
CEILING_MS = 5_000.0  # no victim GET takes longer, whatever the attack
POINTS = 600  # GRAPHQL_POINTS of the server (the contract's default is 10,000)
RATE_LIMIT = 500  # the contract's default request limit, per minute
VICTIM_KEYS = 10  # the victim's GETs spread over its keys stay far below the request limit
MAX_RESPONSE_BYTES = 8 * MIB  # GRAPHQL_MAX_RESPONSE_BYTES's default
WS_PENDING = 50  # websockets per client address that have not sent connection_init
WS_INIT_SECONDS = 3.0  # GRAPHQL_WS_INIT_TIMEOUT's default
ORG_STREAMS = 100  # EVENTS_MAX_STREAMS_PER_ORG's default
KEY_STREAMS = 20  # EVENTS_MAX_STREAMS_PER_KEY's default


@dataclass
class Arena:
    server: Server
    database_url: str
    victim: Victim
    tenant: Tenant  # the victim's organisation
    attacker: Tenant
    quiet: Window

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid  # `serve --workers 1`: uvicorn runs in this process

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.server.base_url, timeout=60, **kwargs)

    def memory_kb(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def reset_peak(self) -> None:
        """VmHWM back to the current RSS (Linux 4.0+)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def unharmed(self, since: float, until: float, attack: str) -> Window:
        """Asserts that the victim's GETs of [since, until) kept their normal latency: half
        within FACTOR times the quiet median (at least FLOOR_MS), on SQLite also nine in ten
        within FACTOR times the quiet p90 (at least P90_FLOOR_MS), every one a 200 within
        CEILING_MS."""
        window = self.victim.window(since, until)
        print(
            f"\n{attack}: quiet {self.quiet.summary()}\n{attack}: under attack {window.summary()}"
        )
        assert len(window.samples) >= 5, f"{attack}: the victim hardly got an answer"
        assert window.statuses == {200}, f"{attack}: the victim was refused or got no answer"
        median_bound = FACTOR * max(self.quiet.p50, FLOOR_MS)
        assert window.p50 <= median_bound, (
            f"{attack}: victim median {window.p50:.1f} ms > {median_bound:.1f} ms"
        )
        p90_bound = FACTOR * max(self.quiet.p90, P90_FLOOR_MS)
        # (SQLite: the server's own CPU is what the tenants share, and what its fair shares
        # divide; PostgreSQL's backends, on the same cores here, do the database's part of an
        # expensive request outside the server: there the median is checked)
        assert not self.database_url.startswith("sqlite") or window.p90 <= p90_bound, (
            f"{attack}: victim p90 {window.p90:.1f} ms > {p90_bound:.1f} ms"
        )
        assert window.worst <= CEILING_MS, f"{attack}: a victim GET took {window.worst:.0f} ms"
        return window


def _database(request: pytest.FixtureRequest, tmp: Path) -> Iterator[str]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp / "assistants.db")
        yield f"sqlite+aiosqlite:///{tmp / 'assistants.db'}"
        return
    postgres: Any = request.getfixturevalue("postgres_template")  # conftest's PostgresServer
    name = postgres.take()
    try:
        yield postgres.url_for(name)
    finally:
        postgres.drop_later(name)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def arena(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Arena]:
    tmp = tmp_path_factory.mktemp(f"fairness-{request.param}")
    databases = _database(request, tmp)
    database_url = next(databases)
    settings = Settings(
        database_url=database_url,
        avatars_dir=tmp / "avatars",
        public_url="https://api.test",
        _env_file=None,
    )
    env = {
        "RATE_LIMIT": f"{RATE_LIMIT}/minute",
        "GRAPHQL_POINTS": str(POINTS),
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    server = Server(settings, tmp, workers=1, env=env).start()
    try:
        tenant = attacks.create_org(database_url, "Victim")
        attacker = attacks.create_org(database_url, "Attacker")
        asyncio.run(_populate(server.base_url, tenant, attacker))
        path = f"/orgs/c/assistants/{tenant.assistant_id}"
        with Victim(server.base_url, path, tenant.keys[1:], tmp / "victim.txt", 25) as victim:
            time.sleep(1.0)  # warm
            since = time.monotonic()
            time.sleep(3.0)
            quiet = victim.window(since, time.monotonic())
            assert len(quiet.samples) >= 20, quiet.summary()
            assert quiet.statuses == {200}, quiet.summary()
            yield Arena(server, database_url, victim, tenant, attacker, quiet)
    finally:
        server.stop()
        next(databases, None)


async def _populate(base_url: str, tenant: Tenant, attacker: Tenant) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await attacks.add_keys(http, tenant, VICTIM_KEYS)
        await attacks.add_keys(http, attacker, 12)
        await attacks.add_assistant(http, tenant, "Victim's assistant")
        await attacks.add_assistant(http, attacker, "Attacker's assistant")


# --- 1. idle websockets ----------------------------------------------------------------------


async def test_idle_websockets_are_capped_per_address_and_closed_after_3_s(arena: Arena) -> None:
    since = time.monotonic()
    healthz: list[int] = []

    async def keep_asking() -> None:
        async with arena.client() as http:
            for _ in range(20):
                healthz.append((await http.get("/healthz")).status_code)
                await asyncio.sleep(0.2)

    sockets, _ = await asyncio.gather(
        attacks.idle_sockets(arena.server.base_url, 200, "203.0.113.50", hold=8.0),
        keep_asking(),
    )
    arena.unharmed(since, time.monotonic(), "200 idle websockets")
    print(f"websockets: {dict(attacks.tally(sockets))}")
    accepted = [s for s in sockets if s.outcome in ("accepted", "open")]
    refused = [s for s in sockets if s.outcome == "refused"]
    assert len(accepted) + len(refused) == 200
    assert len(accepted) <= WS_PENDING
    assert len(accepted) >= WS_PENDING // 2  # the attack did reach the cap
    assert {s.code for s in refused} == {429}  # refused before the upgrade
    assert {s.code for s in accepted} == {4408}
    assert all(WS_INIT_SECONDS - 0.5 <= s.held <= WS_INIT_SECONDS + 3 for s in accepted)
    assert healthz == [200] * 20
    # the slots are free again once they closed: a socket that says hello is welcome
    seen = await attacks.ws_operations(arena.server.base_url, arena.attacker.keys[1], 1)
    assert seen == {"next": 1}


# --- 2. large answers from stored data -------------------------------------------------------


async def test_large_configs_are_bounded_and_a_huge_answer_is_stopped(arena: Arena) -> None:
    attacker = arena.attacker
    async with arena.client() as http:
        # a config over 64 KiB is refused and names the field; nothing is stored
        listed = f"/orgs/c/assistants/{attacker.assistant_id}/integrations"
        too_big = {"integration_id": "internal", "config": attacks.config_of(65 * 1024)}
        refused = await http.post(listed, json=too_big, headers=attacker.headers)
        assert refused.status_code == 400, refused.text[:300]
        problem = refused.json()
        assert problem["code"] == "VALIDATION_FAILED"
        assert [error["path"] for error in problem["errors"]] == ["config"]
        # as many just-under-64-KiB configs as an assistant holds
        statuses = await attacks.fill_with_configs(
            http, attacker, attacker.assistant_id, 100, attacks.CONFIG_BOUND - 512
        )
        assert statuses == [201] * 100
        stored = await http.get(listed, headers=attacker.headers)
        assert len(stored.json()) == 100

        rss_before = arena.memory_kb("VmRSS")
        arena.reset_peak()
        since = time.monotonic()
        answers: list[tuple[int, dict[str, Any], int]] = []
        key = attacker.keys[2]
        for _ in range(15):  # three at once, again and again, for 4 s at most (<= 450 points)
            if time.monotonic() > since + 4.0:
                break
            three = [attacks.big_answer(http, attacker, key) for _ in range(3)]
            answers += await asyncio.gather(*three)
        until = time.monotonic()
        peak = arena.memory_kb("VmHWM")
    print(
        f"\nlarge answers: {len(answers)} requests, sizes {sorted({a[2] for a in answers})}; "
        f"RSS {rss_before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB"
    )
    for status, body, size in answers:
        assert status == 200
        assert body.get("data") is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == "RESPONSE_TOO_LARGE"
        assert error["extensions"]["maxBytes"] == MAX_RESPONSE_BYTES
        assert size < 64 * 1024
    arena.unharmed(since, until, "10 aliases of integrations { config }")
    assert peak < 1024 * 1024  # KiB: under 1 GiB
    # three answers at once (64 MiB each, unbounded) never held much more than the bound each
    assert peak - rss_before < 256 * 1024


async def test_entities_and_nodes_take_at_most_100(arena: Arena) -> None:
    key, assistant_id = arena.attacker.keys[3], arena.attacker.assistant_id
    async with arena.client() as http:
        refused = await attacks.many_entities(http, key, assistant_id, 240)
        allowed = await attacks.many_entities(http, key, assistant_id, 100)
        node_id = (
            await http.post(
                "/graphql",
                json={"query": f'{{ assistant(orgId: "c", id: "{assistant_id}") {{ id }} }}'},
                headers=bearer(key),
            )
        ).json()["data"]["assistant"]["id"]
        too_many_nodes = await attacks.many_nodes(http, key, node_id, 101)
    assert (refused.get("data") or {}).get("_entities") is None  # nothing resolved
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "errors" not in allowed, allowed
    assert len(allowed["data"]["_entities"]) == 100
    assert too_many_nodes["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


# --- 3. introspection without a key ----------------------------------------------------------


async def test_keyless_introspection_runs_out_of_points(arena: Arena) -> None:
    since = time.monotonic()
    # each sender until it has been refused for 2 s (at most 60 s)
    senders = await attacks.introspection_senders(arena.server.base_url, 4, 60.0, linger=2.0)
    until = time.monotonic()
    for sender in senders:
        print(
            f"\n{sender.address}: {sender.statuses.count(200)} answered, "
            f"{sender.statuses.count(429)} refused, cost {sorted(set(sender.costs))}, "
            f"points left {sender.points}"
        )
    for sender in senders:
        answered = sender.statuses.count(200)
        assert 429 in sender.statuses
        assert set(sender.statuses) == {200, 429}
        # introspection costs as 2,000 items: at least 20 points a request
        assert min(sender.costs) >= 2_000
        assert answered <= POINTS // 20
        assert sender.points == sorted(sender.points, reverse=True)
    arena.unharmed(since, until, "4 keyless senders of 10 aliased introspections")


# --- 4. stream slots -------------------------------------------------------------------------


async def test_one_organisation_gets_its_share_of_streams(arena: Arena) -> None:
    keys = arena.attacker.keys[4:10]  # 6 keys: 5 x 20 fill the organisation's 100
    streams = Streams(arena.server.base_url)
    since = time.monotonic()
    try:
        opened = [
            (await streams.try_open(key)).status_code
            for key in keys[:5]
            for _ in range(KEY_STREAMS)
        ]
        assert opened == [200] * ORG_STREAMS
        refused = await streams.try_open(keys[5])  # this key has none open
        body = json.loads(refused.content) if refused.status_code != 200 else {}
        victims = await streams.try_open(arena.tenant.keys[0])
        await asyncio.sleep(1.0)  # the streams stay open while the victim works
        until = time.monotonic()
    finally:
        await streams.close()
    arena.unharmed(since, until, f"{ORG_STREAMS} open streams of one organisation")
    assert refused.status_code in (429, 503)
    assert body["code"] == "TOO_MANY_STREAMS"
    assert victims.status_code == 200


# --- 5. persisted documents without a key ----------------------------------------------------


async def test_only_a_key_registers_a_persisted_document(arena: Arena) -> None:
    query = "query Fairness { __typename }"
    async with arena.client() as http:
        keyless = await http.post(
            "/graphql", json=attacks.persisted(query, query), headers=forwarded("198.51.100.99")
        )
        by_hash = await http.post(
            "/graphql", json=attacks.persisted(None, query), headers=arena.attacker.headers
        )
        oversized = attacks.oversized_document(32 * 1024 + 1)
        too_long = await http.post(
            "/graphql", json={"query": oversized}, headers=arena.attacker.headers
        )
        just_fits = await http.post(
            "/graphql",
            json={"query": attacks.oversized_document(32 * 1024)},
            headers=arena.attacker.headers,
        )
    print(f"keyless registration: {keyless.status_code} {keyless.text[:300]}")
    [not_found] = by_hash.json()["errors"]
    assert not_found["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"  # nothing stored
    assert "key" in (keyless.text + by_hash.text).lower()  # the hint: registration needs a key
    assert too_long.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert just_fits.json().get("data") == {"__typename": "Query"}, just_fits.text


# --- 6. websocket operations, /metrics, headers ----------------------------------------------


async def test_websocket_operations_count_for_the_request_limit(arena: Arena) -> None:
    since = time.monotonic()
    seen = await attacks.ws_operations(
        arena.server.base_url, arena.attacker.keys[11], RATE_LIMIT + 20
    )
    until = time.monotonic()
    arena.unharmed(since, until, f"{RATE_LIMIT + 20} websocket operations")
    print(f"websocket operations: {dict(seen)}")
    assert set(seen) == {"next", "RATE_LIMITED"}
    assert RATE_LIMIT - 5 <= seen["next"] <= RATE_LIMIT
    assert seen["RATE_LIMITED"] >= 20


async def test_metrics_answer_loopback_only_and_json_is_not_cached(arena: Arena) -> None:
    async with arena.client() as http:
        local = await http.get("/metrics")
        proxied = await http.get("/metrics", headers=forwarded("203.0.113.7"))
        one = await http.get(
            f"/orgs/c/assistants/{arena.tenant.assistant_id}", headers=arena.tenant.headers
        )
        missing = await http.get("/orgs/c/assistants/nope", headers=arena.tenant.headers)
    assert local.status_code == 200
    assert proxied.status_code in (401, 403, 404), proxied.status_code
    assert arena.tenant.org_id not in proxied.text
    for answer in (one, missing):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
