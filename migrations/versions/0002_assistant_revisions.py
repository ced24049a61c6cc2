"""assistant revisions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assistant_revisions",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("assistant_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("change_type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("actor_key_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["assistant_id"], ["assistants.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("assistant_revisions", schema=None) as batch_op:
        batch_op.create_index(
            "ux_revisions_assistant_version", ["assistant_id", "version"], unique=True
        )
        batch_op.create_index("ix_revisions_org_seq", ["org_id", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("assistant_revisions", schema=None) as batch_op:
        batch_op.drop_index("ix_revisions_org_seq")
        batch_op.drop_index("ux_revisions_assistant_version")
    op.drop_table("assistant_revisions")
