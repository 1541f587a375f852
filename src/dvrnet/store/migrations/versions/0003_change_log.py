"""The change log (per write: the resources changed and each concerned host's view change) and the
feed state (the database's identity, the revision above which the log is complete).

An existing database starts its log at its current revision (older cursors get a resync answer).

Revision ID: 0003
Revises: 0002
"""
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(255), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
    )
    op.create_index("ix_change_log_revision", "change_log", ["revision"])
    op.create_index("ix_change_log_host_revision", "change_log", ["host", "revision"])
    state = op.create_table(
        "feed_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("database_id", sa.String(64), nullable=False),
        sa.Column("log_floor", sa.BigInteger, nullable=False),
    )
    current = op.get_bind().execute(sa.text("SELECT value FROM revision WHERE id = 1")).scalar_one()
    op.bulk_insert(state, [{"id": 1, "database_id": str(uuid.uuid4()), "log_floor": int(current)}])


def downgrade() -> None:
    op.drop_table("feed_state")
    op.drop_index("ix_change_log_host_revision", "change_log")
    op.drop_index("ix_change_log_revision", "change_log")
    op.drop_table("change_log")
