"""Behind a proxy: FORWARDED_ALLOW_IPS. The client address (per-address
limits, the access log) comes from X-Forwarded-For only when the request's direct peer is a
trusted proxy, as the right-most address of the chain that is not a trusted proxy; from anyone
else the header is ignored. `serve` turns uvicorn's own proxy headers off, so uvicorn (which
trusts 127.0.0.1 by default) cannot let a local client spoof its way out of a limit."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.http.middleware import TrustedProxies
from app.settings import Settings
from tests.helpers.server_process import Server

LIMIT = "3/minute"


@pytest.mark.parametrize(
    ("allowed", "peer", "header", "client"),
    [
        ("", "10.0.0.1", "1.1.1.1", "10.0.0.1"),  # nobody trusted: the header is ignored
        ("10.0.0.1", "10.0.0.9", "1.1.1.1", "10.0.0.9"),  # an untrusted peer's header: ignored
        ("10.0.0.1", "10.0.0.1", None, "10.0.0.1"),  # a trusted peer without the header
        ("10.0.0.1", "10.0.0.1", "1.1.1.1", "1.1.1.1"),
        ("10.0.0.1", "10.0.0.1", "6.6.6.6, 1.1.1.1", "1.1.1.1"),  # the left is the client's word
        ("10.0.0.0/8", "10.0.0.1", "1.1.1.1, 10.2.3.4", "1.1.1.1"),  # two proxies we trust
        ("10.0.0.0/8", "10.0.0.1", "10.9.9.9, 10.2.3.4", "10.9.9.9"),  # only proxies: left-most
        ("10.0.0.1", "10.0.0.1", "1.1.1.1, 10.2.3.4", "10.2.3.4"),  # an untrusted hop decides
        ("*", "203.0.113.7", "1.1.1.1, 2.2.2.2", "1.1.1.1"),  # `*`: all trusted, left-most
        ("::1, 10.0.0.0/8", "::1", "2001:db8::5", "2001:db8::5"),
        ("10.0.0.1", "10.0.0.1", " , ", "10.0.0.1"),  # an empty chain: the peer
        ("10.0.0.1", "10.0.0.1", "not-an-address", "not-an-address"),  # what the proxy wrote
    ],
)
def test_the_right_most_untrusted_address_is_the_client(
    allowed: str, peer: str, header: str | None, client: str
) -> None:
    assert TrustedProxies(allowed).client(peer, header) == client


async def keyless(client: httpx.AsyncClient, forwarded_for: str | None) -> int:
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    return (await client.get("/orgs/c/assistants", headers=headers)).status_code


async def test_a_trusted_proxy_gives_each_client_its_own_limit(make_client: Any, caplog: Any):
    # httpx's ASGI transport connects from 127.0.0.1: the proxy
    proxied = await make_client(rate_limit=LIMIT, forwarded_allow_ips="127.0.0.1")
    assert [await keyless(proxied, "1.1.1.1") for _ in range(4)] == [401, 401, 401, 429]
    assert [await keyless(proxied, "2.2.2.2") for _ in range(3)] == [401, 401, 401]
    # what the client put left of the proxy's entry buys nothing
    assert await keyless(proxied, "7.7.7.7, 1.1.1.1") == 429
    # the proxy's own requests (no header) count against the proxy's address
    assert [await keyless(proxied, None) for _ in range(4)] == [401, 401, 401, 429]
    clients = [r.__dict__["client"] for r in caplog.records if r.name == "app.access"]
    assert clients[:4] == ["1.1.1.1"] * 4
    assert clients[4] == "2.2.2.2"
    assert clients[-1] == "127.0.0.1"


async def test_from_an_untrusted_peer_the_header_is_ignored(make_client: Any) -> None:
    direct = await make_client(rate_limit=LIMIT, forwarded_allow_ips="10.0.0.0/8")
    spoofed = [await keyless(direct, f"1.1.1.{i}") for i in range(4)]
    assert spoofed == [401, 401, 401, 429]  # one bucket: 127.0.0.1's


async def test_by_default_no_proxy_is_trusted(make_client: Any) -> None:
    assert Settings(_env_file=None).forwarded_allow_ips == ""  # type: ignore[call-arg]
    direct = await make_client(rate_limit=LIMIT)
    assert [await keyless(direct, f"1.1.1.{i}") for i in range(4)] == [401, 401, 401, 429]


def serve(settings: Settings, log_dir: Path, **env: str) -> Server:
    log_dir.mkdir(exist_ok=True)
    return Server(settings, log_dir, workers=1, env={"RATE_LIMIT": LIMIT, **env})


def logged_clients(server: Server, expected: int) -> list[str]:
    """The client addresses of the access log, once `expected` requests are in it (a line is
    written after its answer is sent, so the last one may still be on its way)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
        clients = [
            line["client"]
            for line in lines
            if line.get("logger") == "app.access" and line["path"] != "/healthz"
        ]
        if len(clients) >= expected or time.monotonic() > deadline:
            return clients
        time.sleep(0.05)


def forwarded_get(server: Server, forwarded_for: str) -> int:
    headers = {"X-Forwarded-For": forwarded_for}
    url = f"{server.base_url}/orgs/c/assistants"
    return httpx.get(url, headers=headers, timeout=10).status_code


def test_uvicorn_does_not_believe_the_header_for_the_app(settings: Settings, tmp_path: Path):
    """uvicorn trusts 127.0.0.1 by default; `serve` turns that off: without
    FORWARDED_ALLOW_IPS a local client's X-Forwarded-For changes nothing."""
    with serve(settings, tmp_path / "plain") as server:
        codes = [forwarded_get(server, f"1.1.1.{i}") for i in range(4)]
        clients = logged_clients(server, 4)
    assert codes == [401, 401, 401, 429]
    assert clients == ["127.0.0.1"] * 4


def test_a_real_server_behind_a_trusted_proxy(settings: Settings, tmp_path: Path) -> None:
    with serve(settings, tmp_path / "proxied", FORWARDED_ALLOW_IPS="127.0.0.1") as server:
        codes = [forwarded_get(server, f"1.1.1.{i}") for i in range(4)]
        spoofing = [forwarded_get(server, f"6.6.6.{i}, 2.2.2.2") for i in range(4)]
        clients = logged_clients(server, 8)
    assert codes == [401, 401, 401, 401]  # four clients, four buckets
    assert spoofing == [401, 401, 401, 429]  # one client, whatever it claims
    assert clients == [f"1.1.1.{i}" for i in range(4)] + ["2.2.2.2"] * 4
