"""`auditLog(orgId, first, after, filter)`: the organisation's audit log, newest first
(docs/audit-log.md); needs `audit:read`. Nothing in the API changes or deletes an entry."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app.domain.assistants import check_page_size
from app.domain.audit_log import AuditFilter, count_audit_log, list_audit_log
from app.graphql.args import OrgId
from app.graphql.context import Info
from app.graphql.pagination import PageInfo, decode_cursor, encode_cursor
from app.store.records import AuditRecord

CURSOR_KIND = "audit"
DEFAULT_FIRST = 20


@strawberry.type(description="Who made a change: an API key, or the command line.")
class AuditActor:
    type: str = strawberry.field(description="`api_key` or `cli`.")
    key_id: strawberry.ID | None = strawberry.field(description="The key's id (null: cli).")
    key_name: str | None = strawberry.field(description="The key's name when it acted.")
    key_prefix: str | None = strawberry.field(description="The first 8 characters of its secret.")


@strawberry.type(description="What an entry is about.")
class AuditResource:
    type: str = strawberry.field(description="`assistant`, `api_key`, `webhook`, ….")
    id: strawberry.ID | None = strawberry.field(description="Its id (null for a list).")


@strawberry.type(description="One entry of the audit log; its `hash` chains it to the one before.")
class AuditEntry:
    id: strawberry.ID = strawberry.field(description="Increasing number of the entry.")
    at: datetime = strawberry.field(description="When it was written.")
    org_id: strawberry.ID = strawberry.field(description="The organisation.")
    actor: AuditActor = strawberry.field(description="Who.")
    action: str = strawberry.field(description="What, such as `assistant.update`.")
    resource: AuditResource = strawberry.field(description="On what.")
    outcome: str = strawberry.field(description="`ok`, or `denied` (a missing scope).")
    transport: str = strawberry.field(description="`rest`, `graphql`, `websocket` or `cli`.")
    request_id: str | None = strawberry.field(description="The request's X-Request-ID.")
    client_ip: str | None = strawberry.field(description="The client's address.")
    user_agent: str | None = strawberry.field(description="Its first 200 characters.")
    version: int | None = strawberry.field(description="The assistant version it made, if any.")
    hash: str = strawberry.field(
        description="SHA-256 (hex) of the previous entry's hash and this entry's canonical JSON."
    )

    @classmethod
    def from_row(cls, row: AuditRecord) -> AuditEntry:
        key_id = row.actor_key_id
        return cls(
            id=strawberry.ID(str(row.id)),
            at=row.at,
            org_id=strawberry.ID(row.org_id),
            actor=AuditActor(
                type=row.actor_type,
                key_id=None if key_id is None else strawberry.ID(key_id),
                key_name=row.actor_key_name,
                key_prefix=row.actor_key_prefix,
            ),
            action=row.action,
            resource=AuditResource(
                type=row.resource_type,
                id=None if row.resource_id is None else strawberry.ID(row.resource_id),
            ),
            outcome=row.outcome,
            transport=row.transport,
            request_id=row.request_id,
            client_ip=row.client_ip,
            user_agent=row.user_agent,
            version=row.version,
            hash=row.hash,
        )


@strawberry.type(description="An audit entry and its cursor.")
class AuditEntryEdge:
    cursor: str = strawberry.field(description="Opaque position; pass it as `after`.")
    node: AuditEntry = strawberry.field(description="The entry.")


@strawberry.type(description="A page of the audit log, newest first.")
class AuditEntryConnection:
    edges: list[AuditEntryEdge] = strawberry.field(description="The entries with their cursors.")
    nodes: list[AuditEntry] = strawberry.field(description="The entries of this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and where.")
    total_count: int = strawberry.field(description="How many entries meet the filter.")


@strawberry.input(description="Which entries to keep; each criterion given must hold.")
class AuditLogFilter:
    actor_key_id: strawberry.ID | None = strawberry.field(
        default=None, description="Written by this API key."
    )
    action: str | None = strawberry.field(default=None, description="Such as `assistant.update`.")
    resource_id: strawberry.ID | None = strawberry.field(
        default=None, description="About this resource."
    )
    since: datetime | None = strawberry.field(default=None, description="Written at or after.")
    until: datetime | None = strawberry.field(default=None, description="Written before.")

    def criteria(self) -> AuditFilter:
        return AuditFilter(
            actor_key_id=self.actor_key_id,
            action=self.action,
            resource_id=self.resource_id,
            since=self.since,
            until=self.until,
        )


@strawberry.type
class AuditLogQuery:
    @strawberry.field(description="The organisation's audit log, newest first; needs `audit:read`.")
    async def audit_log(
        self,
        info: Info,
        org_id: OrgId,
        first: Annotated[
            int | None,
            strawberry.argument(description="How many to return, 1-100 (null means 20)."),
        ] = DEFAULT_FIRST,
        after: Annotated[
            str | None, strawberry.argument(description="Return the entries after this cursor.")
        ] = None,
        filter: Annotated[  # noqa: A002
            AuditLogFilter | None, strawberry.argument(description="Which entries to return.")
        ] = None,
    ) -> AuditEntryConnection:
        ctx = info.context
        criteria = AuditFilter() if filter is None else filter.criteria()
        async with ctx.db.write() as tx:  # entries still pending are chained first
            access = await ctx.access(tx, org_id)
            size = check_page_size(DEFAULT_FIRST if first is None else first, "first")
            before = None if after is None else decode_cursor(CURSOR_KIND, after)
            rows = await list_audit_log(
                tx, access=access, criteria=criteria, limit=size + 1, before_id=before
            )
            total = await count_audit_log(tx, access=access, criteria=criteria)
        edges = [
            AuditEntryEdge(
                cursor=encode_cursor(CURSOR_KIND, int(row.id or 0)), node=AuditEntry.from_row(row)
            )
            for row in rows[:size]
        ]
        return AuditEntryConnection(
            edges=edges,
            nodes=[edge.node for edge in edges],
            page_info=PageInfo(
                has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
            ),
            total_count=total,
        )
