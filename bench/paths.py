"""The measured paths: the GraphQL full selection (read from the live schema) and templates."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from load import Template

INTROSPECTION = """
query {
  __schema {
    queryType { fields { name } }
    types { name kind fields { name args { name } type { ...T } } }
  }
}
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
"""


def named(kind: dict[str, Any]) -> dict[str, Any]:
    while kind.get("ofType"):
        kind = kind["ofType"]
    return kind


# what the REST document of an assistant does not hold either: the releases an environment
# points at (docs/releases.md) are read on their own paths (environment_get), not in the
# full selection the REST paths are compared with
NOT_IN_THE_DOCUMENT = frozenset({"environments"})


def selection(types: dict[str, Any], type_name: str, depth: int = 0) -> str:
    """Every field of the type that takes no argument, nested objects expanded."""
    parts = []
    for field in types[type_name]["fields"]:
        if field["args"] or field["name"].startswith("__"):
            continue  # fields with arguments (connections such as revisions) are not selected
        if type_name == "Assistant" and field["name"] in NOT_IN_THE_DOCUMENT:
            continue
        inner = named(field["type"])
        if inner["kind"] in ("OBJECT", "INTERFACE") and depth < 6:
            parts.append(f"{field['name']} {{ {selection(types, inner['name'], depth + 1)} }}")
        elif inner["kind"] not in ("OBJECT", "INTERFACE", "UNION"):
            parts.append(field["name"])
    return " ".join(parts)


def parse_schema(body: dict[str, Any]) -> tuple[str, bool]:
    """(the full selection of Assistant, whether Query.assistants exists)."""
    schema = body["data"]["__schema"]
    types = {t["name"]: t for t in schema["types"] if t["fields"]}
    queries = {f["name"] for f in schema["queryType"]["fields"]}
    return selection(types, "Assistant"), "assistants" in queries


def discover(url: str) -> tuple[str, bool]:
    response = httpx.post(f"{url}/graphql", json={"query": INTROSPECTION}, timeout=30)
    return parse_schema(response.json())


async def discover_schema(http: httpx.AsyncClient) -> tuple[str, bool]:
    response = await http.post("/graphql", json={"query": INTROSPECTION})
    return parse_schema(response.json())


def update_mutation(org: str, fields: str, alias: str = "") -> str:
    return (
        "mutation Update($id: ID!, $name: String!, $voice: String!) { "
        f'{alias}updateAssistant(orgId: "{org}", assistantId: $id, '
        "input: {name: $name, config: {tts: {voiceId: $voice}}}) "
        f"{{ {fields} }} }}"
    )


def persisted(text: str) -> dict[str, Any]:
    """`extensions.persistedQuery` of a document (automatic persisted queries)."""
    return {
        "persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(text.encode()).hexdigest()}
    }


def list_query(org: str, fields: str) -> str:
    return (
        f'query List {{ assistants(orgId: "{org}", first: 100) {{ totalCount '
        f"pageInfo {{ hasNextPage endCursor }} nodes {{ {fields} }} }} }}"
    )


def one_query(org: str, fields: str, alias: str) -> str:
    return f'query One($id: ID!) {{ {alias}assistant(orgId: "{org}", id: $id) {{ {fields} }} }}'


def templates(org: str, fields: str) -> dict[str, list[Template]]:
    """Every path by name; the floor serves the REST ones."""
    one = f"/orgs/{org}/assistants/@ID@"
    update_vars = {"id": "@ID@", "name": "Bench @N@", "voice": "voice-@N@"}
    rest_patch = Template(
        "PATCH", one, {"name": "Bench @N@", "config": {"tts": {"voice_id": "v@N@"}}}
    )
    update = update_mutation(org, fields)
    gql_update = Template("POST", "/graphql", {"query": update, "variables": update_vars})
    # the same mutation by its hash alone, once registered (the query with its hash, sent once)
    hashed = {"extensions": persisted(update), "variables": update_vars}
    persisted_update = Template("POST", "/graphql", hashed)
    register = Template("POST", "/graphql", {"query": update, **hashed})
    rest_get = Template("GET", one)
    # unique texts (an alias no request used before) so parse/validation caches see new keys
    unique_read = Template(
        "POST", "/graphql", {"query": one_query(org, fields, "u@U@: "), "variables": {"id": "@ID@"}}
    )
    unique_update = Template(
        "POST",
        "/graphql",
        {"query": update_mutation(org, fields, "u@U@: "), "variables": update_vars},
    )
    return {
        "graphql_update": [gql_update],
        "graphql_persisted_update": [persisted_update],
        "graphql_persisted_register": [register],
        "rest_update": [rest_patch],
        "rest_get": [rest_get],
        "graphql_list": [
            Template("POST", "/graphql", {"query": list_query(org, fields), "variables": {}})
        ],
        "rest_list": [Template("GET", f"/orgs/{org}/assistants?take=100")],
        # the runtime's read of a release (docs/releases.md), over the assistants that run.py
        # publishes to `production` (RELEASED_IDS); its 304 sends `If-None-Match: "1"`
        "environment_get": [Template("GET", f"{one}/environments/production")],
        "environment_304": [Template("GET", f"{one}/environments/production")],
        "leak_mix": [unique_read, rest_get, unique_update, rest_patch, gql_update],
        # only unique texts: the warm-up of the memory check, filling the bounded caches
        "cache_fill": [unique_read, unique_update],
    }


def shape(value: Any) -> Any:
    """The keys of a JSON document, recursively (to compare the floor's with the server's)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None
