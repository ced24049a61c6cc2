"""Automatic persisted queries and trusted documents.

Automatic persisted queries (Apollo's protocol): a request whose `extensions.persistedQuery` is
`{"version": 1, "sha256Hash": "<hex>"}` may leave out `query`. The document is found by its
hash in the engine's in-process cache (`Engine.by_hash`, a dict lookup like the text one), and
only on a miss in the `persisted_documents` table, which every process of the server shares;
unknown, it is the error `PERSISTED_QUERY_NOT_FOUND` (HTTP 200, as Apollo Server answers it) and
the client sends the hash again with `query`. Only a request with a valid API key registers a
document: without one (or with a bad one) nothing is stored and a document not stored yet is
the same PERSISTED_QUERY_NOT_FOUND, its message saying that registration needs a key (one
already stored runs); the key is checked before the text is parsed, so such a request costs no
parsing whatever it sends. A document is stored only once it parses and validates, within
GRAPHQL_MAX_DOCUMENT_BYTES (so the store holds nothing a hostile client made up), and the table
keeps at most
GRAPHQL_PERSISTED_MAX documents: a registration evicts those used longest ago (a document's
`last_used_at` moves when it is registered and when a process loads it from the table).

Trusted documents: with GRAPHQL_TRUSTED_DOCUMENTS naming an Apollo persisted-query manifest, only
its operations run, by hash or by identical text; anything else is 400
`TRUSTED_DOCUMENT_REQUIRED`, and nothing is stored. The manifest is read and every operation
checked (hash, type, that it parses and validates) when the app is built: a bad one stops the
start-up with a message naming what is wrong. The websocket follows the same rule
(app/graphql/subscriptions.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.domain.errors import BadRequest, DomainError
from app.graphql.limits import document_too_long
from app.models import PersistedDocument, utcnow
from app.store import Statement, Store

if TYPE_CHECKING:
    from app.graphql.engine import Engine, Prepared
    from app.settings import Settings

# mypy ignore below: SQLModel's metaclass sets __table__
TABLE: Any = PersistedDocument.__table__  # type: ignore[attr-defined]
MANIFEST_FORMAT = "apollo-persisted-query-manifest"
OPERATION_TYPES = frozenset({"query", "mutation", "subscription"})
SHA256 = re.compile(r"^[0-9a-f]{64}$")

Found = tuple[str, "Prepared"]  # a document's text and what it comes to


class PersistedQueryNotFound(DomainError):
    """Apollo's miss: the client sends the hash again with `query` (HTTP 200)."""

    code = "PERSISTED_QUERY_NOT_FOUND"


class PersistedQueryNotSupported(DomainError):
    """Automatic persisted queries are off (GRAPHQL_PERSISTED_MAX=0): the client stops hashing."""

    code = "PERSISTED_QUERY_NOT_SUPPORTED"


class TrustedDocumentRequired(DomainError):
    code = "TRUSTED_DOCUMENT_REQUIRED"


NOT_FOUND = PersistedQueryNotFound("PersistedQueryNotFound")
NEEDS_KEY = PersistedQueryNotFound(
    "PersistedQueryNotFound: registering a document needs a valid API key "
    "(send the query with `Authorization: Bearer <key>`)"
)
NOT_SUPPORTED = PersistedQueryNotSupported("PersistedQueryNotSupported")
NOT_TRUSTED = TrustedDocumentRequired(
    "only the operations of the trusted documents manifest run on this server "
    "(send one of them by its sha256Hash or its exact text)"
)
MISMATCH = BadRequest("provided sha does not match query")


class ManifestError(ValueError):
    """GRAPHQL_TRUSTED_DOCUMENTS names a file that is not a usable manifest."""


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted_hash(extensions: Any) -> str | None:
    """The `sha256Hash` of `extensions.persistedQuery`, None without one (BadRequest when it is
    malformed)."""
    if not isinstance(extensions, dict):
        if extensions is None:
            return None
        raise BadRequest("The GraphQL operation's `extensions` must be an object")
    persisted = extensions.get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise BadRequest(
            "Unsupported persisted query version: `extensions.persistedQuery` is "
            '{"version": 1, "sha256Hash": "<hex>"}'
        )
    sha = persisted.get("sha256Hash")
    if not isinstance(sha, str) or not SHA256.match(sha):
        raise BadRequest("`extensions.persistedQuery.sha256Hash` must be 64 lower-case hex digits")
    return sha


