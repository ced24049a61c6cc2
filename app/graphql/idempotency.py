"""Which GraphQL requests over HTTP an `Idempotency-Key` applies to (docs/idempotency.md): those
whose operation is a mutation. Their fingerprint is made of the document (its SHA-256, so the
text and its persisted hash are the same document), the variables and the operation name."""

from __future__ import annotations

from typing import Any

import orjson
from graphql import OperationType

from app.domain.errors import DomainError
from app.graphql.engine import pick
from app.graphql.persisted import Documents, Miss, sha256_hex


def _material(sha: str, variables: Any, operation_name: Any) -> bytes:
    return orjson.dumps([sha, variables, operation_name], option=orjson.OPT_SORT_KEYS)


def mutation_material(documents: Documents, body: bytes) -> bytes | None:
    """The fingerprint's material of a body that holds a mutation; None for anything else (a
    query, or a body the view refuses: the header means nothing there). A document known only
    by a hash this process has not seen counts as a mutation (it may be one)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    query, extensions = data.get("query"), data.get("extensions")
    variables, operation_name = data.get("variables"), data.get("operationName")
    if not isinstance(query, str | None) or not isinstance(operation_name, str | None):
        return None
    try:
        found = documents.resolve(query, extensions)
    except DomainError:
        return None
    if isinstance(found, Miss):
        if found.query is None:
            return _material(found.sha, variables, operation_name)
        query = found.query
    elif found is not None:
        query = found[0]
    if not query:
        return None
    operation = pick(documents.engine.prepare(query), operation_name)
    if operation is None or operation.node.operation != OperationType.MUTATION:
        return None
    return _material(sha256_hex(query), variables, operation_name)
