"""ports.connection_limit: the per-VM connection limit override (null: the agent's default).

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ports") as b:
        b.add_column(sa.Column("connection_limit", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ports") as b:
        b.drop_column("connection_limit")
