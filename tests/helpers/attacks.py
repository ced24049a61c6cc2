"""The attacks of issue 23, played against a real server over HTTP and websockets, for
tests/test_fairness.py and the bench's attack mix (bench/attacks.py). Each returns what the
attacker saw; the callers decide what must hold.

Keyless attackers speak through a trusted proxy (the server runs with
FORWARDED_ALLOW_IPS=127.0.0.1) and name their address in `X-Forwarded-For`, so several senders
are several client addresses, none of them the loopback address the victim and the setup use.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from graphql import OperationDefinitionNode, parse, print_ast
from graphql.utilities import get_introspection_query
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = Subprotocol("graphql-transport-ws")
KIB = 1024
CONFIG_BOUND = 64 * KIB  # one integration's config, serialized


def forwarded(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/graphql"


# --- setup: organisations, keys, assistants --------------------------------------------------


@dataclass
class Tenant:
    org_id: str
    keys: list[str]
    assistant_id: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.keys[0])


def create_org(database_url: str, name: str) -> Tenant:
    """`python -m app orgs create NAME`, as an operator makes one."""
    import os

    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "app", "orgs", "create", name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    made = json.loads(done.stdout)
    return Tenant(made["org_id"], [made["api_key"]])


async def add_keys(http: httpx.AsyncClient, tenant: Tenant, count: int) -> None:
    for i in range(count):
        body = {"name": f"key {i}", "scopes": ["assistants:read", "assistants:write"]}
        made = await http.post("/orgs/c/api-keys", json=body, headers=tenant.headers)
        assert made.status_code == 201, made.text
        tenant.keys.append(made.json()["api_key"])


async def add_assistant(http: httpx.AsyncClient, tenant: Tenant, name: str) -> str:
    made = await http.post("/orgs/c/assistants", json={"name": name}, headers=tenant.headers)
    assert made.status_code == 201, made.text
    assistant_id: str = made.json()["id"]
    tenant.assistant_id = tenant.assistant_id or assistant_id
    return assistant_id


def config_of(size: int) -> dict[str, str]:
    """A config whose compact JSON is `size` bytes."""
    frame = len(json.dumps({"blob": ""}, separators=(",", ":")))
    return {"blob": "x" * (size - frame)}


async def fill_with_configs(
    http: httpx.AsyncClient, tenant: Tenant, assistant_id: str, count: int, size: int
) -> list[int]:
    """`count` integrations of `size`-byte configs, 8 at a time; their statuses."""
    url = f"/orgs/c/assistants/{assistant_id}/integrations"
    body = {"integration_id": "internal", "config": config_of(size)}
    gate = asyncio.Semaphore(8)

    async def one() -> int:
        async with gate:
            return (await http.post(url, json=body, headers=tenant.headers)).status_code

    return list(await asyncio.gather(*(one() for _ in range(count))))


# --- 1. idle websockets ----------------------------------------------------------------------


@dataclass
class Socket:
    outcome: str  # "accepted", "refused", "failed", or "open" (accepted, not closed in time)
    code: int | None  # the close code (accepted) or the HTTP status (refused)
    held: float  # seconds from the upgrade to the close


async def idle_socket(url: str, headers: dict[str, str], hold: float) -> Socket:
    """A websocket that never sends connection_init; waits at most `hold` s for the close."""
    try:
        async with connect(
            url,
            subprotocols=[PROTOCOL],
            additional_headers=headers,
            open_timeout=30,
            close_timeout=2,
            ping_interval=None,
        ) as socket:
            opened = time.monotonic()
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                await asyncio.wait_for(socket.recv(), hold)
            if socket.close_code is None:
                return Socket("open", None, time.monotonic() - opened)
            return Socket("accepted", socket.close_code, time.monotonic() - opened)
    except InvalidStatus as exc:
        return Socket("refused", exc.response.status_code, 0.0)
    except (OSError, WebSocketException, TimeoutError):
        return Socket("failed", None, 0.0)


async def idle_sockets(base_url: str, count: int, address: str, hold: float = 10.0) -> list[Socket]:
    """`count` idle websockets from one client address, opened at once."""
    url, headers = ws_url(base_url), forwarded(address)
    return list(await asyncio.gather(*(idle_socket(url, headers, hold) for _ in range(count))))


def tally(sockets: list[Socket]) -> Counter[tuple[str, int | None]]:
    return Counter((s.outcome, s.code) for s in sockets)


# --- 2. large answers from stored data -------------------------------------------------------


def aliased_configs(aliases: int) -> str:
    fields = " ".join(
        f"a{i}: assistant(orgId: $o, id: $a) {{ integrations {{ config }} }}"
        for i in range(aliases)
    )
    return f"query Big($o: ID!, $a: ID!) {{ {fields} }}"


async def big_answer(
    http: httpx.AsyncClient, tenant: Tenant, key: str, aliases: int = 10
) -> tuple[int, dict[str, Any], int]:
    """(status, body, bytes) of the aliased `assistant { integrations { config } }`."""
    body = {
        "query": aliased_configs(aliases),
        "variables": {"o": tenant.org_id, "a": tenant.assistant_id},
    }
    answer = await http.post("/graphql", json=body, headers=bearer(key))
    return answer.status_code, answer.json(), len(answer.content)


ENTITIES = "query E($r: [_Any!]!) { _entities(representations: $r) { __typename } }"
NODES = "query N($ids: [ID!]!) { nodes(ids: $ids) { id } }"


async def many_entities(
    http: httpx.AsyncClient, key: str, assistant_id: str, count: int
) -> dict[str, Any]:
    representations = [{"__typename": "Assistant", "id": assistant_id}] * count
    body = {"query": ENTITIES, "variables": {"r": representations}}
    answer: dict[str, Any] = (await http.post("/graphql", json=body, headers=bearer(key))).json()
    return answer


async def many_nodes(http: httpx.AsyncClient, key: str, node_id: str, count: int) -> dict[str, Any]:
    body = {"query": NODES, "variables": {"ids": [node_id] * count}}
    answer: dict[str, Any] = (await http.post("/graphql", json=body, headers=bearer(key))).json()
    return answer


# --- 3. introspection without a key ----------------------------------------------------------


def aliased_introspection(aliases: int) -> str:
    """The full introspection query with its `__schema` selected `aliases` times."""
    operation, *fragments = parse(get_introspection_query(descriptions=True)).definitions
    assert isinstance(operation, OperationDefinitionNode)
    schema_field = print_ast(operation.selection_set.selections[0])
    fields = "\n".join(f"s{i}: {schema_field}" for i in range(aliases))
    return "query Introspection {\n" + fields + "\n}\n" + "\n".join(map(print_ast, fragments))


@dataclass
class Sender:
    address: str
    statuses: list[int] = field(default_factory=list)
    costs: list[int] = field(default_factory=list)
    points: list[int] = field(default_factory=list)  # pointsRemaining after each answered one


async def introspect_until_refused(
    http: httpx.AsyncClient, sender: Sender, query: str, seconds: float, linger: float | None
) -> None:
    """Sends the query again and again for `seconds`; with `linger`, stops that many seconds
    after its first 429 (a refused attacker tries again, as an attacker would)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = await http.post(
            "/graphql", json={"query": query}, headers=forwarded(sender.address)
        )
        sender.statuses.append(answer.status_code)
        if answer.status_code == 200:
            cost = answer.json().get("extensions", {}).get("cost", {})
            sender.costs.append(int(cost.get("requested", -1)))
            sender.points.append(int(cost.get("pointsRemaining", -1)))
        elif answer.status_code == 429:
            if linger is not None and sender.statuses.count(429) == 1:
                deadline = min(deadline, time.monotonic() + linger)
            await asyncio.sleep(0.05)


