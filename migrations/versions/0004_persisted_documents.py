"""persisted documents (automatic persisted queries)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "persisted_documents",
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("document", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    with op.batch_alter_table("persisted_documents", schema=None) as batch_op:
        batch_op.create_index("ix_persisted_documents_last_used_at", ["last_used_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("persisted_documents", schema=None) as batch_op:
        batch_op.drop_index("ix_persisted_documents_last_used_at")
    op.drop_table("persisted_documents")
