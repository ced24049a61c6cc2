"""The floor: bare Starlette and raw aiosqlite SQL over the app's schema, the same JSON out.

What a request must cost at least on this stack: the API key looked up by its hash, one write
transaction (`BEGIN IMMEDIATE`, select the assistant of that org, merge `name` and
`config.tts.voice_id`, update, select its integrations and actions), the documented JSON with
orjson. No ORM, no validation layer, no GraphQL. Writes are serialised by an asyncio lock
(SQLite has one writer anyway), reads use a small pool of connections. The connections get the
app's pragmas (WAL, `synchronous` from `SQLITE_SYNCHRONOUS`, default FULL).

Run: `DATABASE=path.db uvicorn bench.floor:app --port 8001` (the bench starts it for you).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain.shape import CONFIG, Leaf, compile_builder, dict_group, leaves_of

BASE_URL = os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
POOL_SIZE = 4
# The assistant's columns: its configuration's in the order of the app's declaration
# (app/domain/shape.py), so that a new setting reaches the floor's SQL and JSON by itself.
COLUMNS = (
    *("id", "name", "enabled", "deleted", "version", "secret_key", "avatar_id"),
    *(leaf.column for _, leaf in leaves_of(CONFIG)),
    *("created_at", "updated_at"),
)
AT = {column: n for n, column in enumerate(COLUMNS)}  # a column's index in a row
NAME, VERSION, VOICE, CREATED, UPDATED = (
    AT[c] for c in ("name", "version", "tts_voice_id", "created_at", "updated_at")
)
ASSISTANT_COLUMNS = ", ".join(COLUMNS)
INTEGRATION_COLUMNS = (
    "id, enabled, integration_id, assistant_id, connection_id, config, error,"
    " created_at, updated_at"
)
ACTION_COLUMNS = (
    "id, enabled, name, instructions, action_id, assistant_id, connection_id, config,"
    " position, created_at, updated_at"
)


def rfc3339(stored: str) -> str:
    """'2026-01-01 12:00:00.000000' (SQLAlchemy's SQLite format) to RFC 3339 with a Z."""
    if "." not in stored:
        stored += ".000000"
    return stored.replace(" ", "T") + "Z"


def problem(status: int, code: str) -> Response:
    body = {"type": "about:blank", "title": code, "status": status, "code": code}
    return Response(orjson.dumps(body), status, media_type="application/problem+json")


def _sqlite_leaf(leaf: Leaf) -> str:
    """A leaf read from a SQLite row: booleans are integers there, lists JSON text."""
    at = f"a[{AT[leaf.column]}]"
    return f"bool({at})" if leaf.type is bool else f"loads({at})" if leaf.type is list else at


# `config_of(row)`: `{"language": a[7], …, "stt": {"model": a[12]}, …}`, compiled once.
config_of = compile_builder(CONFIG, "config_of", _sqlite_leaf, dict_group, {"loads": orjson.loads})


def assistant_document(r: Any, integrations: list[Any], actions: list[Any]) -> dict[str, Any]:
    return {
        "id": r[0],
        "name": r[1],
        "enabled": bool(r[2]),
        "deleted": bool(r[3]),
        "version": r[4],
        "secret_key": r[5],
        "avatar_id": r[6],
        "avatar_url": f"{BASE_URL}/avatars/{r[6]}" if r[6] else None,
        "config": config_of(r),
        "integrations": [integration_document(i) for i in integrations],
        "actions": [action_document(a) for a in actions],
        "created_at": rfc3339(r[CREATED]),
        "updated_at": rfc3339(r[UPDATED]),
    }


def integration_document(i: Any) -> dict[str, Any]:
    return {
        "id": i[0],
        "enabled": bool(i[1]),
        "integration_id": i[2],
        "assistant_id": i[3],
        "connection_id": i[4],
        "config": orjson.loads(i[5]),
        "error": i[6],
        "created_at": rfc3339(i[7]),
        "updated_at": rfc3339(i[8]),
    }


def action_document(a: Any) -> dict[str, Any]:
    config = orjson.loads(a[7])
    return {
        "id": a[0],
        "enabled": bool(a[1]),
        "name": a[2],
        "instructions": a[3],
        "action_id": a[4],
        "assistant_id": a[5],
        "connection_id": a[6],
        "config": {"input": config.get("input", {}), "definitions": config.get("definitions", [])},
        "position": a[8],
        "created_at": rfc3339(a[9]),
        "updated_at": rfc3339(a[10]),
    }


class Store:
    """A pool of aiosqlite connections; one write transaction at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pool: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self.write_lock = asyncio.Lock()

    async def open(self) -> None:
        synchronous = os.environ.get("SQLITE_SYNCHRONOUS", "FULL")
        for _ in range(POOL_SIZE):
            conn = await aiosqlite.connect(self.path, isolation_level=None)
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute(f"PRAGMA synchronous={synchronous}")
            await conn.execute("PRAGMA busy_timeout=30000")
            await conn.execute("PRAGMA foreign_keys=ON")
            self.pool.put_nowait(conn)

    async def close(self) -> None:
        while not self.pool.empty():
            await self.pool.get_nowait().close()

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[aiosqlite.Connection]:
        if write:
            await self.write_lock.acquire()
        conn = await self.pool.get()
        try:
            await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")
        finally:
            self.pool.put_nowait(conn)
            if write:
                self.write_lock.release()


async def fetchall(conn: aiosqlite.Connection, sql: str, params: Any) -> list[Any]:
    async with conn.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


async def fetchone(conn: aiosqlite.Connection, sql: str, params: Any) -> Any:
    async with conn.execute(sql, params) as cursor:
        return await cursor.fetchone()


async def org_of(conn: aiosqlite.Connection, request: Request) -> str | None:
    """The org the bearer key opens, when it is the one in the path (or `c`)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    row = await fetchone(
        conn, "SELECT org_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (digest,)
    )
    wanted = request.path_params["org_id"]
    return row[0] if row is not None and wanted in ("c", row[0]) else None


async def documents(conn: aiosqlite.Connection, rows: list[Any]) -> list[dict[str, Any]]:
    """The assistants with their children: two statements whatever the number of rows."""
    ids = [r[0] for r in rows]
    marks = ",".join("?" * len(ids))
    integrations: dict[str, list[Any]] = {i: [] for i in ids}
    actions: dict[str, list[Any]] = {i: [] for i in ids}
    sql = f"SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE assistant_id IN ({marks})"
    for row in await fetchall(conn, sql + " ORDER BY created_at, id", ids):
        integrations[row[3]].append(row)
    sql = f"SELECT {ACTION_COLUMNS} FROM actions WHERE assistant_id IN ({marks})"
    for row in await fetchall(conn, sql + " ORDER BY position, created_at, id", ids):
        actions[row[5]].append(row)
    return [assistant_document(r, integrations[r[0]], actions[r[0]]) for r in rows]


SELECT_ONE = (
    f"SELECT {ASSISTANT_COLUMNS} FROM assistants WHERE org_id = ? AND id = ? AND deleted = 0"
)


def next_instant(previous: str) -> str:
    now = datetime.now(UTC).replace(tzinfo=None)
    last = datetime.fromisoformat(previous)
    moment = now if now > last else last + timedelta(microseconds=1)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


async def patch(request: Request) -> Response:
    body = orjson.loads(await request.body())
    store: Store = request.app.state.store
    async with store.transaction(write=True) as conn:
        org = await org_of(conn, request)
        if org is None:
            return problem(401, "UNAUTHENTICATED")
        row = await fetchone(conn, SELECT_ONE, (org, request.path_params["assistant_id"]))
        if row is None:
            return problem(404, "NOT_FOUND")
        name = body.get("name", row[NAME])
        voice = body.get("config", {}).get("tts", {}).get("voice_id", row[VOICE])
        if (name, voice) != (row[NAME], row[VOICE]):
            updated = next_instant(row[UPDATED])
            await conn.execute(
                "UPDATE assistants SET name = ?, tts_voice_id = ?, version = version + 1,"
                " updated_at = ? WHERE id = ?",
                (name, voice, updated, row[0]),
            )
            row = list(row)
            row[NAME], row[VERSION], row[VOICE], row[UPDATED] = (
                name,
                row[VERSION] + 1,
                voice,
                updated,
            )
        [document] = await documents(conn, [row])
    return Response(orjson.dumps(document), headers={"ETag": f'"{row[4]}"'})


async def read(request: Request) -> Response:
    store: Store = request.app.state.store
    async with store.transaction(write=False) as conn:
        org = await org_of(conn, request)
        if org is None:
            return problem(401, "UNAUTHENTICATED")
        row = await fetchone(conn, SELECT_ONE, (org, request.path_params["assistant_id"]))
        if row is None:
            return problem(404, "NOT_FOUND")
        [document] = await documents(conn, [row])
    return Response(orjson.dumps(document), headers={"ETag": f'"{row[4]}"'})


async def list_assistants(request: Request) -> Response:
    take = int(request.query_params.get("take", "100"))
    page = int(request.query_params.get("page", "1"))
    store: Store = request.app.state.store
    async with store.transaction(write=False) as conn:
        org = await org_of(conn, request)
        if org is None:
            return problem(401, "UNAUTHENTICATED")
        where = "FROM assistants WHERE org_id = ? AND deleted = 0"
        total = (await fetchone(conn, f"SELECT count(*) {where}", (org,)))[0]
        rows = await fetchall(
            conn,
            f"SELECT {ASSISTANT_COLUMNS} {where} ORDER BY seq LIMIT ? OFFSET ?",
            (org, take, (page - 1) * take),
        )
        body = await documents(conn, rows) if rows else []
    headers = {"pagination-count": str(total), "pagination-page": str(page)}
    return Response(orjson.dumps(body), headers={**headers, "pagination-take": str(take)})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.store = Store(os.environ["DATABASE"])
    await app.state.store.open()
    try:
        yield
    finally:
        await app.state.store.close()


app = Starlette(
    routes=[
        Route("/orgs/{org_id}/assistants", list_assistants, methods=["GET"]),
        Route("/orgs/{org_id}/assistants/{assistant_id}", read, methods=["GET"]),
        Route("/orgs/{org_id}/assistants/{assistant_id}", patch, methods=["PATCH"]),
    ],
    lifespan=lifespan,
)
