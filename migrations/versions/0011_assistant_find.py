"""indexes for finding assistants: every documented sort per organisation, the common filters

Each sort is (key, seq) within an organisation's live assistants, `seq` breaking ties; the name
is sorted by its first 256 characters (a B-tree entry of PostgreSQL holds at most 2,704 bytes,
and a name may be 1,024 characters of 4 bytes). The filters' index holds `enabled`, `language`
and `model`, so that counting the matches of those filters reads the index alone
(docs/finding-assistants.md). On SQLite, which has no such bound, the name's index also holds the
whole name and the ref, so that a search reads the index and not the table's rows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME_KEY = sa.text("substr(name, 1, 256)")
INDEXES: dict[str, list[str | sa.TextClause]] = {
    "ix_assistants_org_created": ["org_id", "deleted", "created_at", "seq"],
    "ix_assistants_org_updated": ["org_id", "deleted", "updated_at", "seq"],
    "ix_assistants_org_name": ["org_id", "deleted", NAME_KEY, "seq"],
    "ix_assistants_org_filters": ["org_id", "deleted", "enabled", "language", "model", "seq"],
}


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            extra = ["name", "ref"] if sqlite and name == "ix_assistants_org_name" else []
            batch_op.create_index(name, [*columns, *extra], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
