"""SQL statements per request, counted in-process (the app over httpx's ASGITransport).

`python bench/statements.py DB_PATH` prints one JSON object: for the REST PATCH, the GraphQL
update, GET one, and the lists of 10 and of 100 (REST and GraphQL, where served), the statements
the store sent (its `statement_listeners`). Each request is made once first so that connections
and caches are warm.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
from paths import discover_schema, list_query, persisted, update_mutation


async def count(
    http: httpx.AsyncClient,
    statements: list[str],
    method: str,
    url: str,
    body: Any = None,
    warm_body: Any = None,
) -> dict[str, Any]:
    """The statements of the second request (the first warms up; for updates it sends other
    values, so that the counted one is a real change)."""
    await http.request(method, url, json=warm_body or body)
    statements.clear()
    response = await http.request(method, url, json=body)
    seen = list(statements)
    errors = response.status_code != 200 or b'"errors"' in response.content
    return {
        "count": len(seen),
        "without_begin": sum(1 for s in seen if not s.lstrip().upper().startswith("BEGIN")),
        "status": response.status_code,
        "ok": not errors,
        "statements": [" ".join(s.split())[:120] for s in seen],
    }


def read_meta(db_path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(Path(f"{db_path}.json").read_text())
    return meta


async def main(db_path: Path) -> dict[str, Any]:
    from app.main import create_app
    from app.settings import Settings

    meta = read_meta(db_path)
    org, key, ident = meta["bench_org"], meta["bench_key"], meta["bench_assistants"][0]
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db_path}")
    app = create_app(settings)
    statements: list[str] = []
    async with app.router.lifespan_context(app):
        app.state.db.statement_listeners.append(statements.append)

        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as http:
            return await measure(http, statements, org, ident)


async def measure(
    http: httpx.AsyncClient, statements: list[str], org: str, ident: str
) -> dict[str, Any]:
    fields, has_list = await discover_schema(http)
    one = f"/orgs/{org}/assistants/{ident}"
    # the key's first use writes its `last_used_at` (at most once a minute, in a task of its
    # own): let that happen before anything is counted, it belongs to no request
    await http.get(one)
    await asyncio.sleep(0.5)

    def patch(n: int) -> dict[str, Any]:
        return {"name": f"Counted {n}", "config": {"tts": {"voice_id": f"v-{n}"}}}

    def mutation(n: int) -> dict[str, Any]:
        variables = {"id": ident, "name": f"Counted {n}", "voice": f"v-{n}"}
        return {"query": update_mutation(org, fields), "variables": variables}

    result = {
        "rest_update": await count(http, statements, "PATCH", one, patch(2), patch(1)),
        "graphql_update": await count(
            http, statements, "POST", "/graphql", mutation(4), mutation(3)
        ),
        # the warm-up registers the document (query and hash), the counted request is the hash
        "graphql_persisted_update": await count(
            http,
            statements,
            "POST",
            "/graphql",
            {"extensions": persisted(mutation(6)["query"]), "variables": mutation(6)["variables"]},
            {**mutation(5), "extensions": persisted(mutation(5)["query"])},
        ),
        "rest_get": await count(http, statements, "GET", one),
    }
    for take in (10, 100):
        url = f"/orgs/{org}/assistants?take={take}"
        result[f"rest_list_{take}"] = await count(http, statements, "GET", url)
        if has_list:
            query = list_query(org, fields).replace("first: 100", f"first: {take}")
            result[f"graphql_list_{take}"] = await count(
                http, statements, "POST", "/graphql", {"query": query}
            )
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(Path(sys.argv[1]).resolve()))))
