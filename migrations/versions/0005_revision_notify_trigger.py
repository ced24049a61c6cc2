"""revision notifications sent by a trigger (PostgreSQL only)

Every inserted revision sends `pg_notify('assistant_changes', '<org_id>:<seq>')` from the
database itself, whoever inserts it; PostgreSQL delivers it after COMMIT, in commit order, to
every listening process (app/events/sources.py). SQLite has no notifications: nothing to do.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "assistant_revisions_notify"
TRIGGER = "assistant_revisions_notify"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('assistant_changes', NEW.org_id || ':' || NEW.seq);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        f"CREATE TRIGGER {TRIGGER} AFTER INSERT ON assistant_revisions "
        f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON assistant_revisions")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
