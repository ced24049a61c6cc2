"""webhooks and their deliveries; scope `webhooks:manage` for keys that held every scope

Every API key that held all three scopes before webhooks existed holds `webhooks:manage` too.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVERY_SCOPE_BEFORE = {"assistants:read", "assistants:write", "api_keys:manage"}
WEBHOOKS_MANAGE = "webhooks:manage"


def _string(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", _string(64), nullable=False),
        sa.Column("org_id", _string(64), nullable=False),
        sa.Column("url", _string(2048), nullable=False),
        sa.Column("description", _string(500), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=True),
        sa.Column("assistant_ids", sa.JSON(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", _string(16), nullable=True),
        sa.Column("secret", _string(128), nullable=False),
        sa.Column("previous_secret", _string(128), nullable=True),
        sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.create_index("ix_webhooks_org_enabled", ["org_id", "enabled"], unique=False)
    op.create_table(
        "webhook_deliveries",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("id", _string(64), nullable=False),
        sa.Column("webhook_id", _string(64), nullable=False),
        sa.Column("org_id", _string(64), nullable=False),
        sa.Column("event_id", _string(32), nullable=True),
        sa.Column("type", _string(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", _string(16), nullable=False),
        sa.Column("attempts", sa.JSON(), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.ForeignKeyConstraint(["webhook_id"], ["webhooks.id"]),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            "ix_webhook_deliveries_webhook_seq", ["webhook_id", "seq"], unique=False
        )
        batch_op.create_index("ix_webhook_deliveries_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_webhook_deliveries_first", ["webhook_id", "attempt_count", "seq"], unique=False
        )
    _give_every_full_key_the_new_scope()


def _give_every_full_key_the_new_scope() -> None:
    connection = op.get_bind()
    keys = sa.table("api_keys", sa.column("id", sa.String()), sa.column("scopes", sa.JSON()))
    for key_id, scopes in connection.execute(sa.select(keys.c.id, keys.c.scopes)).all():
        held = json.loads(scopes) if isinstance(scopes, str) else list(scopes or [])
        if EVERY_SCOPE_BEFORE <= set(held) and WEBHOOKS_MANAGE not in held:
            connection.execute(
                keys.update().where(keys.c.id == key_id).values(scopes=[*held, WEBHOOKS_MANAGE])
            )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_first")
        batch_op.drop_index("ix_webhook_deliveries_created_at")
        batch_op.drop_index("ix_webhook_deliveries_webhook_seq")
        batch_op.drop_index("ix_webhook_deliveries_due")
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.drop_index("ix_webhooks_org_enabled")
    op.drop_table("webhooks")
    connection = op.get_bind()
    keys = sa.table("api_keys", sa.column("id", sa.String()), sa.column("scopes", sa.JSON()))
    for key_id, scopes in connection.execute(sa.select(keys.c.id, keys.c.scopes)).all():
        held = json.loads(scopes) if isinstance(scopes, str) else list(scopes or [])
        if WEBHOOKS_MANAGE in held:
            kept = [scope for scope in held if scope != WEBHOOKS_MANAGE]
            connection.execute(keys.update().where(keys.c.id == key_id).values(scopes=kept))
