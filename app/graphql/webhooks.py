"""`webhooks`, `webhook`, `createWebhook`, `updateWebhook`, `deleteWebhook`,
`rotateWebhookSecret`, `testWebhook`, `Webhook.deliveries`, `redeliverWebhookDelivery`:
translation to the domain (docs/webhooks.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, Any

import httpx
import strawberry
from strawberry import Maybe
from strawberry.scalars import JSON

from app.domain.assistants import check_page_size
from app.domain.webhook_urls import UrlPolicy
from app.domain.webhooks import (
    count_deliveries,
    count_webhooks,
    create_test_ping,
    create_webhook,
    delete_webhook,
    get_webhook,
    list_deliveries,
    list_webhooks,
    redeliver,
    rotate_webhook_secret,
    update_webhook,
)
from app.graphql.args import OrgId
from app.graphql.context import Context, Info
from app.graphql.inputs import sent_fields
from app.graphql.pagination import PageInfo, decode_cursor, encode_cursor
from app.store.records import WebhookDeliveryRecord, WebhookRecord
from app.webhooks.engine import client_of
from app.webhooks.ping import attempt_ping

DEFAULT_FIRST = 20
WebhookId = Annotated[strawberry.ID, strawberry.argument(description="The webhook's id.")]
DeliveryId = Annotated[strawberry.ID, strawberry.argument(description="The delivery's id.")]
EVENT_TYPES_DOC = (
    "`assistant.created`, `assistant.updated`, `assistant.secret_key_rotated`, "
    "`assistant.restored`, `assistant.deleted` or `assistant.published`"
)


@strawberry.enum(description="Where a delivery stands.")
class WebhookDeliveryStatus(Enum):
    PENDING = strawberry.enum_value("pending", description="Waiting for its next attempt.")
    DELIVERED = strawberry.enum_value("delivered", description="The receiver answered 2xx.")
    FAILED = strawberry.enum_value(
        "failed", description="Every attempt failed, or the receiver answered 410."
    )


@strawberry.type(description="One attempt of a delivery.")
class WebhookAttempt:
    at: datetime = strawberry.field(description="When it started.")
    duration_ms: int = strawberry.field(description="How long it took, in milliseconds.")
    status_code: int | None = strawberry.field(
        description="The receiver's HTTP status; null when there was no answer."
    )
    error: str | None = strawberry.field(
        description="Why there was no answer: `timeout`, `blocked_address`, "
        "`connection_failed: …`; null when there was one."
    )
    response_body: str | None = strawberry.field(description="The answer's first 1 KiB.")

    @classmethod
    def from_dict(cls, attempt: dict[str, Any]) -> WebhookAttempt:
        return cls(
            at=datetime.fromisoformat(attempt["at"].replace("Z", "+00:00")),
            duration_ms=attempt["duration_ms"],
            status_code=attempt.get("status_code"),
            error=attempt.get("error"),
            response_body=attempt.get("response_body"),
        )


@strawberry.type(description="One event sent (or to send) to a webhook, with its attempts.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="The `webhook-id` header of its attempts.")
    event_id: str | None = strawberry.field(description="The event's id; null for a ping.")
    type: str = strawberry.field(description="`assistant.<change type>` or `ping`.")
    status: WebhookDeliveryStatus = strawberry.field(description="Where it stands.")
    attempts: list[WebhookAttempt] = strawberry.field(description="Oldest first.")
    next_attempt_at: datetime | None = strawberry.field(
        description="When it is tried next; null unless pending."
    )
    created_at: datetime = strawberry.field(description="When the change was committed.")
    payload: JSON = strawberry.field(description="The body sent: {type, timestamp, data}.")

    @classmethod
    def from_row(cls, row: WebhookDeliveryRecord) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(row.id),
            event_id=row.event_id,
            type=row.type,
            status=WebhookDeliveryStatus(row.status),
            attempts=[WebhookAttempt.from_dict(a) for a in row.attempts],
            next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
            created_at=row.created_at,
            payload=row.payload,  # type: ignore[arg-type]  # JSON: a NewType of any JSON value
        )


@strawberry.type(description="A delivery and its cursor.")
class WebhookDeliveryEdge:
    cursor: str = strawberry.field(description="Opaque position; pass it as `after`.")
    node: WebhookDelivery = strawberry.field(description="The delivery.")


@strawberry.type(description="A page of a webhook's deliveries, newest first.")
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge] = strawberry.field(description="With their cursors.")
    nodes: list[WebhookDelivery] = strawberry.field(description="The deliveries of this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and where.")
    total_count: int = strawberry.field(description="How many there are (of that status).")


@strawberry.type(description="An endpoint that receives the organisation's change events.")
class Webhook:
    id: strawberry.ID = strawberry.field(description="Opaque id of the webhook.")
    url: str = strawberry.field(description="Where events are POSTed (https://).")
    description: str = strawberry.field(description="0-500 characters.")
    event_types: list[str] | None = strawberry.field(
        description=f"The types it receives ({EVENT_TYPES_DOC}); null: every type."
    )
    assistant_ids: list[strawberry.ID] | None = strawberry.field(
        description="The assistants whose changes it receives; null: every assistant."
    )
    enabled: bool = strawberry.field(description="Whether events are sent to it.")
    disabled_reason: str | None = strawberry.field(
        description="Why it was disabled by the server: `failing` or `gone`; else null."
    )
    created_at: datetime = strawberry.field(description="When it was made.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    org_id: strawberry.Private[str]

    @classmethod
    def from_row(cls, row: WebhookRecord) -> Webhook:
        return cls(
            id=strawberry.ID(row.id),
            url=row.url,
            description=row.description,
            event_types=None if row.event_types is None else list(row.event_types),
            assistant_ids=None
            if row.assistant_ids is None
            else [strawberry.ID(i) for i in row.assistant_ids],
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
            org_id=row.org_id,
        )

    @strawberry.field(description="Its deliveries, newest first; needs `webhooks:manage`.")
    async def deliveries(
        self,
        info: Info,
        first: Annotated[
            int | None,
            strawberry.argument(description="How many to return, 1-100 (null means 20)."),
        ] = DEFAULT_FIRST,
        after: Annotated[
            str | None, strawberry.argument(description="Those after this cursor.")
        ] = None,
        status: Annotated[
            WebhookDeliveryStatus | None,
            strawberry.argument(description="Only those of this status."),
        ] = None,
    ) -> WebhookDeliveryConnection:
        ctx = info.context
        kind = "webhook_delivery"
        wanted: str | None = None if status is None else str(status.value)
        async with ctx.db.read() as tx:
            access = await ctx.access(tx, self.org_id)
            size = check_page_size(DEFAULT_FIRST if first is None else first, "first")
            offset = 0 if after is None else decode_cursor(kind, after) + 1
            rows = await list_deliveries(
                tx, access=access, webhook_id=self.id, offset=offset, limit=size + 1, status=wanted
            )
            total = await count_deliveries(tx, access=access, webhook_id=self.id, status=wanted)
        edges = [
            WebhookDeliveryEdge(
                cursor=encode_cursor(kind, offset + n), node=WebhookDelivery.from_row(row)
            )
            for n, row in enumerate(rows[:size])
        ]
        return WebhookDeliveryConnection(
            edges=edges,
            nodes=[edge.node for edge in edges],
            page_info=PageInfo(
                has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
            ),
            total_count=total,
        )


@strawberry.type(description="A webhook and its cursor.")
class WebhookEdge:
    cursor: str = strawberry.field(description="Opaque position; pass it as `after`.")
    node: Webhook = strawberry.field(description="The webhook.")


@strawberry.type(description="A page of the organisation's webhooks, oldest first.")
class WebhookConnection:
    edges: list[WebhookEdge] = strawberry.field(description="The webhooks with their cursors.")
    nodes: list[Webhook] = strawberry.field(description="The webhooks of this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and where.")
    total_count: int = strawberry.field(description="How many webhooks the organisation has.")


@strawberry.type(description="A webhook and its secret, shown now and never again.")
class CreatedWebhook:
    webhook: Webhook = strawberry.field(description="The webhook.")
    secret: str = strawberry.field(
        description="`whsec_…`: the key of its signatures (Standard Webhooks)."
    )


@strawberry.input(description="A new webhook.")
class CreateWebhookInput:
    url: str = strawberry.field(
        description="https:// (no user or password); its host may not resolve to a loopback, "
        "private, link-local, shared or reserved address."
    )
    description: Maybe[str | None] = strawberry.field(
        description='0-500 characters; default "".', default=None
    )
    event_types: Maybe[list[str] | None] = strawberry.field(
        description=f"1 or more of {EVENT_TYPES_DOC}; null or absent: every type.", default=None
    )
    assistant_ids: Maybe[list[strawberry.ID] | None] = strawberry.field(
        description="1-100 assistants of the organisation; null or absent: every assistant.",
        default=None,
    )
    enabled: Maybe[bool | None] = strawberry.field(description="Default true.", default=None)


@strawberry.input(description="A partial update of a webhook: absent keys stay.")
class UpdateWebhookInput:
    url: Maybe[str | None] = strawberry.field(description="May not be null.", default=None)
    description: Maybe[str | None] = strawberry.field(
        description="0-500 characters; may not be null.", default=None
    )
    event_types: Maybe[list[str] | None] = strawberry.field(
        description="Null: every type.", default=None
    )
    assistant_ids: Maybe[list[strawberry.ID] | None] = strawberry.field(
        description="Null: every assistant.", default=None
    )
    enabled: Maybe[bool | None] = strawberry.field(
        description="`true` re-enables a disabled webhook (its pending deliveries resume).",
        default=None,
    )


def _policy(ctx: Context) -> UrlPolicy:
    return UrlPolicy(ctx.settings.webhooks_allow_http, ctx.settings.webhooks_allow_private)


@strawberry.type
class WebhookQuery:
    @strawberry.field(
        description="The organisation's webhooks, oldest first; needs `webhooks:manage`."
    )
    async def webhooks(
        self,
        info: Info,
        org_id: OrgId,
        first: Annotated[
            int | None,
            strawberry.argument(description="How many to return, 1-100 (null means 20)."),
        ] = DEFAULT_FIRST,
        after: Annotated[
            str | None, strawberry.argument(description="Those after this cursor.")
        ] = None,
    ) -> WebhookConnection:
        ctx = info.context
        async with ctx.db.read() as tx:
            access = await ctx.access(tx, org_id)
            size = check_page_size(DEFAULT_FIRST if first is None else first, "first")
            offset = 0 if after is None else decode_cursor("webhook", after) + 1
            rows = await list_webhooks(tx, access=access, offset=offset, limit=size + 1)
            total = await count_webhooks(tx, access=access)
        edges = [
            WebhookEdge(cursor=encode_cursor("webhook", offset + n), node=Webhook.from_row(row))
            for n, row in enumerate(rows[:size])
        ]
        return WebhookConnection(
            edges=edges,
            nodes=[edge.node for edge in edges],
            page_info=PageInfo(
                has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
            ),
            total_count=total,
        )

    @strawberry.field(description="One webhook of the organisation; needs `webhooks:manage`.")
    async def webhook(self, info: Info, org_id: OrgId, id: WebhookId) -> Webhook:  # noqa: A002
        ctx = info.context
        async with ctx.db.read() as tx:
            access = await ctx.access(tx, org_id)
            row = await get_webhook(tx, access=access, webhook_id=id)
        return Webhook.from_row(row)


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description="Make a webhook; its secret is in the answer, and only there. Needs "
        "`webhooks:manage`; an organisation holds at most 20 webhooks."
    )
    async def create_webhook(
        self,
        info: Info,
        org_id: OrgId,
        input: Annotated[  # noqa: A002
            CreateWebhookInput, strawberry.argument(description="The new webhook.")
        ],
    ) -> CreatedWebhook:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row, secret = await create_webhook(
                tx, access=access, body=sent_fields(input), policy=_policy(ctx)
            )
        return CreatedWebhook(webhook=Webhook.from_row(row), secret=secret)

    @strawberry.mutation(description="Change a webhook. Needs `webhooks:manage`.")
    async def update_webhook(
        self,
        info: Info,
        org_id: OrgId,
        id: WebhookId,  # noqa: A002
        input: Annotated[  # noqa: A002
            UpdateWebhookInput, strawberry.argument(description="What changes.")
        ],
    ) -> Webhook:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await update_webhook(
                tx, access=access, webhook_id=id, patch=sent_fields(input), policy=_policy(ctx)
            )
        return Webhook.from_row(row)

    @strawberry.mutation(
        description="Delete a webhook and its delivery log; answers its id. Needs "
        "`webhooks:manage`."
    )
    async def delete_webhook(self, info: Info, org_id: OrgId, id: WebhookId) -> strawberry.ID:  # noqa: A002
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await delete_webhook(tx, access=access, webhook_id=id)
        return strawberry.ID(row.id)

    @strawberry.mutation(
        description="A new secret, in the answer only; the previous one signs too for "
        "WEBHOOK_SECRET_OVERLAP (24 h). Needs `webhooks:manage`."
    )
    async def rotate_webhook_secret(
        self,
        info: Info,
        org_id: OrgId,
        id: WebhookId,  # noqa: A002
    ) -> CreatedWebhook:
        ctx = info.context
        overlap = timedelta(seconds=ctx.settings.webhook_secret_overlap)
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row, secret = await rotate_webhook_secret(
                tx, access=access, webhook_id=id, overlap=overlap
            )
        return CreatedWebhook(webhook=Webhook.from_row(row), secret=secret)

    @strawberry.mutation(
        description="Send a `ping` to the webhook now; answers the delivery with its attempt. "
        "Needs `webhooks:manage`."
    )
    async def test_webhook(self, info: Info, org_id: OrgId, id: WebhookId) -> WebhookDelivery:  # noqa: A002
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            webhook, delivery = await create_test_ping(tx, access=access, webhook_id=id)
        state = getattr(getattr(ctx.request, "app", None), "state", None)
        client: httpx.AsyncClient | None = getattr(state, "webhook_client", None)
        if client is None:
            async with client_of(ctx.settings) as own:
                delivery = await attempt_ping(ctx.db, ctx.settings, own, webhook, delivery)
        else:
            delivery = await attempt_ping(ctx.db, ctx.settings, client, webhook, delivery)
        return WebhookDelivery.from_row(delivery)

    @strawberry.mutation(
        description="Send a delivery again, as soon as possible (same id). Needs `webhooks:manage`."
    )
    async def redeliver_webhook_delivery(
        self, info: Info, org_id: OrgId, webhook_id: WebhookId, delivery_id: DeliveryId
    ) -> WebhookDelivery:
        ctx = info.context
        async with ctx.db.write() as tx:
            access = await ctx.access(tx, org_id)
            row = await redeliver(tx, access=access, webhook_id=webhook_id, delivery_id=delivery_id)
        return WebhookDelivery.from_row(row)
