"""the audit log (docs/audit-log.md): its entries, each organisation's chain head, the entries
waiting to be chained (PostgreSQL), and the scope `audit:read` for keys that held every scope

Every API key that held every scope before the audit log existed (the four of 0009) holds
`audit:read` too.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVERY_SCOPE_BEFORE = {"assistants:read", "assistants:write", "api_keys:manage", "webhooks:manage"}
AUDIT_READ = "audit:read"


def _string(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("org_id", _string(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", _string(16), nullable=False),
        sa.Column("actor_key_id", _string(64), nullable=True),
        sa.Column("actor_key_name", _string(200), nullable=True),
        sa.Column("actor_key_prefix", _string(8), nullable=True),
        sa.Column("action", _string(64), nullable=False),
        sa.Column("resource_type", _string(32), nullable=False),
        sa.Column("resource_id", _string(64), nullable=True),
        sa.Column("outcome", _string(8), nullable=False),
        sa.Column("transport", _string(16), nullable=False),
        sa.Column("request_id", _string(128), nullable=True),
        sa.Column("client_ip", _string(64), nullable=True),
        sa.Column("user_agent", _string(200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("prev_hash", _string(64), nullable=False),
        sa.Column("hash", _string(64), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_org_id", ["org_id", "id"], unique=False)
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)
    op.create_table(
        "audit_heads",
        sa.Column("org_id", _string(64), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", _string(64), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("org_id"),
    )
    op.create_table(
        "audit_pending",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", _string(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", _string(16), nullable=False),
        sa.Column("actor_key_id", _string(64), nullable=True),
        sa.Column("actor_key_name", _string(200), nullable=True),
        sa.Column("actor_key_prefix", _string(8), nullable=True),
        sa.Column("action", _string(64), nullable=False),
        sa.Column("resource_type", _string(32), nullable=False),
        sa.Column("resource_id", _string(64), nullable=True),
        sa.Column("outcome", _string(8), nullable=False),
        sa.Column("transport", _string(16), nullable=False),
        sa.Column("request_id", _string(128), nullable=True),
        sa.Column("client_ip", _string(64), nullable=True),
        sa.Column("user_agent", _string(200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("audit_pending", schema=None) as batch_op:
        batch_op.create_index("ix_audit_pending_org_seq", ["org_id", "seq"], unique=False)
    _give_every_full_key_the_new_scope()


def _keys() -> sa.TableClause:
    return sa.table("api_keys", sa.column("id", sa.String()), sa.column("scopes", sa.JSON()))


def _held(scopes: object) -> list[str]:
    if isinstance(scopes, str):
        return list(json.loads(scopes))
    return list(scopes) if isinstance(scopes, list) else []


def _give_every_full_key_the_new_scope() -> None:
    connection = op.get_bind()
    keys = _keys()
    for key_id, scopes in connection.execute(sa.select(keys.c.id, keys.c.scopes)).all():
        held = _held(scopes)
        if EVERY_SCOPE_BEFORE <= set(held) and AUDIT_READ not in held:
            connection.execute(
                keys.update().where(keys.c.id == key_id).values(scopes=[*held, AUDIT_READ])
            )


def downgrade() -> None:
    with op.batch_alter_table("audit_pending", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_pending_org_seq")
    op.drop_table("audit_pending")
    op.drop_table("audit_heads")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_at")
        batch_op.drop_index("ix_audit_log_org_id")
    op.drop_table("audit_log")
    connection = op.get_bind()
    keys = _keys()
    for key_id, scopes in connection.execute(sa.select(keys.c.id, keys.c.scopes)).all():
        held = _held(scopes)
        if AUDIT_READ in held:
            kept = [scope for scope in held if scope != AUDIT_READ]
            connection.execute(keys.update().where(keys.c.id == key_id).values(scopes=kept))