async def introspection_senders(
    base_url: str, senders: int, seconds: float, linger: float | None = None, aliases: int = 10
) -> list[Sender]:
    """`senders` keyless addresses sending an aliased full introspection (see
    `introspect_until_refused`)."""
    query = aliased_introspection(aliases)
    crowd = [Sender(f"198.51.100.{i + 10}") for i in range(senders)]
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await asyncio.gather(
            *(introspect_until_refused(http, s, query, seconds, linger) for s in crowd)
        )
    return crowd


# --- 4. stream slots -------------------------------------------------------------------------


class Streams:
    """Open SSE streams to /orgs/c/events, held until `close()`."""

    def __init__(self, base_url: str) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits)
        self.open: list[httpx.Response] = []

    async def try_open(self, key: str) -> httpx.Response:
        request = self.http.build_request("GET", "/orgs/c/events", headers=bearer(key))
        response = await self.http.send(request, stream=True)
        if response.status_code == 200:
            self.open.append(response)
        else:
            await response.aread()
            await response.aclose()
        return response

    async def close(self) -> None:
        for response in self.open:
            await response.aclose()
        self.open.clear()
        await self.http.aclose()


# --- 5. persisted documents without a key ----------------------------------------------------


def persisted(query: str | None, text_for_hash: str) -> dict[str, Any]:
    digest = hashlib.sha256(text_for_hash.encode()).hexdigest()
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    if query is not None:
        body["query"] = query
    return body


def oversized_document(size: int) -> str:
    """`{ __typename }` and a comment: `size` bytes, two tokens."""
    head = "{ __typename }\n#"
    return head + "x" * (size - len(head))


# --- 6. websocket subscribe flood ------------------------------------------------------------


async def ws_operations(
    base_url: str, key: str, count: int, address: str | None = None
) -> Counter[str]:
    """`count` operations (`{ __typename }`) on one websocket, one after another; what each
    ended with: "next" (it ran) or the code of its error."""
    seen: Counter[str] = Counter()
    headers = forwarded(address) if address else {}
    async with connect(
        ws_url(base_url), subprotocols=[PROTOCOL], additional_headers=headers, ping_interval=None
    ) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": bearer(key)}))
        ack = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert ack["type"] == "connection_ack", ack
        for i in range(count):
            payload = {"query": "{ __typename }"}
            await socket.send(json.dumps({"id": str(i), "type": "subscribe", "payload": payload}))
            seen[await _outcome(socket, str(i))] += 1
    return seen


async def _outcome(socket: ClientConnection, op_id: str) -> str:
    result = "?"
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), 30))
        if message.get("id") != op_id:
            continue
        if message["type"] == "next":
            result = "next"
        elif message["type"] == "error":
            errors = message.get("payload") or [{}]
            return str(errors[0].get("extensions", {}).get("code", "error"))
        elif message["type"] == "complete":
            return result
