"""organisations.storage_used: each organisation's stored bytes, counted as rows are written

The column starts from the rows that exist now, counted once here by the rule of
app/domain/storage.py (docs/storage.md); from then on every write adds its own difference.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from app.domain.storage import ROW_BYTES, value_bytes

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

# The columns each row's size counts, as they are at this revision (a later migration's new
# column is counted by the writes that fill it).
ASSISTANT_CONTENT = (
    "name",
    "language",
    "model",
    "instructions",
    "knowledge_scope",
    "timezone",
    "stt_model",
    "tts_model",
    "tts_voice_id",
    "thread_mode",
    "welcome_banner",
    "suggested_messages",
    "auto_intro_message",
)
INTEGRATION_CONTENT = ("integration_id", "connection_id", "config")
ACTION_CONTENT = ("action_id", "name", "instructions", "connection_id", "config")
JSON_COLUMNS = frozenset({"suggested_messages", "config"})


def _table(name: str, *columns: str, **typed: sa.types.TypeEngine[Any]) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("org_id"),
        *(sa.column(c, sa.JSON() if c in JSON_COLUMNS else sa.String()) for c in columns),
        *(sa.column(c, type_) for c, type_ in typed.items()),
    )


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("storage_used", sa.BigInteger(), nullable=False, server_default="0")
        )
    bind = op.get_bind()

    used: dict[str, int] = {}

    def count(table: sa.TableClause, content: Sequence[str], *where: Any) -> None:
        statement = sa.select(table.c.org_id, *(table.c[c] for c in content)).where(*where)
        for org_id, *values in bind.execute(statement.execution_options(yield_per=BATCH)):
            used[org_id] = used.get(org_id, 0) + ROW_BYTES + sum(map(value_bytes, values))

    assistants = _table("assistants", *ASSISTANT_CONTENT, deleted=sa.Boolean())
    count(assistants, ASSISTANT_CONTENT, assistants.c.deleted.is_(sa.false()))
    count(_table("integrations", *INTEGRATION_CONTENT), INTEGRATION_CONTENT)
    count(_table("actions", *ACTION_CONTENT), ACTION_CONTENT)
    avatars = _table("avatars", size=sa.BigInteger())
    for org_id, size in bind.execute(sa.select(avatars.c.org_id, avatars.c.size)):
        used[org_id] = used.get(org_id, 0) + ROW_BYTES + int(size)
    organisations = sa.table("organisations", sa.column("id"), sa.column("storage_used"))
    statement = (
        organisations.update()
        .where(organisations.c.id == sa.bindparam("org"))
        .values(storage_used=sa.bindparam("used"))
    )
    for start in range(0, len(used), BATCH):
        batch = list(used.items())[start : start + BATCH]
        bind.execute(statement, [{"org": org, "used": n} for org, n in batch])
    if bind.dialect.name == "postgresql":
        # asyncpg keeps the portals of `yield_per` open until the transaction ends, and a later
        # migration of the same transaction could not alter those tables ("being used by active
        # queries in this session")
        bind.exec_driver_sql("CLOSE ALL")


def downgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("storage_used")