# -- trusted documents -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustedDocuments:
    """The operations of a manifest, by hash and by text."""

    by_hash: dict[str, str]  # sha256: body
    by_text: dict[str, str]  # body: sha256


def load_manifest(path: Path) -> TrustedDocuments:
    """An Apollo persisted-query manifest, checked (ManifestError says what is wrong)."""
    where = f"GRAPHQL_TRUSTED_DOCUMENTS={path}"
    try:
        manifest = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ManifestError(f"{where}: cannot read the manifest ({exc.strerror})") from None
    except orjson.JSONDecodeError as exc:
        raise ManifestError(f"{where}: the manifest is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f'{where}: "format" must be "{MANIFEST_FORMAT}"')
    if manifest.get("version") != 1:
        raise ManifestError(f'{where}: "version" must be 1')
    operations = manifest.get("operations")
    if not isinstance(operations, list):
        raise ManifestError(f'{where}: "operations" must be a list')
    by_hash: dict[str, str] = {}
    for index, operation in enumerate(operations):
        at = f"{where}: operations[{index}]"
        if not isinstance(operation, dict):
            raise ManifestError(f"{at} must be an object")
        sha, body = operation.get("id"), operation.get("body")
        if not isinstance(body, str) or not body:
            raise ManifestError(f'{at}: "body" must be the text of a GraphQL document')
        if not isinstance(sha, str) or sha != sha256_hex(body):
            raise ManifestError(f'{at}: "id" must be the SHA-256 (hex) of its "body"')
        if operation.get("type") not in OPERATION_TYPES:
            raise ManifestError(f'{at}: "type" must be query, mutation or subscription')
        if not isinstance(operation.get("name"), str):
            raise ManifestError(f'{at}: "name" must be a string')
        by_hash[sha] = body
    return TrustedDocuments(by_hash, {body: sha for sha, body in by_hash.items()})


# -- the shared store ----------------------------------------------------------------------------

_FIND = Statement(select(TABLE.c.document).where(TABLE.c.sha256 == bindparam("sha256")))
_TOUCH = Statement(
    update(TABLE).where(TABLE.c.sha256 == bindparam("sha256")).values(last_used_at=bindparam("now"))
)
_VALUES: dict[str, Any] = {
    "sha256": bindparam("sha256"),
    "document": bindparam("document"),
    "created_at": bindparam("now"),
    "last_used_at": bindparam("now"),
}
_sqlite_upsert = sqlite_insert(TABLE).values(_VALUES)
_postgresql_upsert = postgresql_insert(TABLE).values(_VALUES)
_UPSERT = Statement(
    _sqlite_upsert.on_conflict_do_update(
        index_elements=[TABLE.c.sha256], set_={"last_used_at": _sqlite_upsert.excluded.last_used_at}
    ),
    postgresql=_postgresql_upsert.on_conflict_do_update(
        index_elements=[TABLE.c.sha256],
        set_={"last_used_at": _postgresql_upsert.excluded.last_used_at},
    ),
)
# every document beyond the newest `keep` (by last use) goes
_EVICT = Statement(
    delete(TABLE).where(
        TABLE.c.sha256.in_(
            select(TABLE.c.sha256)
            .order_by(TABLE.c.last_used_at.desc(), TABLE.c.sha256)
            .offset(bindparam("keep"))
            .scalar_subquery()
        )
    )
)


async def find_document(store: Store, sha: str) -> str | None:
    """The stored text of a hash (its `last_used_at` moved to now), or None."""
    async with store.read() as tx:
        text: str | None = await tx.scalar(_FIND, {"sha256": sha})
    if text is not None:
        async with store.write() as tx:
            await tx.execute(_TOUCH, {"sha256": sha, "now": utcnow()})
    return text


async def store_document(store: Store, sha: str, text: str, keep: int) -> None:
    """Stores a document (or marks it used), then evicts beyond the newest `keep`."""
    async with store.write() as tx:
        await tx.execute(_UPSERT, {"sha256": sha, "document": text, "now": utcnow()})
        await tx.execute(_EVICT, {"keep": keep})


# -- a request's document ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Miss:
    """A hash this process does not know yet: the shared store has the last word."""

    sha: str
    query: str | None  # the text sent with it (a registration), or None


class Documents:
    """Which document a request runs: its text, or the one its hash names (persisted or
    trusted). `resolve` answers from memory; only a `Miss` needs `complete` (the database)."""

    def __init__(self, engine: Engine, *, keep: int, manifest: Path | None) -> None:
        self.engine = engine
        self.keep = keep
        self.trusted: TrustedDocuments | None = None
        self.pinned: dict[str, Found] = {}  # trusted operations, by hash (never evicted)
        if manifest is not None:
            self.trusted = load_manifest(manifest)
            for sha, body in self.trusted.by_hash.items():
                prepared = engine.prepare(body)
                if prepared.errors:
                    message = prepared.errors[0]["message"]
                    raise ManifestError(
                        f"GRAPHQL_TRUSTED_DOCUMENTS={manifest}: the operation {sha} does not "
                        f"parse or validate against this schema: {message}"
                    )
                self.pinned[sha] = (body, prepared)

    def resolve(self, query: str | None, extensions: Any) -> Found | Miss | None:
        """The document of a request from memory: found, a `Miss`, or None for a plain `query`
        (BadRequest, or TrustedDocumentRequired, when it may not run)."""
        sha = persisted_hash(extensions) if extensions is not None else None
        trusted = self.trusted
        if sha is None:
            if trusted is None:
                return None
            found = self.pinned.get(trusted.by_text.get(query, "")) if query else None
            if found is None:
                raise NOT_TRUSTED
            return found
        if query and sha256_hex(query) != sha:
            raise MISMATCH
        if trusted is not None:
            found = self.pinned.get(sha)
            if found is None:
                raise NOT_TRUSTED
            return found
        if self.keep <= 0:
            raise NOT_SUPPORTED
        found = self.engine.by_hash(sha)
        return found if found is not None else Miss(sha, query or None)

    async def complete(
        self, miss: Miss, store: Store, authenticated: Callable[[], Awaitable[bool]]
    ) -> Found:
        """A hash this process missed: loaded from the shared store, or registered with the
        text sent (once it parses and validates, and only when `authenticated()`: the request
        holds a valid API key), or PersistedQueryNotFound."""
        engine = self.engine
        if miss.query is not None:
            text = miss.query
            if document_too_long(text, engine.settings.graphql_max_document_bytes) is not None:
                return text, engine.prepare(text)  # refused (before parsing), never stored
            # the key first: without one the text is never parsed, so a client without a key
            # costs a dict lookup and one read, whatever it sends (docs/graphql-bounds.md)
            if await authenticated():
                prepared = engine.prepare(text)
                if not storable(prepared):
                    return text, prepared  # runs (to answer its errors), never stored
                await store_document(store, miss.sha, text, self.keep)
                engine.remember(miss.sha, text, prepared)
                return text, prepared
        stored = await find_document(store, miss.sha)
        if stored is None or sha256_hex(stored) != miss.sha:
            raise NOT_FOUND if miss.query is None and await authenticated() else NEEDS_KEY
        prepared = engine.prepare(stored)
        engine.remember(miss.sha, stored, prepared)
        return stored, prepared


def storable(prepared: Prepared) -> bool:
    """A document that parses, validates and has an operation within the cost limit."""
    if prepared.document is None or prepared.errors:
        return False
    operations = [prepared.first, *prepared.operations.values()]
    return any(op is not None and op.refusal is None for op in operations)


def check_manifest(settings: Settings) -> None:
    """Reads and checks GRAPHQL_TRUSTED_DOCUMENTS against the schema (ManifestError), as the
    app does when it is built: `serve` calls it before any worker starts."""
    from app.graphql.engine import Engine  # noqa: PLC0415  (imports this module's callers)
    from app.graphql.schema import build_schema  # noqa: PLC0415

    Documents(
        Engine(build_schema(settings), settings),
        keep=settings.graphql_persisted_max,
        manifest=settings.graphql_trusted_documents,
    )
