"""releases and environments (docs/releases.md)

`assistant_releases`: one immutable document per release of an assistant; `assistant_environments`:
named pointers at releases. Publishing and pinning are revisions of change type `published` made
at the assistant's current version, so the unique index of revisions by version leaves them out.

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOT_PUBLISHED = sa.text("change_type != 'published'")


def upgrade() -> None:
    op.create_table(
        "assistant_releases",
        sa.Column("assistant_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_key_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["assistant_id"], ["assistants.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"]),
        sa.PrimaryKeyConstraint("assistant_id", "number"),
    )
    op.create_table(
        "assistant_environments",
        sa.Column("assistant_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("release", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["assistant_id"], ["assistants.id"]),
        sa.PrimaryKeyConstraint("assistant_id", "name"),
    )
    with op.batch_alter_table("assistant_revisions", schema=None) as batch_op:
        batch_op.drop_index("ux_revisions_assistant_version")
        batch_op.create_index(
            "ux_revisions_assistant_version",
            ["assistant_id", "version"],
            unique=True,
            sqlite_where=NOT_PUBLISHED,
            postgresql_where=NOT_PUBLISHED,
        )


def downgrade() -> None:
    op.execute("DELETE FROM assistant_revisions WHERE change_type = 'published'")
    with op.batch_alter_table("assistant_revisions", schema=None) as batch_op:
        batch_op.drop_index("ux_revisions_assistant_version")
        batch_op.create_index(
            "ux_revisions_assistant_version", ["assistant_id", "version"], unique=True
        )
    op.drop_table("assistant_environments")
    op.drop_table("assistant_releases")
