"""API keys in GraphQL: `apiKeys`, `viewer`, `createApiKey`, `revokeApiKey`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app.domain.assistants import check_page_size
from app.domain.keys import (
    count_api_keys,
    create_api_key,
    current_api_key,
    list_api_keys,
    revoke_api_key,
)
from app.graphql.args import OrgId
from app.graphql.context import Info
from app.graphql.inputs import sent_fields
from app.graphql.pagination import PageInfo, decode_cursor, encode_cursor
from app.store.records import ApiKeyRecord

CURSOR_KIND = "api_key"
DEFAULT_FIRST = 20
SCOPES_DOC = (
    "`assistants:read`, `assistants:write`, `api_keys:manage`, `webhooks:manage` or `audit:read`"
)

KeyId = Annotated[strawberry.ID, strawberry.argument(description="The API key's id.")]


@strawberry.type(description="An API key of the organisation (never its secret).")
class ApiKey:
    id: strawberry.ID = strawberry.field(description="Opaque id of the key.")
    name: str = strawberry.field(description="What the key is for, 1-200 characters.")
    prefix: str | None = strawberry.field(
        description="The first 8 characters of the secret, to recognise it; null for keys made "
        "before prefixes were kept."
    )
    scopes: list[str] = strawberry.field(
        description=f"What the key may do: {SCOPES_DOC} (in that order)."
    )
    assistant_ids: list[strawberry.ID] | None = strawberry.field(
        description="The assistants the key is restricted to; null for every assistant of the "
        "organisation."
    )
    expires_at: datetime | None = strawberry.field(
        description="When the key stops working; null: never."
    )
    created_at: datetime = strawberry.field(description="When it was made.")
    last_used_at: datetime | None = strawberry.field(
        description="Its first use, then refreshed at most once a minute; null if never used."
    )
    revoked_at: datetime | None = strawberry.field(
        description="When it was revoked; null while it is not."
    )

    @classmethod
    def from_row(cls, key: ApiKeyRecord) -> ApiKey:
        return cls(
            id=strawberry.ID(key.id),
            name=key.name,
            prefix=key.prefix,
            scopes=list(key.scopes),
            assistant_ids=None
            if key.assistant_ids is None
            else [strawberry.ID(i) for i in key.assistant_ids],
            expires_at=key.expires_at,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


@strawberry.type(description="An API key and its cursor.")
class ApiKeyEdge:
    cursor: str = strawberry.field(description="Opaque position; pass it as `after`.")
    node: ApiKey = strawberry.field(description="The key.")


@strawberry.type(description="A page of the organisation's API keys, oldest first.")
class ApiKeyConnection:
    edges: list[ApiKeyEdge] = strawberry.field(description="The keys with their cursors.")
    nodes: list[ApiKey] = strawberry.field(description="The keys of this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and where.")
    total_count: int = strawberry.field(
        description="How many keys the organisation has, revoked ones included."
    )


@strawberry.type(description="A new API key and its secret, shown this once and never again.")
class CreatedApiKey:
    api_key: ApiKey = strawberry.field(description="The new key.")
    secret: str = strawberry.field(
        description="The secret to send as `Authorization: Bearer <secret>`; only its SHA-256 "
        "is kept, so it cannot be shown again."
    )


@strawberry.type(description="The caller: its organisation and its API key.")
class Viewer:
    org_id: strawberry.ID = strawberry.field(description="The key's organisation.")
    api_key: ApiKey = strawberry.field(description="The key the request was made with.")


@strawberry.input(
    description="A new API key: never more than the calling key holds (scopes within its own, "
    "assistants within its own, `expiresAt` no later than its own)."
)
class CreateApiKeyInput:
    name: str = strawberry.field(description="What the key is for, 1-200 characters.")
    scopes: list[str] = strawberry.field(description=f"1 or more of {SCOPES_DOC}.")
    assistant_ids: list[strawberry.ID] | None = strawberry.field(
        description="Restrict the key to these assistants (1-100 of the organisation); null or "
        "absent: every assistant.",
        default=None,
    )
    expires_at: datetime | None = strawberry.field(
        description="When the key stops working (in the future); null or absent: never.",
        default=None,
    )


@strawberry.type
class ApiKeyQuery:
    @strawberry.field(
        description="The organisation's API keys, oldest first (revoked ones too); needs "
        "`api_keys:manage`."
    )
    async def api_keys(
        self,
        info: Info,
        org_id: OrgId,
        first: Annotated[
            int | None,
            strawberry.argument(description="How many to return, 1-100 (null means 20)."),
        ] = DEFAULT_FIRST,
        after: Annotated[
            str | None, strawberry.argument(description="Return the keys after this cursor.")
        ] = None,
    ) -> ApiKeyConnection:
        ctx = info.context
        async with ctx.db.read() as tx:
            access = await ctx.access(tx, org_id)
            size = check_page_size(DEFAULT_FIRST if first is None else first, "first")
            offset = 0 if after is None else decode_cursor(CURSOR_KIND, after) + 1
            keys = await list_api_keys(tx, access=access, offset=offset, limit=size + 1)
            total = await count_api_keys(tx, access=access)
        edges = [
            ApiKeyEdge(cursor=encode_cursor(CURSOR_KIND, offset + n), node=ApiKey.from_row(key))
            for n, key in enumerate(keys[:size])
        ]
        return ApiKeyConnection(
            edges=edges,
            nodes=[edge.node for edge in edges],
            page_info=PageInfo(
                has_next_page=len(keys) > size, end_cursor=edges[-1].cursor if edges else None
            ),
            total_count=total,
        )

    @strawberry.field(description="The caller: its organisation and its API key (any scope).")
    async def viewer(self, info: Info) -> Viewer:
        ctx = info.context
        async with ctx.db.read() as tx:
            access = await ctx.caller(tx)
            key = await current_api_key(tx, access=access)
        return Viewer(org_id=strawberry.ID(access.org_id), api_key=ApiKey.from_row(key))


@strawberry.type
class ApiKeyMutation:
    @strawberry.mutation(
        description="Make an API key; its secret is in the answer, and only there. Needs "
        "`api_keys:manage`; an organisation holds at most 100 unrevoked keys."
    )
    async def create_api_key(
        self,
        info: Info,
        org_id: OrgId,
        input: Annotated[  # noqa: A002
            CreateApiKeyInput, strawberry.argument(description="The new key.")
        ],
    ) -> CreatedApiKey:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            key, secret = await create_api_key(tx, access=access, body=sent_fields(input))
        return CreatedApiKey(api_key=ApiKey.from_row(key), secret=secret)

    @strawberry.mutation(
        description="Revoke an API key: it stops working at once, on every server, and its "
        "open streams close within seconds. Needs `api_keys:manage`."
    )
    async def revoke_api_key(self, info: Info, org_id: OrgId, key_id: KeyId) -> ApiKey:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            key = await revoke_api_key(tx, access=access, key_id=key_id)
        return ApiKey.from_row(key)
