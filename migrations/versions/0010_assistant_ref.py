"""assistants.ref: the name of an assistant in bundles (docs/bundles.md)

Nullable; unique among the live (not deleted) assistants of an organisation, so any number of
assistants may have none, and a deleted assistant's ref may be taken again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # migration 0006 read the assistants through a server-side cursor that stays open
        # until the migration's transaction ends, and PostgreSQL alters no table in use
        op.execute("CLOSE ALL")
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.create_index(
            "ux_assistants_org_ref",
            ["org_id", "ref"],
            unique=True,
            sqlite_where=sa.text("deleted = 0"),
            postgresql_where=sa.text("NOT deleted"),
        )


def downgrade() -> None:
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.drop_index("ux_assistants_org_ref")
        batch_op.drop_column("ref")
