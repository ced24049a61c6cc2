"""API keys with least privilege: name, prefix, scopes, assistant_ids, expires_at, last_used_at

Every key that exists already keeps working as before: it holds all three scopes and every
assistant (assistant_ids NULL), never expires, and is named "Legacy key". Its prefix stays NULL:
only the SHA-256 of its secret was ever stored, so its first characters are unknown.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_NAME = "Legacy key"
ALL_SCOPES = '["assistants:read", "assistants:write", "api_keys:manage"]'


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.add_column(
            sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True)
        )
        batch_op.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("assistant_ids", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    # literals, so that both dialects take the JSON text as it is
    op.execute(f"UPDATE api_keys SET name = '{LEGACY_NAME}', scopes = '{ALL_SCOPES}'")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column(
            "name", existing_type=sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False
        )
        batch_op.alter_column("scopes", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("assistant_ids")
        batch_op.drop_column("scopes")
        batch_op.drop_column("prefix")
        batch_op.drop_column("name")
